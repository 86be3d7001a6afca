/**
 * The topic ring: one writer, any number of readers, each with its own
 * cursor; a message is written once and read in place by every reader.
 *
 * Why a reader never returns a torn or half-overwritten message (the
 * lapped-reader rule, as in Aeron's broadcast receiver):
 *
 *   1. Before it writes a byte of a record, the writer stores `intent`, the
 *      position where the record ends (Atomics.store). Writing [t, intent)
 *      overwrites the bytes of positions up to intent - capacity.
 *   2. After the record is whole, it stores `tail` = intent.
 *   3. A reader at cursor c loads tail (nothing at or past it is read),
 *      reads the record header (its position word must be c), decodes the
 *      payload, then makes an atomic read-modify-write of a word of its own
 *      (so the reads before it cannot move after it, on any CPU) and loads
 *      intent. If intent - c > capacity, the writer may have written over
 *      the record while it was read: the value is dropped and the reader
 *      is lapped. Else every byte read was the record's.
 *   4. A lapped reader moves to `head`, the oldest record start the writer
 *      has not overwritten (it moves head before its intent), re-checked
 *      the same way; the message numbers of the record there and of the
 *      one expected say how many were lost.
 *
 * Under the 'block' policy the writer never writes past the slowest live
 * reader's cursor plus capacity, so only a reader that joins at the oldest
 * record while the writer moves on can be lapped (it then starts at head).
 * A reader stores its cursor in batches (TopicReader#flush): the cursor the
 * writer sees is at or behind the real one, which only makes it wait sooner.
 */
import { invalidSegment } from '../segment/identity'
import { storeU64, word } from '../segment/words'
import * as L from './layout'
import { TOPIC, type TopicGeometry } from './segment'

export const TAIL = word(L.TAIL_OFFSET)
const INTENT = word(L.INTENT_OFFSET)
const HEAD = word(L.HEAD_OFFSET)
const NEXT_SEQUENCE = word(L.NEXT_SEQUENCE_OFFSET)
const PUBLISHED = word(L.PUBLISHED_OFFSET)
export const JOINS = word(L.JOINS_OFFSET)

export class TopicRing {
  readonly h: Int32Array
  readonly bytes: Buffer
  readonly capacity: number
  readonly mask: number
  readonly maxSubscribers: number
  readonly base: number
  readonly maxPayload: number
  readonly overwrite: boolean

  constructor (buffer: SharedArrayBuffer, geometry: TopicGeometry) {
    this.h = new Int32Array(buffer)
    this.bytes = Buffer.from(buffer)
    this.capacity = geometry.capacity
    this.mask = geometry.capacity - 1
    this.maxSubscribers = geometry.maxSubscribers
    this.base = geometry.ringOffset
    this.maxPayload = L.maxPayload(geometry.capacity)
    this.overwrite = geometry.policy === 'overwrite'
  }

  /** Word index of the record at `position`. */
  recordWord (position: number): number {
    return (this.base + (position & this.mask)) >>> 2
  }

  /** Bytes of the record (padding included) at `position`, from its header. */
  recordSize (position: number): number {
    const index = position & this.mask
    const w = (this.base + index) >>> 2
    const size = L.alignRecord(this.h[w] >>> 0)
    if (this.h[w + 1] === L.TYPE_PADDING) return this.capacity - index
    return size
  }
}

/** The publisher's side. */
export class TopicWriter {
  readonly #ring: TopicRing
  #tail: number
  #head: number
  #sequence: number
  #published: number
  /** Under 'block': position up to which the writer may write without looking at cursors again, and the joins count it was computed at. */
  #limit = 0
  #joinsSeen = -1

  constructor (ring: TopicRing) {
    this.#ring = ring
    this.#tail = Atomics.load(ring.h, TAIL) >>> 0
    this.#head = Atomics.load(ring.h, HEAD) >>> 0
    this.#sequence = Atomics.load(ring.h, NEXT_SEQUENCE) >>> 0
    this.#published = this.#sequence
    // A publisher that takes over a topic finishes nobody's record: its intent is its tail.
    Atomics.store(ring.h, INTENT, this.#tail | 0)
  }

  get tail (): number { return this.#tail }

  /** Bytes a payload of `length` takes at the tail now, padding included. */
  need (length: number): number {
    const ring = this.#ring
    const size = L.alignRecord(length)
    const index = this.#tail & ring.mask
    return index + size > ring.capacity ? ring.capacity - index + size : size
  }

  /**
   * Under 'block': true if `need` bytes fit before the slowest open
   * subscriber's cursor comes round. Looks at the cursors only when the
   * cached limit is not enough or a subscriber joined since.
   */
  hasRoom (need: number, cursors: () => number): boolean {
    const ring = this.#ring
    const joins = Atomics.load(ring.h, JOINS)
    const end = (this.#tail + need) >>> 0
    if (joins === this.#joinsSeen && ((this.#limit - end) | 0) >= 0) return true
    this.#joinsSeen = joins
    this.#limit = (cursors() + ring.capacity) >>> 0
    return ((this.#limit - end) | 0) >= 0
  }

  /** Writes a record holding `payload`. */
  write (payload: Uint8Array): void {
    const length = payload.length
    const ring = this.#ring
    const h = ring.h
    const need = this.need(length)
    const start = this.#tail
    const intent = (start + need) >>> 0
    // Step 4's head first, then step 1's intent: a reader that sees the intent sees a head not behind it.
    let head = this.#head
    if (((intent - head) >>> 0) > ring.capacity) {
      do {
        const size = ring.recordSize(head)
        if (size <= 0 || size > ring.capacity) throw invalidSegment(TOPIC, `record at position ${head} has a size of ${size}`)
        head = (head + size) >>> 0
      } while (((intent - head) >>> 0) > ring.capacity)
      this.#head = head
      Atomics.store(h, HEAD, head | 0)
    }
    Atomics.store(h, INTENT, intent | 0)
    const sequence = this.#sequence
    let at = start
    const index = start & ring.mask
    if (need !== L.alignRecord(length)) {
      const p = (ring.base + index) >>> 2
      h[p] = ring.capacity - index - L.RECORD_HEADER_SIZE
      h[p + 1] = L.TYPE_PADDING
      h[p + 2] = start | 0
      h[p + 3] = sequence | 0
      at = (start + ring.capacity - index) >>> 0
    }
    const w = ring.recordWord(at)
    h[w] = length
    h[w + 1] = L.TYPE_DATA
    h[w + 2] = at | 0
    h[w + 3] = sequence | 0
    ring.bytes.set(payload, (w << 2) + L.RECORD_HEADER_SIZE)
    this.#sequence = (sequence + 1) >>> 0
    h[NEXT_SEQUENCE] = this.#sequence | 0
    storeU64(h, PUBLISHED, ++this.#published)
    // Step 2: the record is whole.
    this.#tail = intent
    Atomics.store(h, TAIL, intent | 0)
  }
}

/** What a read found. */
export const NOTHING = 0
export const READ = 1
export const LAPPED = 2

/** A subscriber's side: its own cursor, reading in place. */
export class TopicReader {
  readonly #ring: TopicRing
  readonly #cursorWord: number
  readonly #lostWord: number
  readonly #receivedWord: number
  cursor: number
  /** The cursor as last stored in the entry: flush() stores it (and the count received) once per batch, not per message. */
  #published: number
  readonly #batch: number
  /** Message number of the next record expected. */
  #expected: number
  #received = 0
  lost = 0
  /** Messages lost at the last lap (set when read() returns LAPPED). */
  lastLost = 0

  constructor (ring: TopicRing, index: number, from: 'newest' | 'oldest') {
    this.#ring = ring
    const entry = L.subscriberEntryOffset(index)
    this.#cursorWord = word(entry + L.CURSOR)
    this.#lostWord = word(entry + L.LOST)
    this.#receivedWord = word(entry + L.RECEIVED)
    const h = ring.h
    // Positioned, then announced (joins): the writer's next room check sees this cursor.
    let cursor = from === 'newest' ? Atomics.load(h, TAIL) >>> 0 : Atomics.load(h, HEAD) >>> 0
    Atomics.store(h, this.#cursorWord, cursor | 0)
    Atomics.add(h, JOINS, 1)
    if (from === 'oldest') {
      // The head may have moved on before the writer saw us: start from where it is now.
      const head = Atomics.load(h, HEAD) >>> 0
      if (head !== cursor) {
        cursor = head
        Atomics.store(h, this.#cursorWord, cursor | 0)
      }
    }
    this.cursor = cursor
    this.#published = cursor
    this.#batch = ring.capacity / 16
    this.#expected = cursor === (Atomics.load(h, TAIL) >>> 0) ? Atomics.load(h, NEXT_SEQUENCE) >>> 0 : h[ring.recordWord(cursor) + 3] >>> 0
  }

  /** True when a record is published past the cursor. */
  ready (): boolean {
    return (Atomics.load(this.#ring.h, TAIL) >>> 0) !== this.cursor
  }

  /**
   * Reads the next message: `decode(start, end)` runs on its payload bytes
   * in the segment, and its result is returned through `out.value` only if
   * the record was not overwritten meanwhile. Returns NOTHING, READ or
   * LAPPED (the cursor then is at the oldest retained record and lastLost
   * says how many messages were lost). A decode that throws on a record
   * that was not overwritten rethrows.
   */
  read (decode: (start: number, end: number) => unknown, out: { value: unknown }): number {
    const ring = this.#ring
    const h = ring.h
    for (;;) {
      const cursor = this.cursor
      const tail = Atomics.load(h, TAIL) >>> 0
      if (tail === cursor) return NOTHING
      const ahead = (tail - cursor) >>> 0
      if (ahead > ring.capacity) return this.#lapped()
      const index = cursor & ring.mask
      const w = (ring.base + index) >>> 2
      const length = h[w] >>> 0
      const type = h[w + 1]
      const position = h[w + 2] >>> 0
      const sequence = h[w + 3] >>> 0
      const size = type === L.TYPE_PADDING ? ring.capacity - index : L.alignRecord(length)
      const wellFormed = position === cursor && (type === L.TYPE_DATA || type === L.TYPE_PADDING) &&
        length <= ring.capacity && index + size <= ring.capacity && size <= ahead
      let value: unknown
      let failure: unknown
      let failed = false
      if (wellFormed && type === L.TYPE_DATA) {
        const start = (w << 2) + L.RECORD_HEADER_SIZE
        try {
          value = decode(start, start + length)
        } catch (err) {
          failed = true
          failure = err
        }
      }
      if (this.#overwritten(cursor)) return this.#lapped()
      if (!wellFormed) throw invalidSegment(TOPIC, `record at position ${cursor} (type ${type}, length ${length}, position word ${position}) is not a record that fits the ring`)
      this.#expected = (sequence + (type === L.TYPE_DATA ? 1 : 0)) >>> 0
      if (type === L.TYPE_DATA) this.#received++
      this.#advance((cursor + size) >>> 0)
      if (type === L.TYPE_PADDING) continue
      if (failed) throw failure
      out.value = value
      return READ
    }
  }

  /** Step 3's check, after the fence: the writer's intent is more than a ring ahead of `cursor`. */
  #overwritten (cursor: number): boolean {
    Atomics.add(this.#ring.h, this.#lostWord, 0)
    return ((Atomics.load(this.#ring.h, INTENT) - cursor) >>> 0) > this.#ring.capacity
  }

  /** Step 4: moves to the oldest retained record and counts what was lost. */
  #lapped (): number {
    const ring = this.#ring
    const h = ring.h
    for (let attempt = 0; ; attempt++) {
      if (attempt === 1000) throw invalidSegment(TOPIC, 'the head never points at a record the writer has not overwritten')
      const head = Atomics.load(h, HEAD) >>> 0
      if (head === (Atomics.load(h, TAIL) >>> 0)) {
        this.lastLost = 0
        this.#expected = Atomics.load(h, NEXT_SEQUENCE) >>> 0
        this.#advance(head)
        return LAPPED
      }
      const sequence = h[ring.recordWord(head) + 3] >>> 0
      const position = h[ring.recordWord(head) + 2] >>> 0
      if (this.#overwritten(head) || position !== head) continue
      const lost = (sequence - this.#expected) >>> 0
      this.#expected = sequence
      this.lastLost = lost
      this.lost += lost
      Atomics.store(h, this.#lostWord, this.lost | 0)
      this.#advance(head)
      return LAPPED
    }
  }

  #advance (cursor: number): void {
    this.cursor = cursor
    if (((cursor - this.#published) >>> 0) >= this.#batch) this.flush()
  }

  /**
   * Stores the cursor (and the count received) in the entry, where the
   * writer looks for the slowest: done every `capacity / 16` bytes read, and
   * by the subscriber before it waits or when the writer is parked, so the
   * writer never waits for a cursor that is not there. Returns true if it moved.
   */
  flush (): boolean {
    if (this.cursor === this.#published) return false
    storeU64(this.#ring.h, this.#receivedWord, this.#received)
    this.#published = this.cursor
    Atomics.store(this.#ring.h, this.#cursorWord, this.cursor | 0)
    return true
  }
}
