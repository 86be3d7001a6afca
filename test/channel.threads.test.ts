/**
 * Channels between threads of one process: createChannelBuffer makes the
 * channel in a SharedArrayBuffer, one end takes it with fromBuffer in a
 * worker (test/fixtures/channel-worker.ts), the other here. 100 000
 * numbered, checksummed messages go each way, blocking and awaiting.
 */
import t from 'tap'

import { Consumer, Producer, createChannelBuffer } from '../lib/index'
import {
  consumeStream, leavesNothingInDevShm, perfectReport, produceStream, rejection, runChannelWorker, thrown, within,
  type ProduceReport, type StreamReport, type StreamSpec
} from './support/channel-helpers'

const KiB = 1024
const COUNT = 100_000
/** 8..256 bytes, one in 64 up to 4 KiB; a 64 KiB ring, so it laps hundreds of times. */
const spec = (seed: number): StreamSpec => ({ seed, count: COUNT, sizes: { min: 8, max: 256, rareEvery: 64, rareMax: 4 * KiB } })

for (const blocking of [true, false]) {
  const there = blocking ? 'sendSync' : 'send'
  t.test(`the producer in a worker (${there}), the consumer here: ${COUNT} messages in order, then the end`, async (t) => {
    const buffer = createChannelBuffer(64 * KiB)
    const consumer = Consumer.fromBuffer<Uint8Array>(buffer, { codec: 'bytes' })
    const stream = spec(blocking ? 1 : 2)
    const produced = runChannelWorker<ProduceReport>(t, { buffer, role: 'producer', spec: stream, blocking, close: true })
    const report = await consumeStream(consumer, stream)
    const sent = await produced
    t.same(report, perfectReport(COUNT, sent.bytes), 'none lost, duplicated, reordered or torn')
    t.equal((await rejection(consumer.receive())).code, 'ERR_CHANNEL_CLOSED', 'the worker\'s close ends the stream')
    consumer.close()
  })

  const here = blocking ? 'receiveSync' : 'receive'
  t.test(`the consumer in a worker (${here}), the producer here: ${COUNT} messages in order`, async (t) => {
    const buffer = createChannelBuffer(64 * KiB)
    const producer = Producer.fromBuffer<Uint8Array>(buffer, { codec: 'bytes' })
    const stream = spec(blocking ? 3 : 4)
    const consumed = runChannelWorker<StreamReport>(t, { buffer, role: 'consumer', spec: stream, blocking })
    const sent = await produceStream(producer, stream)
    const report = await consumed
    t.same(report, perfectReport(COUNT, sent.bytes), 'none lost, duplicated, reordered or torn')
    producer.close()
  })
}

t.test('closing the consumer here releases a producer blocked in sendSync in a worker, with ERR_CHANNEL_CLOSED', async (t) => {
  const buffer = createChannelBuffer(4096)
  const consumer = Consumer.fromBuffer<Uint8Array>(buffer, { codec: 'bytes' })
  const stream: StreamSpec = { seed: 6, count: 1e9, sizes: { min: 8, max: 256 } }
  const produced = rejection(runChannelWorker(t, { buffer, role: 'producer', spec: stream, blocking: true }))
  const report = await consumeStream(consumer, { ...stream, count: 1000 })
  t.same(report, perfectReport(1000, report.bytes), 'the first thousand arrived')
  await new Promise((resolve) => setTimeout(resolve, 100)) // the worker fills the ring and blocks
  consumer.close()
  t.equal((await within(5000, produced, 'the worker\'s sendSync')).code, 'ERR_CHANNEL_CLOSED')
})

t.test('fromBuffer takes each end once, and refuses a buffer that holds no channel', async (t) => {
  const buffer = createChannelBuffer(4096)
  const producer = Producer.fromBuffer(buffer)
  const consumer = Consumer.fromBuffer(buffer)
  t.equal(thrown(() => Producer.fromBuffer(buffer)).code, 'ERR_END_TAKEN')
  t.equal(thrown(() => Consumer.fromBuffer(buffer)).code, 'ERR_END_TAKEN')
  const taken = await rejection(runChannelWorker(t, { buffer, role: 'producer', spec: spec(5), blocking: true }))
  t.equal(taken.code, 'ERR_END_TAKEN', 'in a worker too')
  t.equal(producer.capacity, 4096)
  t.equal(producer.name, undefined)
  producer.close()
  consumer.close()

  const blank = new SharedArrayBuffer(4096 + 1024)
  t.equal(thrown(() => Producer.fromBuffer(blank)).code, 'ERR_INVALID_SEGMENT')
  t.equal(thrown(() => Consumer.fromBuffer(blank)).code, 'ERR_INVALID_SEGMENT')
  t.type(thrown(() => Producer.fromBuffer(new ArrayBuffer(8192) as unknown as SharedArrayBuffer)), TypeError)
  t.type(thrown(() => createChannelBuffer(5000)), RangeError, 'capacity must be a power of two')
})

leavesNothingInDevShm(t)
