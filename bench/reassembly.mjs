// Large messages through a 1 MiB channel between two threads: the cost of
// reassembling fragments on the consumer side, by message size.
//
//   node bench/reassembly.mjs [--quick]
//
// Each message travels as fragments of a quarter ring; the consumer copies
// them out into the message it returns. The producer sends the same buffer
// again and again with sendSync; the consumer's receiveSync returns each
// message whole, and its length is checked. Reported: messages/s and MB/s at
// the consumer, median of three rounds.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { Consumer, Producer, createChannelBuffer } from 'shm-channel'

const MiB = 1024 * 1024

if (!isMainThread) {
  const { buffer, size, count } = workerData
  const producer = Producer.fromBuffer(buffer, { codec: 'bytes' })
  const message = Buffer.alloc(size, 0x5a)
  parentPort?.postMessage('ready')
  for (let i = 0; i < count; i++) producer.sendSync(message)
  producer.close()
} else {
  const quick = process.argv.includes('--quick')
  const sizes = [1, 4, 8, 16, 64].map((n) => n * MiB)
  const budget = (quick ? 256 : 1024) * MiB
  console.log('| message | msg/s | MB/s |')
  console.log('|---:|---:|---:|')
  for (const size of sizes) {
    const rates = []
    for (let round = 0; round < 3; round++) {
      const count = Math.max(4, Math.floor(budget / size))
      const buffer = createChannelBuffer(MiB)
      const consumer = Consumer.fromBuffer(buffer, { codec: 'bytes', maxMessageSize: Infinity })
      const worker = new Worker(new URL(import.meta.url), { workerData: { buffer, size, count } })
      await new Promise((resolve) => worker.once('message', resolve))
      const start = performance.now()
      for (let i = 0; i < count; i++) {
        const m = /** @type {Uint8Array} */ (consumer.receiveSync())
        if (m.length !== size) throw new Error(`got ${m.length} bytes, expected ${size}`)
      }
      const seconds = (performance.now() - start) / 1000
      rates.push(count / seconds)
      consumer.close()
      await worker.terminate()
    }
    rates.sort((a, b) => a - b)
    const rate = rates[1]
    console.log(`| ${size / MiB} MiB | ${rate.toFixed(1)} | ${(rate * size / 1e6).toFixed(0)} |`)
  }
}
