/**
 * Corrupt and hostile segments at the channel level (test/channel/ring.hostile.test.ts
 * covers the ring's record checks one by one, on a buffer):
 *
 * - a named segment whose header is wrong is refused by Producer.open and
 *   Consumer.open with ERR_INVALID_SEGMENT naming the fault, and left alone;
 * - a consumer whose segment is scribbled over, by a seeded fuzzer here or
 *   by a hostile process holding the producer end, either delivers messages
 *   (no larger than maxMessageSize) or stops with a library error; it never
 *   hangs, never throws anything else, and never allocates more than
 *   maxMessageSize for one message.
 *
 * Fuzz cases that once failed live in test/corpus/segment-*.json and are
 * replayed first. A case: { capacity, maxMessageSize, sizes: [message
 * sizes sent first], writes: [{ offset (from the start of the segment), hex }] }.
 * (A message that fails to decode is ERR_DECODE for that message alone:
 * test/channel/codecs.test.ts covers it.)
 */
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'

import { Consumer, Producer, Region, ShmChannelError, createChannelBuffer } from '../../lib/index'
import * as L from '../../lib/channel/layout'
import { initSegment } from '../../lib/channel/segment'
import { makeMessage } from '../support/channel-helpers'
import { ChannelPeer, thrown, within } from '../support/peers'
import { channelName, closeAtEnd, leavesNothingInDevShm, unlinkIfPresent } from '../support/shm'
import { Prng, seedsFromEnv } from '../support/prng'

const KiB = 1024

t.test('a named segment with a bad header is refused by both ends, naming the fault, and left alone', async (t) => {
  const cases: Array<[string, number, (h: Int32Array) => void, RegExp]> = [
    ['wrong magic', L.segmentSize(4096), (h) => { h[L.word(L.MAGIC_OFFSET)] = 0x12345678 }, /magic is 0x12345678/],
    ['an unknown major version', L.segmentSize(4096), (h) => { h[L.word(L.VERSION_OFFSET)] = 2 << 16 }, /version 2\.0 is not supported/],
    ['a capacity that is not a power of two', L.segmentSize(8192), (h) => { h[L.word(L.CAPACITY_OFFSET)] = 6000 }, /capacity 6000/],
    ['a capacity of 0', L.segmentSize(4096), (h) => { h[L.word(L.CAPACITY_OFFSET)] = 0 }, /capacity 0/],
    ['a capacity over 2^30', L.segmentSize(4096), (h) => { h[L.word(L.CAPACITY_OFFSET)] = 2 ** 31 }, /capacity 2147483648/],
    ['a capacity larger than the object (smaller than its header says)', L.segmentSize(4096), (h) => { h[L.word(L.CAPACITY_OFFSET)] = 1 << 20 }, /capacity 1048576 does not fit in 5120 bytes/],
    ['a header size other than 1024', L.segmentSize(4096), (h) => { h[L.word(L.HEADER_SIZE_OFFSET)] = 4096 }, /header size 4096/],
    ['positions more than capacity apart', L.segmentSize(4096), (h) => { h[L.word(L.PRODUCER_POSITION_OFFSET)] = 8192 }, /ahead of the consumer/]
  ]
  for (const [what, size, spoil, message] of cases) {
    t.test(what, async (t) => {
      const name = channelName()
      const region = closeAtEnd(t, Region.create(name, size))
      initSegment(region.buffer, 4096)
      spoil(new Int32Array(region.buffer, 0, L.HEADER_SIZE / 4))
      const before = Buffer.from(region.buffer).toString('hex')
      for (const open of [() => Producer.open(name), () => Consumer.open(name)]) {
        const err = thrown(open)
        t.equal(err.code, 'ERR_INVALID_SEGMENT')
        t.match(err.message, message)
      }
      t.equal(Buffer.from(region.buffer).toString('hex'), before, 'not a byte changed')
      t.ok(region.unlinkIfSame(), 'nor the name taken away')
    })
  }

  t.test('an object smaller than a header, with a magic', async (t) => {
    const name = channelName()
    const region = closeAtEnd(t, Region.create(name, 512))
    new Int32Array(region.buffer)[0] = L.MAGIC | 0
    for (const open of [() => Producer.open(name), () => Consumer.open(name)]) {
      const err = thrown(open)
      t.equal(err.code, 'ERR_INVALID_SEGMENT')
      t.match(err.message, /512 bytes is smaller than a header/)
    }
    unlinkIfPresent(name)
  })
})

interface FuzzCase {
  note?: string
  capacity: number
  maxMessageSize: number
  sizes: number[]
  writes: Array<{ offset: number, hex: string }>
}

const ALLOWED = new Set(['ERR_INVALID_SEGMENT', 'ERR_MESSAGE_TOO_LARGE'])

/**
 * Sends `sizes`, applies `writes` to the segment, and reads until the ring
 * is empty or the consumer refuses it. Returns what went wrong, or null.
 * Counts the largest Buffer.allocUnsafe while reading.
 */
function replay (c: FuzzCase): string | null {
  const buffer = createChannelBuffer(c.capacity)
  const producer = Producer.fromBuffer<Uint8Array>(buffer, { codec: 'bytes' })
  const consumer = Consumer.fromBuffer<Uint8Array>(buffer, { codec: 'bytes', maxMessageSize: c.maxMessageSize })
  try {
    let seq = 0
    for (const size of c.sizes) if (!producer.trySend(makeMessage(1, seq++, size))) break
    const bytes = new Uint8Array(buffer)
    for (const { offset, hex } of c.writes) bytes.set(Buffer.from(hex, 'hex').subarray(0, Math.max(0, bytes.length - offset)), offset)
    const allocUnsafe = Buffer.allocUnsafe
    let largest = 0
    Buffer.allocUnsafe = (n: number) => { largest = Math.max(largest, n); return allocUnsafe(n) }
    try {
      // Each read consumes at least one record of at least 8 bytes: the ring holds at most capacity / 8.
      for (let reads = 0; reads <= c.capacity / 8 + 1; reads++) {
        let message: Uint8Array | undefined
        try {
          message = consumer.tryReceive()
        } catch (err) {
          if (err instanceof ShmChannelError && ALLOWED.has(err.code)) {
            if (err.code === 'ERR_INVALID_SEGMENT') return null
            continue // too large: that message is skipped, the next may be read
          }
          return `threw ${String(err)}`
        }
        if (message === undefined) return null
        if (message.length > c.maxMessageSize) return `delivered ${message.length} bytes, over maxMessageSize`
        if (largest > c.maxMessageSize) return `allocated ${largest} bytes for one message`
      }
      return 'kept reading more records than the ring can hold'
    } finally {
      Buffer.allocUnsafe = allocUnsafe
    }
  } finally {
    producer.close()
    consumer.close()
  }
}

const corpusDir = path.join(__dirname, 'corpus')
const corpus = fs.readdirSync(corpusDir).filter((f) => /^segment-.*\.json$/.test(f)).sort()

t.test('the fuzz corpus replays cleanly', async (t) => {
  for (const file of corpus) {
    const cases = JSON.parse(fs.readFileSync(path.join(corpusDir, file), 'utf8')) as FuzzCase[]
    cases.forEach((c, i) => { t.equal(replay(c), null, `${file} #${i}${c.note !== undefined ? ': ' + c.note : ''}`) })
  }
})

t.test('seeded random scribbles over a segment: delivered or refused, never anything else', async (t) => {
  const budget = Number(process.env.REL_FUZZ_MS ?? 3000)
  for (const seed of seedsFromEnv('REL_FUZZ_SEED', [0xfacade])) {
    const random = new Prng(seed)
    const end = performance.now() + budget
    let cases = 0
    const failures: FuzzCase[] = []
    while (performance.now() < end) {
      const capacity = random.pick([4096, 8192, 65536])
      const c: FuzzCase = {
        capacity,
        maxMessageSize: random.pick([64, 1024, 16 * KiB]),
        sizes: Array.from({ length: random.range(0, 60) }, () => random.chance(0.1) ? random.range(capacity / 4, capacity / 2) : random.range(8, 300)),
        writes: Array.from({ length: random.range(1, 6) }, () => {
          const target = random.weighted([[3, 'ring'], [1, 'positions'], [1, 'record']] as const)
          const offset = target === 'positions'
            ? random.pick([L.PRODUCER_POSITION_OFFSET, L.CONSUMER_POSITION_OFFSET])
            : target === 'record' ? L.HEADER_SIZE + 8 * random.int(capacity / 8) : L.HEADER_SIZE + random.int(capacity)
          return { offset, hex: Buffer.from(random.fill(new Uint8Array(random.range(1, target === 'ring' ? 32 : 8)))).toString('hex') }
        })
      }
      cases++
      if (replay(c) !== null) failures.push(c)
    }
    for (const c of failures.slice(0, 5)) t.equal(replay(c), null, `seed ${seed}: ${JSON.stringify(c)}`)
    t.equal(failures.length, 0, `seed ${seed}: ${cases} cases in ${budget} ms, ${failures.length} failed (keep them in test/corpus/)`)
  }
})

t.test('a hostile producer process scribbling over the live segment', async (t) => {
  for (const seed of seedsFromEnv('REL_HOSTILE_SEED', [7, 8])) {
    t.test(`seed ${seed}: the consumer delivers messages within its limit or stops with a library error, and never hangs`, async (t) => {
      const name = channelName()
      const maxMessageSize = 8 * KiB
      const consumer = closeAtEnd(t, Consumer.open<Uint8Array>(name, { codec: 'bytes', capacity: 64 * KiB, maxMessageSize, peerCheckInterval: 50 }))
      const peer = new ChannelPeer(t, 'rel-peer.ts')
      await peer.call('openProducer', name, { codec: 'bytes' })
      const scribbling = peer.call<{ writes: number, sent: number }>('scribble', name, seed, 4000)
      const allocUnsafe = Buffer.allocUnsafe
      let largest = 0
      Buffer.allocUnsafe = (n: number) => { largest = Math.max(largest, n); return allocUnsafe(n) }
      const outcomes = new Map<string, number>()
      let delivered = 0
      const stop = performance.now() + 15_000
      try {
        for (;;) {
          if (performance.now() >= stop) { t.fail('still reading after 15 s'); break }
          try {
            const message = await within(5000, consumer.receive({ timeout: 500 }), 'receive with a 500 ms timeout')
            if (message.length > maxMessageSize) t.fail(`a ${message.length}-byte message`)
            delivered++
          } catch (err) {
            const code = (err as { code?: string }).code ?? String(err)
            outcomes.set(code, (outcomes.get(code) ?? 0) + 1)
            if (code === 'ERR_MESSAGE_TOO_LARGE') continue
            if (code === 'ERR_TIMEOUT') { if (outcomes.get(code)! < 20) continue }
            break
          }
        }
      } finally {
        Buffer.allocUnsafe = allocUnsafe
      }
      const { writes, sent } = await within(20_000, scribbling, 'the scribbler')
      const codes = [...outcomes.keys()]
      t.ok(codes.every((c) => ['ERR_INVALID_SEGMENT', 'ERR_MESSAGE_TOO_LARGE', 'ERR_TIMEOUT', 'ERR_PEER_DEAD', 'ERR_CHANNEL_CLOSED'].includes(c)),
        `outcomes ${JSON.stringify(Object.fromEntries(outcomes))}, ${delivered} messages delivered; ${writes} scribbles among ${sent} sends`)
      t.ok(largest <= maxMessageSize, `largest allocation while reading: ${largest} bytes`)
      await peer.end()
      consumer.close()
      unlinkIfPresent(name)
    })
  }
})

leavesNothingInDevShm(t)
