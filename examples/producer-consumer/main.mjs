// The producer/consumer demo: forks a consumer process and streams messages
// to it through shm-channel twice, first with the code people write
// (`await producer.send(m)` / `for await (const m of consumer)`), then with
// the batch API (cork + trySend / readEach), then measures round trips over
// a second channel back.
//
//   node examples/producer-consumer/main.mjs [--count N] [--size BYTES] [--round-trips N]
import { fork } from 'node:child_process'
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
const batch = Producer.open(`${name}-batch`, { codec: 'bytes' })
const pings = Producer.open(`${name}-ping`, { codec: 'bytes' })
const pongs = Consumer.open(`${name}-pong`, { codec: 'bytes' })

const child = fork(new URL('./consumer.mjs', import.meta.url), [name])
const fromChild = (type) => new Promise((resolve, reject) => {
  const onMessage = (m) => { if (m.type === type) { child.off('message', onMessage); resolve(m) } }
  child.on('message', onMessage)
  child.once('exit', (code) => reject(new Error(`consumer exited with code ${code}`)))
})

function report (result) {
  const seconds = result.ms / 1000
  console.log(`consumer received ${result.received.toLocaleString()} messages in order: ${result.inOrder}`)
  console.log(`  ${(result.received / seconds / 1e6).toFixed(2)} M msg/s, ${(result.received * size / seconds / 1e6).toFixed(0)} MB/s`)
}

await fromChild('ready')
const message = Buffer.alloc(size)

// 1. What a Node user writes: one awaited send per message, `for await` on the other side.
console.log(`streaming ${count.toLocaleString()} messages of ${size} bytes to consumer pid ${child.pid}`)
console.log('  producer: for (...) await producer.send(message)  /  consumer: for await (const m of consumer)')
for (let sent = 0; sent < count; sent++) {
  message.writeUInt32LE(sent, 0)
  await stream.send(message)
}
stream.close()
report(await fromChild('stream-done'))

// 2. The batch API: many messages per publish, read in place.
console.log(`streaming ${count.toLocaleString()} messages of ${size} bytes again with the batch API`)
console.log('  producer: cork(); trySend(message) ...; uncork()  /  consumer: readEach((bytes, start, end) => ...)')
for (let sent = 0; sent < count;) {
  batch.cork()
  const burstEnd = Math.min(count, sent + 256)
  for (; sent < burstEnd; sent++) {
    message.writeUInt32LE(sent, 0)
    if (!batch.trySend(message)) break
  }
  batch.uncork()
  if (sent < burstEnd) { // the ring was full: wait for room for this one
    await batch.send(message)
    sent++
  }
}
batch.close()
report(await fromChild('batch-done'))

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
