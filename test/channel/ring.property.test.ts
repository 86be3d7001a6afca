/**
 * The ring against a model of itself, under random interleavings of every
 * producer step (claim/commit, claim/abort, commit shorter, tryWrite,
 * writeFragments, publish) and consumer step (read, next, nextRange,
 * release), with message sizes from 0 to three times the capacity.
 *
 * After every step:
 * - every message delivered is exactly the one committed next: none lost,
 *   duplicated, reordered or torn, and only once published;
 * - claim and tryWrite fail exactly when the model says there is no room,
 *   and writeFragments writes exactly as many fragments as fit;
 * - canaries hold: header bytes that neither side owns never change, each
 *   side writes only its own words, the consumer never writes the ring, the
 *   producer never writes over records not yet released, and nothing is
 *   written past the ring;
 * - views the consumer holds still read what was sent until they are released.
 *
 * A failure names its seed; SHM_RING_SEED=<seed> re-runs only that one.
 */
import t from 'tap'

import { ShmChannelError } from '../../lib/errors'
import * as L from '../../lib/channel/layout'
import { ASSEMBLED, NONE, RingConsumer, RingProducer, SINGLE } from '../../lib/channel/ring'
import { checkSegment, initSegment } from '../../lib/channel/segment'
import { Prng, seedsFromEnv, sequenceMessage } from '../support/prng'
import { bytesDiffer, consumerPosition, copyRing, indexOf, producerPosition, recordAt, type TestRing } from '../support/ring'

const STEPS = 5000
const TAIL = 64 // canary bytes past the end of the ring

/** Header bytes each side may write: [from, to). Everything else in the header is frozen after initSegment. */
const PRODUCER_WRITES: Array<[number, number]> = [
  [L.PRODUCER_POSITION_OFFSET, L.PRODUCER_POSITION_OFFSET + 4],
  [L.MESSAGES_SENT_OFFSET, L.CONSUMER_WAKEUPS_OFFSET + 4]
]
const CONSUMER_WRITES: Array<[number, number]> = [
  [L.CONSUMER_POSITION_OFFSET, L.CONSUMER_POSITION_OFFSET + 4],
  [L.MESSAGES_RECEIVED_OFFSET, L.PRODUCER_WAKEUPS_OFFSET + 4],
  [L.READ_MARK_OFFSET, L.READ_MARK_OFFSET + 4]
]
/** Bytes initSegment gives meaning to; every other header byte gets a random canary. */
const MEANINGFUL: Array<[number, number]> = [
  [0, L.FLAGS_OFFSET + 4], ...PRODUCER_WRITES, ...CONSUMER_WRITES,
  [L.CONSUMER_PARKED_OFFSET, L.CONSUMER_PARKED_OFFSET + 4], [L.PRODUCER_PARKED_OFFSET, L.PRODUCER_PARKED_OFFSET + 4]
]

const inRanges = (offset: number, ranges: Array<[number, number]>): boolean => ranges.some(([from, to]) => offset >= from && offset < to)

class ModelError extends Error {}

function check (condition: boolean, what: () => string): asserts condition {
  if (!condition) throw new ModelError(what())
}

/** A message as the model follows it from first write to delivery. */
interface Message {
  seq: number
  data: Buffer
  fragmented: boolean
  /** Over the consumer's maxMessageSize: it must be refused once, then skipped. */
  tooLarge: boolean
  beginCommitted: boolean
  beginPublished: boolean
  committed: boolean
  published: boolean
  refused: boolean
  /** Producer position after its last record. */
  end: number
}

interface Config {
  capacity: number
  start: number
  maxMessageSize: number
}

function configFor (prng: Prng): Config {
  const capacity = prng.pick([4096, 4096, 8192])
  const start = prng.chance(0.4)
    ? (2 ** 32 - prng.int(3 * capacity / 8) * 8) >>> 0 // close enough below 2^32 to cross it
    : prng.int(capacity / 8) * 8
  const maxMessageSize = prng.pick([Infinity, Infinity, Infinity, 600, L.maxRecordPayload(capacity), 2 * capacity, 2 * capacity])
  return { capacity, start, maxMessageSize }
}

class Run {
  readonly ring: TestRing
  readonly config: Config
  readonly C: number
  readonly M: number
  readonly prng: Prng
  /** The producer's position as the model has it (committed, maybe unpublished). */
  position: number
  published: number
  seq = 0
  /** Every message from the oldest not yet delivered (or skipped) on, in order. */
  stream: Message[] = []
  writing: { message: Message, offset: number } | null = null
  /** Views read() returned and not yet released, with what they must hold. */
  views: Array<{ view: Uint8Array, expected: Buffer }> = []
  header: Buffer
  tail: Buffer
  lastHeader: Buffer
  lastTail: Buffer
  readonly stats = { delivered: 0, fragmented: 0, refused: 0, padding: 0, full: 0, aborted: 0, shortened: 0, empty: 0, crossed: false }

  constructor (prng: Prng) {
    this.prng = prng
    this.config = configFor(prng)
    const { capacity, start, maxMessageSize } = this.config
    this.C = capacity
    this.M = L.maxRecordPayload(capacity)
    const buffer = new SharedArrayBuffer(L.segmentSize(capacity) + TAIL)
    initSegment(buffer, capacity, start)
    this.header = Buffer.from(buffer, 0, L.HEADER_SIZE)
    this.tail = Buffer.from(buffer, L.HEADER_SIZE + capacity, TAIL)
    for (let i = 0; i < L.HEADER_SIZE; i++) if (!inRanges(i, MEANINGFUL)) this.header[i] = prng.u32() & 0xff
    prng.fill(this.tail)
    prng.fill(Buffer.from(buffer, L.HEADER_SIZE, capacity)) // stale bytes everywhere
    this.ring = {
      buffer,
      capacity,
      producer: new RingProducer(buffer),
      consumer: new RingConsumer(buffer, maxMessageSize),
      header: new Int32Array(buffer, 0, L.HEADER_SIZE / 4),
      bytes: Buffer.from(buffer, L.HEADER_SIZE, capacity)
    }
    this.position = start
    this.published = start
    this.lastHeader = Buffer.from(this.header)
    this.lastTail = Buffer.from(this.tail)
  }

  // ---- the model's view of room ----

  /** Where a record of `size` bytes goes now: padding before it (0 or the bytes to the end), and whether it fits. */
  room (size: number): { fits: boolean, padding: number } {
    const index = this.position & (this.C - 1)
    const toEnd = this.C - index
    const padding = size <= toEnd ? 0 : toEnd
    const free = this.C - ((this.position - consumerPosition(this.ring)) >>> 0)
    return { fits: padding + size <= free, padding }
  }

  /** Checks the padding (if any) and the record just written at the model position, and moves past both. */
  wrote (padding: number, length: number, type: number): void {
    this.padded(padding)
    const at = this.position & (this.C - 1)
    const record = recordAt(this.ring, at)
    check(record.length === length && record.type === type,
      () => `expected a record of ${length} bytes, type 0x${type.toString(16)} at index ${at}; found ${record.length}, 0x${record.type.toString(16)}`)
    this.position = (this.position + L.alignRecord(length)) >>> 0
  }

  /** Checks the padding record (if `padding` is not 0) at the model position and moves past it. */
  padded (padding: number): void {
    if (padding === 0) return
    const at = this.position & (this.C - 1)
    const record = recordAt(this.ring, at)
    check(record.length === padding - 8 && record.type === L.TYPE_PADDING,
      () => `expected a ${padding}-byte padding record at index ${at}, found length ${record.length} type 0x${record.type.toString(16)}`)
    this.position = (this.position + padding) >>> 0
    this.stats.padding++
  }

  newMessage (length: number, fragmented: boolean): Message {
    const message: Message = {
      seq: this.seq,
      data: sequenceMessage(this.seq, length),
      fragmented,
      tooLarge: length > this.config.maxMessageSize,
      beginCommitted: false,
      beginPublished: false,
      committed: false,
      published: false,
      refused: false,
      end: 0
    }
    this.seq++
    return message
  }

  singleLength (): number {
    const M = this.M
    return this.prng.weighted([[3, this.prng.int(17)], [5, this.prng.int(M + 1)], [1, M - this.prng.int(9)], [1, 0]] as const)
  }

  // ---- producer steps ----

  tryWrite (): string {
    const length = this.singleLength()
    const message = this.newMessage(length, false)
    const { fits, padding } = this.room(L.alignRecord(length))
    const before = this.position
    const written = this.ring.producer.tryWrite(message.data)
    check(written === fits, () => `tryWrite(${length}) returned ${written}, the model says ${fits ? 'it fits' : 'no room'}`)
    if (!written) {
      this.seq--
      this.stats.full++
      return `tryWrite(${length}) -> full`
    }
    this.wrote(padding, length, L.TYPE_DATA | L.FLAG_BEGIN | L.FLAG_END)
    this.committed(message, before)
    return `tryWrite(${length})`
  }

  claim (): string {
    const length = this.singleLength()
    const { fits, padding } = this.room(L.alignRecord(length))
    const view = this.ring.producer.claim(length)
    check((view !== null) === fits, () => `claim(${length}) returned ${view === null ? 'null' : 'a view'}, the model says ${fits ? 'it fits' : 'no room'}`)
    if (view === null) {
      this.stats.full++
      return `claim(${length}) -> full`
    }
    const expectedIndex = (padding > 0 ? 0 : this.position & (this.C - 1)) + L.RECORD_HEADER_SIZE
    check(view.length === length && indexOf(view) === expectedIndex, () => `claim(${length}) gave ${view.length} bytes at index ${indexOf(view)}, expected index ${expectedIndex}`)
    this.prng.fill(view) // whatever is claimed but not committed must never be seen
    if (this.prng.chance(0.2)) {
      this.ring.producer.discard()
      this.padded(padding) // a padding record written for the claim stays, committed
      this.stats.aborted++
      return `claim(${length}) + abort`
    }
    const shorter = this.prng.chance(0.3)
    const committed = shorter ? this.prng.int(length + 1) : length
    const message = this.newMessage(committed, false)
    view.set(message.data)
    const before = this.position
    if (shorter) {
      this.ring.producer.commit(committed)
      this.stats.shortened++
    } else {
      this.ring.producer.commit()
    }
    this.wrote(padding, committed, L.TYPE_DATA | L.FLAG_BEGIN | L.FLAG_END)
    this.committed(message, before, length)
    return `claim(${length}) + commit(${committed})`
  }

  /** Records a message committed whole in one step; `claimed` is what its claim asked room for. */
  committed (message: Message, before: number, claimed = message.data.length): void {
    const used = (this.position - before) >>> 0
    const footprint = this.ring.producer.footprint(claimed)
    check(used <= footprint, () => `a ${claimed}-byte claim took ${used} ring bytes, over its footprint ${footprint}`)
    message.beginCommitted = true
    message.committed = true
    message.end = this.position
    if (message.data.length === 0) this.stats.empty++
    this.stream.push(message)
  }

  startFragments (): string {
    const { M, C } = this
    const length = this.prng.weighted([[1, M + 1], [1, 2 * M - 8], [1, C], [1, 3 * C], [8, this.prng.range(M + 1, 3 * C)]] as const)
    const message = this.newMessage(length, true)
    this.stream.push(message)
    this.writing = { message, offset: 0 }
    return `writeFragments(${length}): ${this.continueFragments()}`
  }

  continueFragments (): string {
    const writing = this.writing
    if (writing === null) throw new Error('no fragmented message is being written')
    const { message } = writing
    const total = message.data.length
    const start = this.position
    // What fits now, fragment by fragment, as the protocol says.
    const expected: Array<{ padding: number, length: number, type: number }> = []
    let offset = writing.offset
    let position = this.position
    while (offset < total) {
      const prefix = offset === 0 ? L.FRAGMENT_TOTAL_SIZE : 0
      const chunk = Math.min(this.M - prefix, total - offset)
      const size = L.alignRecord(prefix + chunk)
      this.position = position
      const { fits, padding } = this.room(size)
      if (!fits) break
      const type = L.TYPE_DATA | (offset === 0 ? L.FLAG_BEGIN : 0) | (offset + chunk === total ? L.FLAG_END : 0)
      expected.push({ padding, length: prefix + chunk, type })
      position = (position + padding + size) >>> 0
      offset += chunk
    }
    this.position = start
    const from = writing.offset
    const got = this.ring.producer.writeFragments(message.data, from)
    check(got === offset, () => `writeFragments(${total} bytes, from ${from}) returned ${got}, the model expected ${offset}`)
    for (const record of expected) this.wrote(record.padding, record.length, record.type)
    if (from === 0 && got > 0) message.beginCommitted = true
    if (expected.length === 0) this.stats.full++
    writing.offset = got
    if (got === total) {
      message.committed = true
      message.end = this.position
      this.writing = null
    }
    return `${got - from} bytes to ${got} of ${total}`
  }

  publish (): string {
    const pending = this.position !== this.published
    check(this.ring.producer.pending === pending, () => `pending is ${String(this.ring.producer.pending)}, the model says ${String(pending)}`)
    check(!this.ring.producer.publish(), () => 'publish() woke a consumer that is not parked')
    check(producerPosition(this.ring) === this.position, () => `the producer position is ${producerPosition(this.ring)} after publish, the model says ${this.position}`)
    for (const message of this.stream) {
      if (message.committed) message.published = true
      if (message.beginCommitted) message.beginPublished = true
    }
    if (this.published > this.position) this.stats.crossed = true
    this.published = this.position
    return `publish() at ${this.position}`
  }

  /** Stale bytes in the free space: the consumer must never read them as records. */
  scribble (): string {
    const free = this.C - ((this.position - consumerPosition(this.ring)) >>> 0)
    const length = this.prng.int(free + 1)
    for (let i = 0; i < length; i++) this.ring.bytes[(this.position + i) & (this.C - 1)] = this.prng.u32() & 0xff
    return `scribble ${length} free bytes`
  }

  // ---- consumer steps ----

  read (): string {
    this.checkViews()
    const consumer = this.ring.consumer
    const released = consumerPosition(this.ring)
    // Refused messages whose last fragment is out are skipped within this call.
    while (this.stream.length > 0 && this.stream[0].refused && this.stream[0].published) this.stream.shift()
    const head = this.stream[0] as Message | undefined
    const expect = head !== undefined && head.tooLarge && !head.refused && head.beginPublished
      ? 'refusal'
      : head !== undefined && !head.tooLarge && head.published ? 'message' : 'nothing'
    const api = this.prng.pick(['read', 'next', 'nextRange'] as const)

    let data: Uint8Array | null
    let shared: boolean
    try {
      if (api === 'read') {
        const message = consumer.read()
        data = message?.data ?? null
        shared = message?.shared ?? false
      } else if (api === 'next') {
        data = consumer.next()
        shared = consumer.lastShared
      } else {
        const found = consumer.nextRange()
        data = found === NONE ? null : found === SINGLE ? consumer.bytes.subarray(consumer.lastStart, consumer.lastStart + consumer.lastLength) : consumer.assembled
        shared = found === SINGLE
        check(found === NONE || found === SINGLE || found === ASSEMBLED, () => `nextRange() returned ${found}`)
        if (found === ASSEMBLED) check(consumer.lastLength === consumer.assembled.length, () => 'lastLength is not the assembled length')
      }
    } catch (err) {
      check(err instanceof ShmChannelError && err.code === 'ERR_MESSAGE_TOO_LARGE', () => `${api}() threw ${String(err)}, expected ${expect}`)
      check(expect === 'refusal', () => `${api}() threw ERR_MESSAGE_TOO_LARGE, expected ${expect}`)
      if (head === undefined) throw new Error('unreachable')
      head.refused = true
      if (head.published) this.stream.shift()
      this.stats.refused++
      if (consumerPosition(this.ring) !== released) this.views = []
      return `${api}() -> refused #${head.seq}`
    }
    check(expect !== 'refusal', () => `${api}() returned ${data === null ? 'null' : `${data.length} bytes`}, expected ERR_MESSAGE_TOO_LARGE for #${head?.seq ?? -1}`)
    if (consumerPosition(this.ring) !== released) this.views = [] // it released fragments, and so everything read before
    const position = (consumerPosition(this.ring) + consumer.unreleased) >>> 0
    if (expect === 'nothing' || head === undefined) {
      check(data === null, () => `${api}() returned ${data?.length ?? 0} bytes, but no whole message is published (next is #${head?.seq ?? 'none'})`)
      check(position === this.published, () => `after reading everything the consumer is at ${position}, the producer published up to ${this.published}`)
      return `${api}() -> nothing`
    }
    const problem = bytesDiffer(data, head.data)
    check(problem === null, () => `${api}() for message #${head.seq} (${head.data.length} bytes): ${problem ?? ''}`)
    check(shared === !head.fragmented, () => `message #${head.seq} came back ${shared ? 'shared' : 'copied'}`)
    if (data !== null && shared) {
      check(data.buffer === this.ring.buffer, () => 'a shared message is not a view of the segment')
      this.views.push({ view: data, expected: head.data })
    }
    check(position === head.end, () => `after message #${head.seq} the consumer is at ${position}, it ends at ${head.end}`)
    this.stream.shift()
    this.stats.delivered++
    if (head.fragmented) this.stats.fragmented++
    return `${api}() -> #${head.seq} (${head.data.length} bytes)`
  }

  release (): string {
    this.checkViews()
    const expected = (consumerPosition(this.ring) + this.ring.consumer.unreleased) >>> 0
    check(!this.ring.consumer.release(), () => 'release() woke a producer that is not parked')
    check(consumerPosition(this.ring) === expected && this.ring.consumer.unreleased === 0,
      () => `release() stored ${consumerPosition(this.ring)}, expected ${expected}`)
    this.views = []
    return `release() at ${expected}`
  }

  checkViews (): void {
    for (const { view, expected } of this.views) {
      const problem = bytesDiffer(view, expected)
      check(problem === null, () => `an unreleased view changed: ${problem ?? ''}`)
    }
  }

  // ---- canaries ----

  /** Runs one step of `side`, checking the canaries around what that side may write. */
  step (side: 'producer' | 'consumer' | 'test', op: () => string): string {
    // Ring bytes this step must not touch: all of them for the consumer, the
    // records not yet released for the producer.
    const from = consumerPosition(this.ring)
    const held = side === 'consumer' ? Buffer.from(this.ring.bytes) : copyRing(this.ring, from, (this.position - from) >>> 0)
    const what = op()
    if (side === 'consumer') {
      check(this.ring.bytes.equals(held), () => `${what}: the consumer wrote into the ring`)
    } else {
      const now = copyRing(this.ring, from, held.length)
      check(now.equals(held), () => `${what}: the producer wrote over unreleased records at ${from}..${from + held.length}: ${bytesDiffer(now, held) ?? ''}`)
      this.checkViews()
    }
    const writable = side === 'producer' ? PRODUCER_WRITES : side === 'consumer' ? CONSUMER_WRITES : []
    for (let i = 0; i < L.HEADER_SIZE; i++) {
      if (this.header[i] !== this.lastHeader[i] && !inRanges(i, writable)) {
        throw new ModelError(`${what}: header byte ${i} changed from ${this.lastHeader[i]} to ${this.header[i]} in a ${side} step`)
      }
    }
    check(this.tail.equals(this.lastTail), () => `${what}: bytes past the end of the ring changed`)
    this.header.copy(this.lastHeader)
    check(checkSegment(this.ring.buffer) === this.C, () => `${what}: checkSegment no longer accepts the segment`)
    return what
  }

  producerStep (): string {
    if (this.writing !== null) {
      const op = this.prng.weighted([[6, 'continue'], [3, 'publish'], [1, 'scribble']] as const)
      if (op === 'scribble') return this.step('test', () => this.scribble())
      return this.step('producer', () => op === 'continue' ? `writeFragments: ${this.continueFragments()}` : this.publish())
    }
    const op = this.prng.weighted([[4, 'tryWrite'], [4, 'claim'], [1, 'fragments'], [3, 'publish'], [1, 'scribble']] as const)
    if (op === 'scribble') return this.step('test', () => this.scribble())
    return this.step('producer', () => {
      switch (op) {
        case 'tryWrite': return this.tryWrite()
        case 'claim': return this.claim()
        case 'fragments': return this.startFragments()
        default: return this.publish()
      }
    })
  }

  consumerStep (): string {
    return this.step('consumer', () => this.prng.chance(0.7) ? this.read() : this.release())
  }

  /** Finishes what is being written and reads everything out. */
  drain (): void {
    for (let turns = 0; this.writing !== null || this.stream.length > 0; turns++) {
      check(turns < 10_000, () => `no progress draining: ${this.stream.length} messages left`)
      if (this.writing !== null) this.step('producer', () => this.continueFragments())
      this.step('producer', () => this.publish())
      this.step('consumer', () => this.read())
      if (this.prng.chance(0.5)) this.step('consumer', () => this.release())
    }
    this.step('consumer', () => this.read())
    this.step('consumer', () => this.release())
    check(this.ring.producer.drained, () => 'the producer does not see the ring drained')
  }
}

t.test('random interleavings of producer and consumer steps keep every message whole and every canary intact', async (t) => {
  const seeds = seedsFromEnv('SHM_RING_SEED', [1, 2, 3, 4, 5, 0xc0ffee, 0x5eed5eed, 20260611])
  for (const seed of seeds) {
    const prng = new Prng(seed)
    const run = new Run(prng)
    const { capacity, start, maxMessageSize } = run.config
    t.test(`seed ${seed}: capacity ${capacity}, starting at position ${start}, maxMessageSize ${maxMessageSize}`, async (t) => {
      const recent: string[] = []
      let problem: string | null = null
      try {
        // Phases lean to the producer (the ring fills) or the consumer (it drains).
        let producerShare = 0.5
        for (let step = 0; step < STEPS; step++) {
          if (step % 200 === 0) producerShare = prng.pick([0.3, 0.5, 0.75])
          const what = prng.chance(producerShare) ? run.producerStep() : run.consumerStep()
          recent.push(`${step}: ${what}`)
          if (recent.length > 12) recent.shift()
        }
        run.drain()
      } catch (err) {
        if (!(err instanceof ModelError) && !(err instanceof ShmChannelError)) throw err
        problem = `seed ${seed}: ${err.message}\nlast steps:\n  ${recent.join('\n  ')}\nre-run with SHM_RING_SEED=${seed}`
      }
      t.equal(problem, null, `seed ${seed}`)
      const s = run.stats
      t.ok(s.delivered > 300, `${s.delivered} messages delivered (seed ${seed})`)
      if (maxMessageSize > L.maxRecordPayload(capacity)) t.ok(s.fragmented > 5, `${s.fragmented} of them fragmented`)
      t.ok(s.full > 10, `the ring was full ${s.full} times`)
      t.ok(s.padding > 10, `${s.padding} padding records`)
      t.ok(s.aborted > 10 && s.shortened > 10 && s.empty > 10, `${s.aborted} aborted claims, ${s.shortened} shortened commits, ${s.empty} empty messages`)
      if (maxMessageSize < 3 * capacity) t.ok(s.refused > 0, `${s.refused} messages refused as over maxMessageSize`)
      if (start > 2 ** 32 - 3 * capacity) t.ok(s.crossed, 'the positions crossed 2^32')
    })
  }
})
