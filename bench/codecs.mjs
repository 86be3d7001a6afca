// Codec cost through a channel, in one thread (encode + ring + decode), for
// values a user would send, and the bytes each puts on the wire. Decides the
// default codec: see docs/codecs.md.
//
//   node bench/codecs.mjs [--quick]
//
// Codecs: json (the default), structured (v8.serialize), msgpack (msgpackr,
// plain MessagePack: the built-in codec), and msgpackr with its record
// extension (object shapes written as records; each message still stands
// alone), as a custom codec, for comparison.
import { Packr } from 'msgpackr'
import { createChannelBuffer, Producer, Consumer, codecs } from 'shm-channel'

const quick = process.argv.includes('--quick')
const values = {
  'small object (5 fields)': { id: 12345, op: 'update', user: 'ada', ok: true, score: 0.75 },
  'medium object (20 nested items, ~1 KiB as JSON)': {
    id: 1,
    items: Array.from({ length: 20 }, (_, i) => ({ sku: `item-${i}`, qty: i, price: i * 1.25, tags: ['a', 'b'] }))
  },
  'array of 100 numbers': Array.from({ length: 100 }, (_, i) => i * 3.5),
  'string (100 chars)': 'x'.repeat(100)
}

const records = new Packr({ copyBuffers: true })
/** @type {import('shm-channel').Codec<unknown>} */
const msgpackRecords = {
  name: 'msgpack+records',
  encode (value) { return records.pack(value) },
  decode (data) { return records.unpack(data) }
}
const codecList = [['json', 'json'], ['structured', 'structured'], ['msgpack', 'msgpack'], ['msgpack+records', msgpackRecords]]

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

/** Encoded size in bytes (a string encoding is written as UTF-8). */
function wireBytes (codec, value) {
  const c = typeof codec === 'string' ? codecs[codec] : codec
  const encoded = c.encode(value)
  return typeof encoded === 'string' ? Buffer.byteLength(encoded) : encoded.length
}

const count = quick ? 100_000 : 500_000
const names = codecList.map(([label]) => label)
console.log(`| value | ${names.map((n) => `${n} msg/s`).join(' | ')} | ${names.map((n) => `${n} B`).join(' | ')} |`)
console.log(`|---|${names.map(() => '---:').join('|')}|${names.map(() => '---:').join('|')}|`)
for (const [label, value] of Object.entries(values)) {
  const rates = []
  for (const [, codec] of codecList) measure(codec, value, count / 10) // warm-up
  for (const [, codec] of codecList) rates.push(measure(codec, value, count))
  const sizes = codecList.map(([, codec]) => wireBytes(codec, value))
  console.log(`| ${label} | ${rates.map((r) => `${(r / 1e6).toFixed(2)} M`).join(' | ')} | ${sizes.join(' | ')} |`)
}
