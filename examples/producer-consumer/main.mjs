// The producer/consumer demo: forks a consumer process, streams messages to it
// through a shm-channel, then measures round trips over a second channel back.
//
//   node examples/producer-consumer/main.mjs [--count N] [--size BYTES] [--round-trips N]
import { fork } from 'node:child_process'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { Producer, Consumer } from 'shm-channel'

const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '2000000' },
    size: { type: 'string', default: '64' },
    'round-trips': { type: 'string', default: '20000' }
  }
})
const count = Number(args.count)
const size = Number(args.size)
const roundTrips = Number(args['round-trips'])

const name = `demo-${process.pid}`
const stream = Producer.open(`${name}-stream`, { codec: 'bytes' })
const pings = Producer.open(`${name}-ping`, { codec: 'bytes' })
const pongs = Consumer.open(`${name}-pong`, { codec: 'bytes' })

const child = fork(new URL('./consumer.mjs', import.meta.url), [name])
const fromChild = (type) => new Promise((resolve, reject) => {
  const onMessage = (m) => { if (m.type === type) { child.off('message', onMessage); resolve(m) } }
  child.on('message', onMessage)
  child.once('exit', (code) => reject(new Error(`consumer exited with code ${code}`)))
})

await fromChild('ready')
console.log(`streaming ${count.toLocaleString()} messages of ${size} bytes to consumer pid ${child.pid}`)

// Stream: trySend while there is room; send() waits when the ring is full.
const message = Buffer.alloc(size)
const started = performance.now()
let sent = 0
const progress = setInterval(() => {
  const s = (performance.now() - started) / 1000
  console.log(`  sent ${sent.toLocaleString()} (${(sent / s / 1e6).toFixed(2)} M msg/s)`)
}, 500)
while (sent < count) {
  const batchEnd = Math.min(count, sent + 65536)
  for (; sent < batchEnd; sent++) {
    message.writeUInt32LE(sent, 0)
    if (!stream.trySend(message)) await stream.send(message)
  }
  await yieldToLoop() // let the progress timer run
}
stream.close()
clearInterval(progress)
const result = await fromChild('stream-done')
const seconds = result.ms / 1000
console.log(`consumer received ${result.received.toLocaleString()} messages in order: ${result.inOrder}`)
console.log(`  ${(result.received / seconds / 1e6).toFixed(2)} M msg/s, ${(result.received * size / seconds / 1e6).toFixed(0)} MB/s`)

// Round trips: ping over one channel, pong back over another.
console.log(`measuring ${roundTrips.toLocaleString()} round trips (64 bytes, adaptive waiting)`)
const ping = Buffer.alloc(64)
const samples = new Float64Array(roundTrips)
for (let i = 0; i < 1000; i++) { pings.trySend(ping); await pongs.receive() } // warm-up
for (let i = 0; i < roundTrips; i++) {
  const t = performance.now()
  pings.trySend(ping)
  await pongs.receive()
  samples[i] = performance.now() - t
}
samples.sort()
const pct = (p) => (samples[Math.min(samples.length - 1, Math.floor(p * samples.length))] * 1000).toFixed(1)
console.log(`  round trip p50 ${pct(0.5)} µs, p99 ${pct(0.99)} µs, p99.9 ${pct(0.999)} µs`)

pings.close()
await new Promise((resolve) => child.once('exit', resolve))
pongs.close()
