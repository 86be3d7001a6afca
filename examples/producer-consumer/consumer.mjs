// The demo's consumer: counts the idiomatic stream (for await), then the
// batch stream (readEach), then answers pings until the ping channel closes.
import { Producer, Consumer } from 'shm-channel'

const name = process.argv[2]
/** @type {import('shm-channel').Consumer<Buffer>} */
const stream = Consumer.open(`${name}-stream`, { codec: 'bytes' })
const batch = Consumer.open(`${name}-batch`, { codec: 'bytes' })
const pings = Consumer.open(`${name}-ping`, { codec: 'bytes' })
const pongs = Producer.open(`${name}-pong`, { codec: 'bytes' })
process.send({ type: 'ready' })

let received = 0
let inOrder = true
let started = 0
for await (const message of stream) {
  if (received === 0) started = performance.now()
  if (message.readUInt32LE(0) !== (received >>> 0)) inOrder = false
  received++
}
process.send({ type: 'stream-done', received, inOrder, ms: performance.now() - started })
stream.close()

received = 0
inOrder = true
const onMessage = (bytes, start) => {
  if (received === 0) started = performance.now()
  if (bytes.readUInt32LE(start) !== (received >>> 0)) inOrder = false
  received++
}
try {
  for (;;) if (batch.readEach(onMessage) === 0 && !await batch.readable()) break
} catch (err) {
  if (err.code !== 'ERR_CHANNEL_CLOSED') throw err
}
process.send({ type: 'batch-done', received, inOrder, ms: performance.now() - started })
batch.close()

for await (const ping of pings) pongs.trySend(ping)
pongs.close()
pings.close()
process.disconnect()
