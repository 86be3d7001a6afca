/**
 * Channels between threads of one process: createChannelBuffer makes the
 * channel in a SharedArrayBuffer, one end takes it with fromBuffer in a
 * worker (test/fixtures/channel-worker.ts), the other here. 100 000
 * numbered, checksummed messages go each way, blocking and awaiting.
 */
import path from 'node:path'
import { once } from 'node:events'
import { Worker } from 'node:worker_threads'
import t, { type Test } from 'tap'

import { Consumer, Producer, createChannelBuffer } from '../../lib/index'
import { consumeStream, perfectReport, produceStream, runChannelWorker, type ProduceReport, type StreamReport, type StreamSpec } from '../support/channel-helpers'
import { ChannelPeer, rejection, thrown, within } from '../support/peers'
import { channelName, leavesNothingInDevShm, untilParked } from '../support/shm'

/** A worker holding one end (test/fixtures/channel-worker-hold.ts), once it is ready. */
async function holdingWorker (t: Test, job: Record<string, unknown>): Promise<Worker> {
  const worker = new Worker(path.join(__dirname, '..', 'fixtures', 'channel-worker-hold.ts'), { workerData: job })
  t.teardown(async () => { await worker.terminate() })
  await once(worker, 'message')
  return worker
}

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
  await untilParked(buffer, 'producer') // the worker filled the ring and blocks in sendSync
  consumer.close()
  t.equal((await within(5000, produced, 'the worker\'s sendSync')).code, 'ERR_CHANNEL_CLOSED')
})

t.test('a worker thread that ends holding its end: the peer sees ERR_PEER_DEAD, as for a dead process', async (t) => {
  for (const how of ['terminate', 'exit'] as const) {
    t.test(`the consumer's worker ends (${how}): a send waiting for room here rejects with ERR_PEER_DEAD`, async (t) => {
      const buffer = createChannelBuffer(4096)
      const producer = Producer.fromBuffer<string>(buffer, { codec: 'utf8', peerCheckInterval: 20 })
      const worker = await holdingWorker(t, { role: 'consumer', buffer, end: how })
      while (producer.trySend('fill')) ;
      const waiting = rejection(producer.send('no room'))
      if (how === 'terminate') await worker.terminate()
      else await once(worker, 'exit')
      const err = await within(5000, waiting, 'the waiting send')
      t.equal(err.code, 'ERR_PEER_DEAD')
      t.match(err.message, /worker thread/)
      producer.close()
    })
  }

  t.test('the producer\'s worker is terminated: the consumer here reads what it sent, then ERR_PEER_DEAD', async (t) => {
    const buffer = createChannelBuffer(4096)
    const consumer = Consumer.fromBuffer<string>(buffer, { codec: 'utf8', peerCheckInterval: 20 })
    const worker = await holdingWorker(t, { role: 'producer', buffer, send: ['one', 'two'], end: 'terminate' })
    await worker.terminate()
    t.equal(consumer.receiveSync({ timeout: 5000 }), 'one')
    t.equal(consumer.receiveSync({ timeout: 5000 }), 'two')
    t.equal(thrown(() => consumer.receiveSync({ timeout: 5000 })).code, 'ERR_PEER_DEAD')
    consumer.close()
  })

  t.test('another process sees the terminated worker\'s end dead too; a worker that lives on is not', async (t) => {
    const name = channelName()
    const peer = new ChannelPeer(t)
    const worker = await holdingWorker(t, { role: 'producer', name, send: ['from the worker'], end: 'terminate' })
    await peer.call('openConsumer', name, { codec: 'utf8', peerCheckInterval: 20 })
    t.same(await peer.call('receive', 1), ['from the worker'])
    t.equal((await rejection(peer.call('receive', 1, { timeout: 300 }))).code, 'ERR_TIMEOUT', 'alive while the worker runs')
    await worker.terminate()
    t.equal((await rejection(peer.call('receive', 1, { timeout: 5000 }))).code, 'ERR_PEER_DEAD', 'dead once it is gone')
    await peer.call('closeConsumer')
  })
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
