/**
 * The fan-in ring: producers claim space by compare-and-swap on the tail,
 * write, then commit; the one consumer reads records in claim order.
 *
 * Why a claim the consumer must skip is always known, with its length:
 *
 *   1. Before its compare-and-swap of the tail from t to t + length, a
 *      producer stores t and length in its own table entry (Atomics.store,
 *      sequentially consistent, so any process that sees the new tail sees
 *      them). It clears the length after its commit, or when it gives up
 *      (no room, or it lost the race and tries again with a new t).
 *   2. A commit is the atomic store of the record's first word (COMMITTED |
 *      payload length), the last store of the claim (a wrapped claim's
 *      padding is committed after its record; the padding after a message
 *      shorter than its claim, before it). A consumer that loads it non-zero
 *      sees the whole record. A claim given up is committed as padding.
 *   3. A consumer whose head record reads 0 while the tail is ahead looks
 *      for entries claiming the head. If one is held by a live process, the
 *      claim is under way: it waits. If all are dead, their producers died
 *      between claim and commit: it re-checks the record, zeroes the
 *      claimed bytes, moves the head past them and counts the skip. Two
 *      dead entries may show the head if one lost its race and died before
 *      clearing: the length that ends at the tail, a committed record, or
 *      another claim is the winner's.
 */
import { endLive, readEnd } from '../segment/ends'
import { loadU64, storeU64, word } from '../segment/words'
import { invalidSegment } from '../segment/identity'
import * as L from './layout'
import { FANIN, freeIfDead, type Geometry } from './segment'

const HEAD = word(L.HEAD_OFFSET)
const TAIL = word(L.TAIL_OFFSET)

/** What producers and the consumer share: views and geometry. */
export class FanInRing {
  readonly h: Int32Array
  readonly bytes: Buffer
  readonly capacity: number
  readonly mask: number
  readonly maxProducers: number
  /** Byte offset of the ring in the segment. */
  readonly base: number
  readonly maxPayload: number

  constructor (buffer: SharedArrayBuffer, geometry: Geometry) {
    this.h = new Int32Array(buffer)
    this.bytes = Buffer.from(buffer)
    this.capacity = geometry.capacity
    this.mask = geometry.capacity - 1
    this.maxProducers = geometry.maxProducers
    this.base = geometry.ringOffset
    this.maxPayload = L.maxPayload(geometry.capacity)
  }

  /** Word index of the first word of the record at `position`. */
  recordWord (position: number): number {
    return (this.base + (position & this.mask)) >>> 2
  }

  /** Bytes claimed but not yet read: a snapshot. */
  used (): number {
    return (Atomics.load(this.h, TAIL) - Atomics.load(this.h, HEAD)) >>> 0
  }
}

/** A producer's side: claim, write, commit. Any producer, from its own table entry. */
export class FanInWriter {
  readonly #ring: FanInRing
  readonly #claimStart: number
  readonly #claimLength: number
  readonly #sent: number
  #messages = 0
  readonly index: number

  constructor (ring: FanInRing, index: number) {
    this.#ring = ring
    this.index = index
    const entry = L.producerEntryOffset(index)
    this.#claimStart = word(entry + L.CLAIM_START)
    this.#claimLength = word(entry + L.CLAIM_LENGTH)
    this.#sent = word(entry + L.MESSAGES_SENT)
  }

  /**
   * Claims room for a payload of `length` bytes: returns the claim start,
   * or -1 if the ring has no room now. Retries a lost race at once.
   */
  claim (length: number): number {
    const ring = this.#ring
    const h = ring.h
    const size = L.alignRecord(length)
    for (;;) {
      const tail = Atomics.load(h, TAIL)
      const index = tail & ring.mask
      const need = index + size > ring.capacity ? ring.capacity - index + size : size
      if (((tail - Atomics.load(h, HEAD)) >>> 0) + need > ring.capacity) {
        Atomics.store(h, this.#claimLength, 0)
        return -1
      }
      // Step 1 of the module comment: the claim is in our entry before it is in the tail.
      Atomics.store(h, this.#claimStart, tail)
      Atomics.store(h, this.#claimLength, need)
      if (Atomics.compareExchange(h, TAIL, tail, (tail + need) | 0) === tail) return tail >>> 0
    }
  }

  /** Byte offset in the segment where the payload of the claim at `start` for `length` bytes goes. */
  payloadOffset (start: number, length: number): number {
    const ring = this.#ring
    const index = start & ring.mask
    const at = index + L.alignRecord(length) > ring.capacity ? 0 : index
    return ring.base + at + L.RECORD_HEADER_SIZE
  }

  /**
   * Commits the claim at `start`, made for `claimed` bytes, as a message of
   * its first `length` bytes (written at payloadOffset). Room the message
   * does not use becomes a padding record, committed before the message.
   */
  commit (start: number, claimed: number, length: number): void {
    this.#finish(start, claimed, length, L.TYPE_DATA)
    storeU64(this.#ring.h, this.#sent, ++this.#messages)
  }

  /**
   * Commits the claim at `start`, made for exactly `length` bytes, as a
   * fragment of a larger message: `type` FIRST, MIDDLE or LAST. The message
   * counts as sent with its LAST.
   */
  commitFragment (start: number, length: number, type: number): void {
    this.#finish(start, length, length, type)
    if (type === L.TYPE_LAST) storeU64(this.#ring.h, this.#sent, ++this.#messages)
  }

  /** Gives up the claim at `start` made for `claimed` bytes: the consumer passes over it as padding. */
  discard (start: number, claimed: number): void {
    this.#finish(start, claimed, L.alignRecord(claimed) - L.RECORD_HEADER_SIZE, L.TYPE_PADDING)
  }

  #finish (start: number, claimed: number, length: number, type: number): void {
    const ring = this.#ring
    const h = ring.h
    const producer = this.index << L.PRODUCER_SHIFT
    const index = start & ring.mask
    const wrapped = index + L.alignRecord(claimed) > ring.capacity
    const at = wrapped ? ring.base : ring.base + index
    const rest = L.alignRecord(claimed) - L.alignRecord(length)
    if (rest > 0) {
      const r = (at + L.alignRecord(length)) >>> 2
      h[r + 1] = L.TYPE_PADDING | producer
      Atomics.store(h, r, (L.COMMITTED | (rest - L.RECORD_HEADER_SIZE)) | 0)
    }
    const w = at >>> 2
    h[w + 1] = type | producer
    // The commit (step 2): the consumer that loads it sees the payload and type above.
    Atomics.store(h, w, (L.COMMITTED | length) | 0)
    if (wrapped) {
      const p = (ring.base + index) >>> 2
      h[p + 1] = L.TYPE_PADDING | producer
      Atomics.store(h, p, (L.COMMITTED | (ring.capacity - index - L.RECORD_HEADER_SIZE)) | 0)
    }
    Atomics.store(h, this.#claimLength, 0)
  }
}

/** A claim the consumer found uncommitted at its head: 'wait' while its producer lives. */
export type Stuck = 'wait' | 'skipped' | 'committed'

/** The consumer's side: read in claim order, zero what was read, skip dead claims. */
export class FanInReader {
  readonly #ring: FanInRing
  /** Where the next record is read: ahead of the shared head by what flush() has not published yet. */
  head: number
  /** The head as last stored in the segment. */
  #published: number
  /** The tail as last loaded: records below it need no new load of the line every producer writes. */
  #tail: number
  /** End (byte offset in the segment) of the payload peek() found. */
  end = 0
  /** Type of the record peek() found: DATA or a fragment (FIRST, MIDDLE, LAST). */
  type = 0
  /** Table index of the producer that wrote the record peek() found. */
  producer = 0
  readonly #batch: number
  #received: number
  #skipped: number
  #skippedBytes: number
  #dropped: number

  constructor (ring: FanInRing) {
    this.#ring = ring
    this.head = Atomics.load(ring.h, HEAD) >>> 0
    this.#published = this.head
    this.#tail = this.head
    this.#batch = ring.capacity / 16
    this.#received = loadU64(ring.h, word(L.MESSAGES_RECEIVED_OFFSET))
    this.#skipped = Atomics.load(ring.h, word(L.CLAIMS_SKIPPED_OFFSET)) >>> 0
    this.#skippedBytes = loadU64(ring.h, word(L.BYTES_SKIPPED_OFFSET))
    this.#dropped = Atomics.load(ring.h, word(L.PARTIALS_DROPPED_OFFSET)) >>> 0
  }

  /** Word index the consumer sleeps on while the head record is not committed. */
  get waitWord (): number {
    return this.#ring.recordWord(this.head)
  }

  /** True when the head record is committed. */
  ready (): boolean {
    return Atomics.load(this.#ring.h, this.#ring.recordWord(this.head)) !== 0
  }

  /**
   * The next committed record of a message (DATA, or a fragment): the byte
   * offset in the segment where its payload starts (it ends at `end`; its
   * type and producer index are in `type` and `producer`), or -1 when the
   * head record is not committed. Padding is passed over. Call release()
   * once the payload is used.
   */
  peek (): number {
    const ring = this.#ring
    const h = ring.h
    for (;;) {
      const index = this.head & ring.mask
      const first = Atomics.load(h, (ring.base + index) >>> 2)
      if (first === 0) return -1
      const length = first & L.LENGTH_MASK
      const size = L.alignRecord(length)
      const typeWord = h[((ring.base + index) >>> 2) + 1]
      const type = typeWord & L.TYPE_MASK
      const producer = typeWord >>> L.PRODUCER_SHIFT
      if (size > ((this.#tail - this.head) >>> 0)) this.#tail = Atomics.load(h, TAIL) >>> 0
      if ((first & L.COMMITTED) === 0 || length > ring.capacity || index + size > ring.capacity || size > ((this.#tail - this.head) >>> 0) ||
          type < L.TYPE_DATA || type > L.TYPE_LAST || (type !== L.TYPE_PADDING && (length > ring.maxPayload || producer >= ring.maxProducers))) {
        throw invalidSegment(FANIN, `record at position ${this.head} (word 0x${(first >>> 0).toString(16)}, type ${type}, producer ${producer}) is not a committed record that fits the ring`)
      }
      if (type === L.TYPE_PADDING) {
        this.head = (this.head + size) >>> 0
        continue
      }
      const start = ring.base + index + L.RECORD_HEADER_SIZE
      this.end = start + length
      this.type = type
      this.producer = producer
      return start
    }
  }

  /**
   * Moves past the record at the head. The bytes read are zeroed and the
   * shared head moved (what gives producers room) in batches of
   * `capacity / 16` bytes, and by flush(), which the consumer calls before
   * it waits: one fill and one atomic store per batch, not per message.
   * Returns true when the shared head moved (wake waiting producers).
   * `message`: the record was a whole message (counted as received); a
   * fragment is not, its message is counted by countMessage().
   */
  release (message = true): boolean {
    const ring = this.#ring
    const index = this.head & ring.mask
    const length = ring.h[(ring.base + index) >>> 2] & L.LENGTH_MASK
    if (message) this.#received++
    this.head = (this.head + L.alignRecord(length)) >>> 0
    return ((this.head - this.#published) >>> 0) >= this.#batch && this.flush()
  }

  /** Zeroes what was read since the last flush, then stores the head. Returns true if the head moved. */
  flush (): boolean {
    const ring = this.#ring
    const from = this.#published
    const bytes = (this.head - from) >>> 0
    if (bytes === 0) return false
    const index = from & ring.mask
    const first = Math.min(bytes, ring.capacity - index)
    // Zero first, then move the head (a sequentially consistent store): a
    // producer that sees the new head sees zeros where it may claim.
    ring.bytes.fill(0, ring.base + index, ring.base + index + first)
    if (bytes > first) ring.bytes.fill(0, ring.base, ring.base + bytes - first)
    storeU64(ring.h, word(L.MESSAGES_RECEIVED_OFFSET), this.#received)
    this.#published = this.head
    Atomics.store(ring.h, HEAD, this.head | 0)
    return true
  }

  /** Counts a message reassembled from fragments as received (stored with the next flush). */
  countMessage (): void {
    this.#received++
  }

  /** Counts a partial message dropped because its producer left mid-message, in the header too. */
  countDropped (): void {
    Atomics.store(this.#ring.h, word(L.PARTIALS_DROPPED_OFFSET), ++this.#dropped)
  }

  /** Messages received, claims skipped, and partial messages dropped so far. */
  get received (): number { return this.#received }
  get skipped (): number { return this.#skipped }
  get dropped (): number { return this.#dropped }

  /**
   * Step 3 of the module comment, for a head record that reads 0: waits
   * ('wait') while a live producer claims it or nothing is claimed there,
   * skips it ('skipped') if every producer claiming it is dead, or finds it
   * committed meanwhile ('committed').
   */
  resolveStuck (): Stuck {
    this.flush()
    const ring = this.#ring
    const h = ring.h
    const head = this.head
    const tail = Atomics.load(h, TAIL) >>> 0
    // Skipping moves the head up to this tail, not past it: peek's cached tail stays at or ahead of the head.
    this.#tail = tail
    if (tail === head) return 'wait'
    const dead: Array<{ entry: number, length: number }> = []
    for (let i = 0; i < ring.maxProducers; i++) {
      const entry = L.producerEntryOffset(i)
      const length = Atomics.load(h, word(entry + L.CLAIM_LENGTH))
      if (length === 0 || Atomics.load(h, word(entry + L.CLAIM_START)) >>> 0 !== head) continue
      const end = readEnd(h, entry)
      // A live claimant is under way; a closed one cleared its claim when it closed.
      if (endLive(end)) return 'wait'
      dead.push({ entry, length })
    }
    if (dead.length === 0) return 'wait'
    if (this.ready()) return 'committed'
    const length = this.#winner(dead.map((d) => d.length), tail)
    if (length > ((tail - head) >>> 0)) throw invalidSegment(FANIN, `a claim of ${length} bytes at position ${head} runs past the tail`)
    this.#skipBytes(length)
    for (const d of dead) Atomics.store(h, word(d.entry + L.CLAIM_LENGTH), 0)
    this.#skipped++
    this.#skippedBytes += length
    Atomics.store(h, word(L.CLAIMS_SKIPPED_OFFSET), this.#skipped)
    storeU64(h, word(L.BYTES_SKIPPED_OFFSET), this.#skippedBytes)
    return 'skipped'
  }

  /** Of the lengths dead entries claim at the head, the one that ends where the next claim or record begins. */
  #winner (lengths: number[], tail: number): number {
    if (lengths.length === 1) return lengths[0]
    const ring = this.#ring
    for (const length of lengths) {
      const next = (this.head + length) >>> 0
      if (next === tail || Atomics.load(ring.h, ring.recordWord(next)) !== 0) return length
      for (let i = 0; i < ring.maxProducers; i++) {
        const entry = L.producerEntryOffset(i)
        if (Atomics.load(ring.h, word(entry + L.CLAIM_LENGTH)) !== 0 && Atomics.load(ring.h, word(entry + L.CLAIM_START)) >>> 0 === next) return length
      }
    }
    return lengths[0]
  }

  /** Zeroes `bytes` from the head (a claim may wrap: padding to the end, then from 0) and moves past them. */
  #skipBytes (bytes: number): void {
    const ring = this.#ring
    const index = this.head & ring.mask
    const first = Math.min(bytes, ring.capacity - index)
    ring.bytes.fill(0, ring.base + index, ring.base + index + first)
    if (bytes > first) ring.bytes.fill(0, ring.base, ring.base + bytes - first)
    this.head = (this.head + bytes) >>> 0
    this.#published = this.head
    Atomics.store(ring.h, HEAD, this.head | 0)
  }

  /** Frees the table entries of dead producers with nothing in flight, for newcomers. */
  sweep (): void {
    for (let i = 0; i < this.#ring.maxProducers; i++) freeIfDead(this.#ring.h, i)
  }
}
