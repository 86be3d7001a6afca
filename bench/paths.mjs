// What each API path costs per message with both ends in one thread (no
// cache line moves between cores, no waiting): the CPU work of the library
// alone. 64-byte messages, bytes codec, a 1 MiB ring.
//
//   node bench/paths.mjs [--quick]
//
//   trySend / receiveSync   bursts of up to 1000 trySend, then as many receiveSync
//   await send              one awaited send per message; readEach drains every 1024
//   for await               bursts of 10 000 trySend, then a for await loop over them
//   await receive()         bursts of 10 000 trySend, then as many await receive()
//
// and two floors with no library, what the language alone costs for the same
// work: "floor: await send" copies each message into a SharedArrayBuffer and
// awaits a settled promise; "floor: for await" copies 10 000 in, then reads
// them with for await over a hand-written iterator whose next() copies one
// out into a Buffer of its own and returns a settled promise.
import { createChannelBuffer, Producer, Consumer } from 'shm-channel'

const quick = process.argv.includes('--quick')
const count = quick ? 1_000_000 : 3_000_000
const buffer = createChannelBuffer(1 << 20)
/** @type {Producer<Uint8Array>} */
const producer = Producer.fromBuffer(buffer, { codec: 'bytes' })
/** @type {Consumer<Uint8Array>} */
const consumer = Consumer.fromBuffer(buffer, { codec: 'bytes' })
const message = Buffer.alloc(64)
const sink = () => {}

const SETTLED = Promise.resolve()
const floorRing = new Uint8Array(new SharedArrayBuffer(1 << 20))
/** `count` messages copied out of floorRing, through a plain async iterator. */
function floorMessages (count) {
  let i = 0
  return {
    [Symbol.asyncIterator] () { return this },
    next () {
      if (i === count) return Promise.resolve({ done: true, value: undefined })
      const out = Buffer.allocUnsafe(64)
      out.set(floorRing.subarray((i & 8191) << 7, ((i & 8191) << 7) + 64))
      i++
      return Promise.resolve({ done: false, value: out })
    }
  }
}

const paths = {
  'trySend / receiveSync': async (n) => {
    for (let sent = 0; sent < n;) {
      let k = 0
      while (k < 1000 && producer.trySend(message)) k++
      for (let i = 0; i < k; i++) consumer.receiveSync()
      sent += k
    }
  },
  'await send': async (n) => {
    for (let i = 0; i < n; i++) {
      await producer.send(message)
      if ((i & 1023) === 1023) consumer.readEach(sink)
    }
    consumer.readEach(sink)
  },
  'for await': async (n) => {
    for (let done = 0; done < n; done += 10_000) {
      for (let i = 0; i < 10_000; i++) producer.trySend(message)
      let k = 0
      for await (const m of consumer) if (m !== undefined && ++k === 10_000) break
    }
  },
  'floor: await send': async (n) => {
    for (let i = 0; i < n; i++) {
      floorRing.set(message, (i & 8191) << 7)
      await SETTLED
    }
  },
  'floor: for await': async (n) => {
    for (let done = 0; done < n; done += 10_000) {
      for (let i = 0; i < 10_000; i++) floorRing.set(message, (i & 8191) << 7)
      for await (const m of floorMessages(10_000)) if (m === undefined) throw new Error('no message')
    }
  },
  'await receive()': async (n) => {
    for (let done = 0; done < n; done += 10_000) {
      for (let i = 0; i < 10_000; i++) producer.trySend(message)
      for (let i = 0; i < 10_000; i++) await consumer.receive()
    }
  }
}

console.log('| path | M msg/s | ns per message |')
console.log('|---|---:|---:|')
for (const [label, run] of Object.entries(paths)) {
  await run(count / 10) // warm-up
  const start = performance.now()
  await run(count)
  const ms = performance.now() - start
  console.log(`| ${label} | ${(count / ms / 1e3).toFixed(2)} | ${(ms * 1e6 / count).toFixed(0)} |`)
}
producer.close()
consumer.close()
