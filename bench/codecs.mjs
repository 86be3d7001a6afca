// Codec cost through a channel, in one thread (encode + ring + decode), for
// values a user would send. Decides the default codec: see docs/codecs.md.
//
//   node bench/codecs.mjs [--quick]
import { createChannelBuffer, Producer, Consumer } from 'shm-channel'

const quick = process.argv.includes('--quick')
const values = {
  'small object': { id: 12345, op: 'update', user: 'ada', ok: true, score: 0.75 },
  'nested object (~1 KiB)': {
    id: 1,
    items: Array.from({ length: 20 }, (_, i) => ({ sku: `item-${i}`, qty: i, price: i * 1.25, tags: ['a', 'b'] }))
  },
  'string (100 chars)': 'x'.repeat(100),
  'array of 100 numbers': Array.from({ length: 100 }, (_, i) => i * 3.5)
}

function measure (codec, value, count) {
  const buffer = createChannelBuffer(1 << 20)
  const producer = Producer.fromBuffer(buffer, { codec })
  const consumer = Consumer.fromBuffer(buffer, { codec })
  const start = performance.now()
  let n = 0
  while (n < count) {
    let burst = 0
    while (burst < 256 && producer.trySend(value)) burst++
    for (let i = 0; i < burst; i++) consumer.tryReceive()
    n += burst
  }
  const seconds = (performance.now() - start) / 1000
  producer.close()
  consumer.close()
  return n / seconds
}

const count = quick ? 100_000 : 500_000
console.log('| value | json msg/s | structured msg/s | json / structured |')
console.log('|---|---:|---:|---:|')
for (const [label, value] of Object.entries(values)) {
  measure('json', value, count / 10) // warm-up
  measure('structured', value, count / 10)
  const json = measure('json', value, count)
  const structured = measure('structured', value, count)
  console.log(`| ${label} | ${(json / 1e6).toFixed(2)} M | ${(structured / 1e6).toFixed(2)} M | ${(json / structured).toFixed(2)}× |`)
}
