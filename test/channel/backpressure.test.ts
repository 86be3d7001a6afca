/**
 * Backpressure: a producer process that sends as fast as it can into a
 * small ring read by a slow consumer (this process, pausing as it reads)
 * waits instead of buffering. Its memory stays flat over hundreds of
 * megabytes and every message arrives. Waiting itself costs no memory.
 */
import t from 'tap'

import { Consumer } from '../../lib/index'
import { consumeStream, perfectReport, type ProduceReport, type StreamSpec } from '../support/channel-helpers'
import { ChannelPeer } from '../support/peers'
import { channelName, closeAtEnd, leavesNothingInDevShm, shmExists } from '../support/shm'

const KiB = 1024
const MiB = 1024 * KiB
const CAPACITY = 64 * KiB
const TOTAL = 200 * MiB
/**
 * What the producer may grow by, after warming up, while it sends: half of
 * what it sends. A producer that buffered instead of waiting would hold
 * nearly all of it (the consumer pauses every 128 KiB); one that waits holds
 * the garbage its collector has not yet swept (Node 24 lets 60-80 MiB of
 * freed 8 KiB buffers pile up before it does).
 */
const RSS_BOUND = TOTAL / 2

type Produced = ProduceReport & { rssMin: number, rssMax: number, samples: number }

const cases = [
  { label: '8 KiB messages with send()', size: 8 * KiB, how: 'send' },
  { label: '8 KiB messages with sendSync()', size: 8 * KiB, how: 'sendSync' },
  { label: '96 KiB messages, fragmented, with send()', size: 96 * KiB, how: 'send' }
] as const

for (const { label, size, how } of cases) {
  t.test(`a fast producer and a slow consumer over a 64 KiB ring: ${label}`, async (t) => {
    const peer = new ChannelPeer(t)
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<Uint8Array>(name, { capacity: CAPACITY, codec: 'bytes' }))
    await peer.call('openProducer', name, { codec: 'bytes' })
    const count = Math.ceil(TOTAL / size)
    const spec: StreamSpec = { seed: size, count, sizes: { min: size, max: size } }

    // Every message is allocated afresh, as a careless producer would: only the
    // channel's waiting keeps the process from piling them up.
    const produced = peer.call<Produced>('produceStream', spec, { how, fresh: true, every: Math.max(1, Math.floor(count / 400)), sampleRss: true })
    const report = await consumeStream(consumer, spec, { pauseEvery: Math.max(1, Math.floor(128 * KiB / size)), pauseMs: 1 })
    const sent = await produced

    t.same(report, perfectReport(count, sent.bytes), `all ${count} messages (${Math.round(sent.bytes / MiB)} MiB) arrived whole and in order`)
    t.ok(sent.bytes >= TOTAL, `${sent.bytes} bytes sent`)
    t.ok(sent.timesFull >= 100, `the producer found the ring full ${sent.timesFull} times: it was held back`)
    t.ok(sent.samples >= 100, `${sent.samples} RSS samples`)
    const growth = sent.rssMax - sent.rssMin
    t.ok(growth < RSS_BOUND, `producer RSS grew by ${(growth / MiB).toFixed(1)} MiB while sending (bound ${RSS_BOUND / MiB} MiB)`)

    await peer.call('closeProducer')
    consumer.close()
    t.notOk(shmExists(name), 'the name is gone once both ends closed')
  })
}

t.test('waiting costs no memory per wait: 200 000 waits for room or for a message, with and without a signal', async (t) => {
  const WAITS = 200_000
  const peer = new ChannelPeer(t, 'channel-wait-cost.ts', [], { execArgv: [...process.execArgv, '--expose-gc'] })
  const growth = await peer.call<Record<string, number>>('measure', WAITS)
  t.same(Object.keys(growth), ['send', 'send with a signal', 'receive with a signal', 'readable with a signal'])
  for (const [kind, bytes] of Object.entries(growth)) {
    // Each wait used to leave ~60 bytes behind for good (AbortSignal.any on the end's long-lived closer signal).
    t.ok(bytes < 4 * MiB, `${kind}: heap grew by ${(bytes / MiB).toFixed(2)} MiB over ${WAITS} waits`)
  }
  await peer.end()
})

leavesNothingInDevShm(t)
