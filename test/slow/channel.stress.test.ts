/**
 * The long runs (npm run test:slow): millions of numbered, checksummed
 * messages of seeded random sizes (mostly 8..256 bytes, one in 64 up to
 * 4 KiB) between two real processes, and between two threads. The consumer
 * checks each one against its number; none may be lost, duplicated,
 * reordered or torn. The producer batches with trySend and waits with send
 * only when the ring is full. Then a producer process killed and restarted
 * twenty times under load: each incarnation's stream arrives whole up to its
 * death, and each restart reclaims the name.
 *
 * SHMCH_STRESS_MESSAGES and SHMCH_STRESS_THREAD_MESSAGES override the counts.
 */
import t from 'tap'

import { Consumer, Producer, createChannelBuffer } from '../../lib/index'
import { STRESS_SIZES, StreamVerifier, consumeStream, perfectReport, produceStream, runChannelWorker, type ProduceReport, type StreamReport, type StreamSpec } from '../support/channel-helpers'
import { ChannelPeer } from '../support/peers'
import { channelName, closeAtEnd, leavesNothingInDevShm, shmExists } from '../support/shm'
import { Prng } from '../support/prng'

const PROCESS_MESSAGES = Number(process.env.SHMCH_STRESS_MESSAGES ?? 10_000_000)
const THREAD_MESSAGES = Number(process.env.SHMCH_STRESS_THREAD_MESSAGES ?? 2_000_000)

function rate (count: number, ms: number): string {
  return `${count} messages in ${(ms / 1000).toFixed(1)} s`
}

t.test(`${PROCESS_MESSAGES} messages from a producer process to a consumer process`, async (t) => {
  const spec: StreamSpec = { seed: 0x10_000_000, count: PROCESS_MESSAGES, sizes: STRESS_SIZES }
  const peer = new ChannelPeer(t)
  const name = channelName()
  // The consumer is here, and ready, before the producer starts: the start barrier.
  const consumer = closeAtEnd(t, Consumer.open<Uint8Array>(name, { codec: 'bytes' }))
  await peer.call('openProducer', name, { codec: 'bytes' })
  const start = performance.now()
  const produced = peer.call<ProduceReport>('produceStream', spec)
  const report = await consumeStream(consumer, spec)
  const sent = await produced
  t.comment(rate(spec.count, performance.now() - start))
  t.same(report, perfectReport(spec.count, sent.bytes), 'none lost, duplicated, reordered or torn')
  await peer.call('closeProducer')
  consumer.close()
  t.notOk(shmExists(name))
})

t.test(`${PROCESS_MESSAGES} messages the other way: the consumer process checks them`, async (t) => {
  const spec: StreamSpec = { seed: 0x20_000_000, count: PROCESS_MESSAGES, sizes: STRESS_SIZES }
  const peer = new ChannelPeer(t)
  const name = channelName()
  const producer = closeAtEnd(t, Producer.open<Uint8Array>(name, { codec: 'bytes' }))
  await peer.call('openConsumer', name, { codec: 'bytes' })
  const start = performance.now()
  const consumed = peer.call<StreamReport>('consumeStream', spec)
  await peer.event('consuming')
  const sent = await produceStream(producer, spec)
  const report = await consumed
  t.comment(rate(spec.count, performance.now() - start))
  t.same(report, perfectReport(spec.count, sent.bytes), 'none lost, duplicated, reordered or torn')
  producer.close()
  await peer.call('closeConsumer')
  t.notOk(shmExists(name))
})

t.test(`${THREAD_MESSAGES} messages between two worker threads, blocking on both sides`, async (t) => {
  const spec: StreamSpec = { seed: 0x30_000_000, count: THREAD_MESSAGES, sizes: STRESS_SIZES }
  const buffer = createChannelBuffer()
  const start = performance.now()
  const consumed = runChannelWorker<StreamReport>(t, { buffer, role: 'consumer', spec, blocking: true })
  const produced = runChannelWorker<ProduceReport>(t, { buffer, role: 'producer', spec, blocking: true, close: true })
  const [report, sent] = await Promise.all([consumed, produced])
  t.comment(rate(spec.count, performance.now() - start))
  t.same(report, perfectReport(spec.count, sent.bytes), 'none lost, duplicated, reordered or torn')
})

t.test(`${THREAD_MESSAGES} messages from a worker thread to this thread, awaiting on both sides`, async (t) => {
  const spec: StreamSpec = { seed: 0x40_000_000, count: THREAD_MESSAGES, sizes: STRESS_SIZES }
  const buffer = createChannelBuffer()
  const consumer = Consumer.fromBuffer<Uint8Array>(buffer, { codec: 'bytes' })
  const start = performance.now()
  const produced = runChannelWorker<ProduceReport>(t, { buffer, role: 'producer', spec, blocking: false, close: true })
  const report = await consumeStream(consumer, spec)
  const sent = await produced
  t.comment(rate(spec.count, performance.now() - start))
  t.same(report, perfectReport(spec.count, sent.bytes), 'none lost, duplicated, reordered or torn')
  consumer.close()
})

t.test('a producer process SIGKILLed at random points and restarted 20 times: every incarnation\'s stream arrives whole up to its death', async (t) => {
  const ROUNDS = 20
  const random = new Prng(0xc0ffee)
  const name = channelName()
  let totals = 0

  /** Reads `consumer` to the end of what its dead producer published: every message checked, then ERR_PEER_DEAD. */
  async function drain (round: number, consumer: Consumer<Uint8Array>, verifier: StreamVerifier): Promise<void> {
    let code: string | undefined
    for (;;) {
      try {
        verifier.check(await consumer.receive({ timeout: 30_000 }))
      } catch (err) {
        code = (err as { code?: string }).code
        break
      }
    }
    const report = verifier.report
    totals += report.received
    t.same(report, perfectReport(report.received, report.bytes), `round ${round}: ${report.received} messages, none lost, duplicated, reordered or torn`)
    t.equal(code, 'ERR_PEER_DEAD', `round ${round}: then the consumer learned its producer died`)
    consumer.close()
  }

  for (let round = 0; round < ROUNDS; round++) {
    const spec: StreamSpec = { seed: 0x50_000_000 + round, count: 1e9, sizes: { min: 8, max: 512, rareEvery: 32, rareMax: 40 * 1024 } }
    const peer = new ChannelPeer(t)
    // The consumer of the previous round drained and closed, and its
    // producer is dead: this producer finds nothing to take over and makes
    // the channel fresh (test/channel/restart.*.test.ts take over instead).
    await peer.call('openProducer', name, { codec: 'bytes', capacity: 64 * 1024 })
    const consumer = Consumer.open<Uint8Array>(name, { codec: 'bytes' })
    const verifier = new StreamVerifier(spec.seed, spec.sizes)
    void peer.call('produceStream', spec).catch(() => {})
    const killAfter = 1000 + random.int(100_000)
    while (verifier.next < killAfter) verifier.check(await consumer.receive({ timeout: 30_000 }))
    await peer.kill()
    await drain(round, consumer, verifier)
  }
  t.comment(`${totals} messages over ${ROUNDS} incarnations`)
  t.notOk(shmExists(name), 'the last consumer out removed the name')
})

leavesNothingInDevShm(t)
