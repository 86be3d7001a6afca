/**
 * A minute of full-speed traffic between two processes, with random sizes
 * (some fragmented): every message arrives whole and in order, and the
 * memory of both processes stays flat (RSS sampled every second; the first
 * ten seconds are warm-up). REL_SOAK_MS sets the duration.
 */
import t from 'tap'

import { Consumer } from '../../lib/index'
import {
  ChannelPeer, StreamVerifier, channelName, closeAtEnd, leavesNothingInDevShm, perfectReport, within, type SizeSpec
} from '../support/channel-helpers'

const KiB = 1024
const MiB = 1024 * KiB
const DURATION = Number(process.env.REL_SOAK_MS ?? 60_000)
const SIZES: SizeSpec = { min: 8, max: 2 * KiB, rareEvery: 200, rareMax: 300 * KiB }

/** Growth from the sample at `from` to the highest sample after it. */
function growth (samples: number[], from: number): number {
  const base = samples[Math.min(from, samples.length - 1)]
  return Math.max(...samples.slice(from)) - base
}

t.test(`${DURATION / 1000} s of traffic: nothing lost, and memory flat on both sides`, async (t) => {
  const name = channelName()
  const consumer = closeAtEnd(t, Consumer.open<Uint8Array>(name, { codec: 'bytes', capacity: 256 * KiB }))
  const peer = new ChannelPeer(t, 'rel-peer.ts')
  await peer.call('openProducer', name, { codec: 'bytes' })
  const seed = 0x50a4
  const streaming = peer.call<{ sent: number, rss: number[] }>('streamFor', DURATION, seed, SIZES)
  const verifier = new StreamVerifier(seed, SIZES)
  const rss: number[] = []
  let nextSample = performance.now()
  let code: string | undefined
  for (;;) {
    try {
      const message = consumer.tryReceive() ?? await within(30_000, consumer.receive(), 'receive')
      verifier.check(message)
    } catch (err) {
      code = (err as { code?: string }).code
      break
    }
    if (performance.now() >= nextSample) {
      rss.push(process.memoryUsage.rss())
      nextSample += 1000
    }
  }
  const { sent, rss: producerRss } = await streaming
  const report = verifier.report
  t.equal(code, 'ERR_CHANNEL_CLOSED', 'the stream ends with the producer\'s close')
  t.same(report, perfectReport(sent, report.bytes), `${sent} messages, ${(report.bytes / MiB).toFixed(0)} MiB, all whole and in order`)
  const warm = Math.min(10, Math.floor(rss.length / 3))
  const mib = (n: number): string => (n / MiB).toFixed(1)
  t.ok(growth(rss, warm) < 48 * MiB, `consumer RSS ${mib(rss[warm])} -> max ${mib(Math.max(...rss.slice(warm)))} MiB over ${rss.length} s`)
  t.ok(growth(producerRss, warm) < 48 * MiB, `producer RSS ${mib(producerRss[warm])} -> max ${mib(Math.max(...producerRss.slice(warm)))} MiB`)
  await peer.end()
  consumer.close()
})

leavesNothingInDevShm(t)
