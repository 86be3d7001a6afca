// The cost of the request/response wire format, without wake-ups or a second
// process: encode, write into a ring, read back and decode, in one thread.
//
//   node bench/rpc-frames.mjs [--quick]
//
// "frame": lib/rpc.ts's format, an 8-byte header (kind, status, flags, id)
// written in place with claim/commit, then the codec's bytes; read in place
// with read/release. "envelope": the channel's own codec carrying
// { id, ok, value } through trySend/tryReceive. Each for the JSON and the
// structured (v8.serialize) codec, a small and a ~1 KiB value.
import v8 from 'node:v8'
import { Producer, Consumer, createChannelBuffer } from 'shm-channel'

const quick = process.argv.includes('--quick')
const BATCH = 256
/** Messages per measurement: fewer for the large value, so the whole run stays under a minute. */
let COUNT = 0
const counts = { small: quick ? 100_000 : 500_000, '1 KiB': quick ? 10_000 : 50_000 }

const small = { op: 'add', a: 1, b: 2 }
const large = { op: 'store', items: Array.from({ length: 40 }, (_, i) => ({ key: `key-${i}`, value: i * 1.5 })) }

const codecs = {
  json: { encode: (v) => JSON.stringify(v), decode: (b, s, e) => JSON.parse(b.toString('utf8', s, e)) },
  structured: { encode: (v) => v8.serialize(v), decode: (b, s, e) => v8.deserialize(b.subarray(s, e)) }
}

function frames (codecName, value) {
  const codec = codecs[codecName]
  const buffer = createChannelBuffer(1 << 20)
  const producer = Producer.fromBuffer(buffer, { codec: 'bytes' })
  const consumer = Consumer.fromBuffer(buffer, { codec: 'bytes' })
  let check = 0
  const t0 = performance.now()
  for (let done = 0; done < COUNT; done += BATCH) {
    for (let i = 0; i < BATCH; i++) {
      const id = done + i
      const payload = codec.encode(value)
      let view
      if (typeof payload === 'string') {
        view = producer.claim(8 + payload.length * 3)
        view[0] = 1; view[1] = 0; view[2] = 0; view[3] = 0; view.writeUInt32LE(id >>> 0, 4)
        producer.commit(8 + view.write(payload, 8, 'utf8'))
      } else {
        view = producer.claim(8 + payload.length)
        view[0] = 1; view[1] = 0; view[2] = 0; view[3] = 0; view.writeUInt32LE(id >>> 0, 4)
        view.set(payload, 8)
        producer.commit()
      }
    }
    let frame
    while ((frame = consumer.read()) !== undefined) {
      const id = frame.readUInt32LE(4)
      const v = codec.decode(frame, 8, frame.length)
      check += id + (v.op.length)
    }
    consumer.release()
  }
  const ns = (performance.now() - t0) * 1e6 / COUNT
  producer.close(); consumer.close()
  return { ns, check }
}

function envelopes (codecName, value) {
  const buffer = createChannelBuffer(1 << 20)
  const producer = Producer.fromBuffer(buffer, { codec: codecName })
  const consumer = Consumer.fromBuffer(buffer, { codec: codecName })
  let check = 0
  const t0 = performance.now()
  for (let done = 0; done < COUNT; done += BATCH) {
    for (let i = 0; i < BATCH; i++) producer.trySend({ id: done + i, ok: true, value })
    /** @type {any} */
    let m
    while ((m = consumer.tryReceive()) !== undefined) check += m.id + m.value.op.length
  }
  const ns = (performance.now() - t0) * 1e6 / COUNT
  producer.close(); consumer.close()
  return { ns, check }
}

console.log(`${counts.small.toLocaleString()} small or ${counts['1 KiB'].toLocaleString()} 1 KiB messages, ns per message (encode + write + read + decode), best of 3\n`)
console.log('| codec | value | frame (header + codec bytes) | envelope { id, ok, value } |')
console.log('|---|---|---:|---:|')
for (const codec of ['json', 'structured']) {
  for (const [label, value] of [['small', small], ['1 KiB', large]]) {
    COUNT = counts[label]
    const best = (fn) => Math.min(...[0, 1, 2].map(() => fn(codec, value).ns))
    console.log(`| ${codec} | ${label} | ${best(frames).toFixed(0)} | ${best(envelopes).toFixed(0)} |`)
  }
}
