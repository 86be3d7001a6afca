/**
 * A minute of full-speed traffic between two processes, with random sizes
 * (some fragmented): every message arrives whole and in order, and the
 * memory of both processes stays flat: the consumer's heap in use and its
 * memory outside the heap after a full collection at 10 s and at the end, the
 * producer's RSS sampled every second after 10 s of warm-up. REL_SOAK_MS sets
 * the duration.
 */
import t from 'tap'
import v8 from 'node:v8'
import vm from 'node:vm'

import { Consumer } from '../../lib/index'
import { StreamVerifier, perfectReport, type SizeSpec } from '../support/channel-helpers'
import { ChannelPeer, within } from '../support/peers'
import { channelName, closeAtEnd, leavesNothingInDevShm } from '../support/shm'

const KiB = 1024
const MiB = 1024 * KiB
const DURATION = Number(process.env.REL_SOAK_MS ?? 60_000)
const SIZES: SizeSpec = { min: 8, max: 2 * KiB, rareEvery: 200, rareMax: 300 * KiB }

/**
 * The JavaScript heap in use, and the memory outside the heap V8 has
 * committed (RSS less heapTotal: native allocations, buffers' backing stores,
 * mappings), right after a full garbage collection. Sampled without one, the
 * consumer's RSS is a sawtooth (tens of MiB of short-lived message buffers
 * between collections) that says nothing about leaks; and V8 grows the heap
 * it has committed towards a steady size over the first tens of seconds
 * (seen: +70 MiB of RSS on Node 24 with the heap in use flat), which is
 * sizing, not a leak. A leak in JavaScript grows the heap in use; one in
 * native code or in buffers grows the memory outside the heap.
 */
function collected (): { rss: number, heap: number, outside: number } {
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc') as () => void
  for (let i = 0; i < 3; i++) gc()
  const { rss, heapUsed, heapTotal } = process.memoryUsage()
  return { rss, heap: heapUsed, outside: rss - heapTotal }
}

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
  let warmCollected: ReturnType<typeof collected> | undefined
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
      if (rss.length === 10) warmCollected = collected()
      nextSample += 1000
    }
  }
  const { sent, rss: producerRss } = await streaming
  const report = verifier.report
  t.equal(code, 'ERR_CHANNEL_CLOSED', 'the stream ends with the producer\'s close')
  t.same(report, perfectReport(sent, report.bytes), `${sent} messages, ${(report.bytes / MiB).toFixed(0)} MiB, all whole and in order`)
  const warm = Math.min(10, Math.floor(rss.length / 3))
  const mib = (n: number): string => (n / MiB).toFixed(1)
  const end = collected()
  const start = warmCollected ?? end
  t.ok(end.heap - start.heap < 16 * MiB, `consumer heap after GC ${mib(start.heap)} -> ${mib(end.heap)} MiB over ${rss.length} s`)
  t.ok(end.outside - start.outside < 48 * MiB, `consumer memory outside the JS heap after GC ${mib(start.outside)} -> ${mib(end.outside)} MiB (RSS ${mib(start.rss)} -> ${mib(end.rss)}; between collections it ranged ${mib(Math.min(...rss))} to ${mib(Math.max(...rss))})`)
  t.ok(growth(producerRss, warm) < 48 * MiB, `producer RSS ${mib(producerRss[warm])} -> max ${mib(Math.max(...producerRss.slice(warm)))} MiB`)
  await peer.end()
  consumer.close()
})

leavesNothingInDevShm(t)
