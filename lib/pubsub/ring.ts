/**
 * The topic ring: one writer, any number of readers, each with its own
 * cursor; a message is written once and read in place by every reader.
 *
 * Why a reader never returns a torn or half-overwritten message (the
 * lapped-reader rule, as in Aeron's broadcast receiver):
 *
 *   1. Before it writes a byte of a record, the writer makes sure `intent`
 *      is at or past the position where the record ends (Atomics.store):
 *      it stores it once per sixteenth of the ring, ahead of the record.
 *      Writing [t, intent) overwrites the bytes of positions up to
 *      intent - capacity.
 *   2. After the record is whole, it stores `tail` = the record's end;
 *      while corked, once for a batch of records.
 *   3. A reader at cursor c loads tail (nothing at or past it is read),
 *      reads the record header (its position word must be c), decodes (or
 *      copies: readEach under 'overwrite') the payload, then makes an atomic read-modify-write of a word of its own
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
 * reader's cursor plus capacity, so only a reader that joins while the
 * writer moves on can be lapped (it then starts at head), and a reader the
 * writer counts may read in place without the check (TopicReader).
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
  /** End of the last record written; `#published` is the tail as last stored (behind it while records are held back). */
  #tail: number
  #published: number
  #head: number
  /** The intent as last stored: writes up to it need no new store (see #reserve). */
  #intent: number
  #sequence: number
  #messages: number
  /** Under 'block': position up to which the writer may write without looking at cursors again, and the joins count it was computed at. */
  #limit = 0
  #joinsSeen = -1
  /** Bytes the intent is stored ahead of the record being written. */
  readonly #reach: number

  constructor (ring: TopicRing) {
    this.#ring = ring
    this.#tail = Atomics.load(ring.h, TAIL) >>> 0
    this.#published = this.#tail
    this.#head = Atomics.load(ring.h, HEAD) >>> 0
    this.#sequence = Atomics.load(ring.h, NEXT_SEQUENCE) >>> 0
    this.#messages = this.#sequence
    this.#reach = ring.capacity / 16
    // A publisher that takes over a topic finishes nobody's record: its intent is its tail.
    this.#intent = this.#tail
    Atomics.store(ring.h, INTENT, this.#tail | 0)
  }

  get tail (): number { return this.#tail }

  /** Bytes written and not published yet. */
  get unpublished (): number { return (this.#tail - this.#published) >>> 0 }

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

  /**
   * Steps 4 and 1 for a record ending at `end`, once per `#reach` bytes
   * rather than per record: the intent stored runs up to `#reach` bytes
   * ahead of the record (under 'block', no further than the room limit, so
   * a subscriber the writer waits for never reads an intent more than a
   * ring ahead of it). An intent ahead of the bytes actually written only
   * makes a reader's check more cautious, never less. Head first, then
   * intent: a reader that sees the intent sees a head not behind it.
   */
  #reserve (end: number): void {
    const ring = this.#ring
    const h = ring.h
    let intent = (end + this.#reach) >>> 0
    if (!ring.overwrite && ((intent - this.#limit) | 0) > 0) intent = ((this.#limit - end) | 0) > 0 ? this.#limit : end
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
    this.#intent = intent
    Atomics.store(h, INTENT, intent | 0)
  }

  /**
   * Writes a record holding `payload` after the last one, without
   * publishing it: publish() makes it (and any written before it) visible.
   * Under 'block' the caller checked hasRoom first.
   */
  write (payload: Uint8Array): void {
    const length = payload.length
    const ring = this.#ring
    const h = ring.h
    const size = L.alignRecord(length)
    const start = this.#tail
    const index = start & ring.mask
    const wraps = index + size > ring.capacity
    const end = (start + (wraps ? ring.capacity - index + size : size)) >>> 0
    if (((end - this.#intent) | 0) > 0) this.#reserve(end)
    const sequence = this.#sequence
    let at = start
    if (wraps) {
      const p = (ring.base + index) >>> 2
      h[p] = ring.capacity - index - L.RECORD_HEADER_SIZE
      h[p + 1] = L.TYPE_PADDING
      h[p + 2] = start | 0
      h[p + 3] = sequence | 0
      at = (start + ring.capacity - index) >>> 0
    }
    const w = (ring.base + (at & ring.mask)) >>> 2
    h[w] = length
    h[w + 1] = L.TYPE_DATA
    h[w + 2] = at | 0
    h[w + 3] = sequence | 0
    ring.bytes.set(payload, (w << 2) + L.RECORD_HEADER_SIZE)
    this.#sequence = (sequence + 1) >>> 0
    this.#messages++
    this.#tail = end
  }

  /**
   * Step 2 for every record written since the last call: stores the next
   * message number and the count published (plain stores, published by the
   * tail's), then the tail. Returns false when there was nothing to publish.
   */
  publish (): boolean {
    const tail = this.#tail
    if (tail === this.#published) return false
    const h = this.#ring.h
    h[NEXT_SEQUENCE] = this.#sequence | 0
    storeU64(h, PUBLISHED, this.#messages)
    this.#published = tail
    Atomics.store(h, TAIL, tail | 0)
    return true
  }
}

/** What a read found. */
export const NOTHING = 0
export const READ = 1
export const LAPPED = 2

/** What readEach calls for each message: its payload is bytes[start, end). */
export type OnMessage = (bytes: Buffer, start: number, end: number) => void

/** The copy a reader validates before it hands messages out, when it may not read in place: 64 KiB to start with, more for a larger record. */
const SCRATCH_SIZE = 64 * 1024

/**
 * A subscriber's side: its own cursor, reading in place.
 *
 * When a reader may hand out the ring's own bytes (readEach's in-place
 * path): only when no write can reach the record while the callback runs,
 * which holds under 'block' once the writer respects this reader's cursor.
 * The writer looks at the cursors again in the first room check after a
 * join (it loads `joins` before every write), so at most one write, decided
 * before the reader announced itself, may still overwrite what the reader
 * is about to read. That write starts at or before the tail `t` the reader
 * loads after announcing, and takes less than half a ring (a record of at
 * most a quarter, plus padding shorter than it), so it overwrites nothing
 * at or past `t - capacity / 2`. From there on the reader is "settled";
 * before, it reads through a validated copy like an 'overwrite' reader.
 * A lapped reader announces itself again (the writer may have stopped
 * counting its cursor) and settles the same way.
 */
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
  /** Messages lost at the last lap (set when read() returns LAPPED, or readEach stops at a lap). */
  lastLost = 0
  /** Set by readEach when it stopped at a lap. */
  stoppedAtLap = false
  /** Under 'block', past #safeFrom: the records ahead are read in place (see the class comment). */
  #settled = false
  #safeFrom = 0
  #scratch: Buffer | undefined
  #scratchWords: Int32Array | undefined

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
    this.#settleFrom()
  }

  /** After the cursor was announced (joins bumped): where reading in place becomes safe. */
  #settleFrom (): void {
    this.#settled = false
    if (this.#ring.overwrite) return
    this.#safeFrom = ((Atomics.load(this.#ring.h, TAIL) >>> 0) - this.#ring.capacity / 2) >>> 0
    this.#settle()
  }

  #settle (): void {
    // Compared once per pass while the cursor is within a ring of it: the signed difference cannot wrap.
    if (((this.cursor - this.#safeFrom) | 0) >= 0) this.#settled = true
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
      if (!this.#settled && !ring.overwrite) this.#settle()
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
      // A settled reader's record cannot have been overwritten: the check is for the others, and for a record that looks wrong.
      if ((!this.#settled || !wellFormed) && this.#overwritten(cursor)) return this.#lapped()
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

  /**
   * Calls `onMessage` for each message published when the call began, at
   * most `max`, in place when settled, else from a validated copy. Does not
   * store the cursor (flush() does, once per batch: while a callback runs,
   * the writer must not see a cursor past its record). Returns the number
   * of messages; sets stoppedAtLap (the cursor is then at the head, and
   * lastLost says how many messages were lost) when it stopped at a lap.
   * A callback that throws has its message counted as read.
   */
  readEach (onMessage: OnMessage, max: number): number {
    this.stoppedAtLap = false
    const ring = this.#ring
    const tail = Atomics.load(ring.h, TAIL) >>> 0
    if (((tail - this.cursor) >>> 0) > ring.capacity) {
      this.#lapped()
      this.stoppedAtLap = true
      return 0
    }
    let n = 0
    while (n < max && this.cursor !== tail && !this.stoppedAtLap) {
      if (!this.#settled && !ring.overwrite) this.#settle()
      n += this.#settled ? this.#inPlace(onMessage, max - n, tail) : this.#copied(onMessage, max - n, tail)
    }
    return n
  }

  /** The records up to `tail`, handed out in the ring itself (settled readers only). */
  #inPlace (onMessage: OnMessage, max: number, tail: number): number {
    const ring = this.#ring
    const h = ring.h
    const bytes = ring.bytes
    const capacity = ring.capacity
    const mask = ring.mask
    const base = ring.base
    let cursor = this.cursor
    let n = 0
    try {
      while (n < max && cursor !== tail) {
        const index = cursor & mask
        const w = (base + index) >>> 2
        const length = h[w] >>> 0
        const type = h[w + 1]
        const size = type === L.TYPE_PADDING ? capacity - index : L.alignRecord(length)
        if ((h[w + 2] >>> 0) !== cursor || (type !== L.TYPE_DATA && type !== L.TYPE_PADDING) || length > capacity ||
            index + size > capacity || size > ((tail - cursor) >>> 0)) {
          this.cursor = cursor
          return this.#malformed(cursor, n)
        }
        cursor = (cursor + size) >>> 0
        if (type === L.TYPE_PADDING) continue
        this.#expected = (h[w + 3] + 1) >>> 0
        this.cursor = cursor
        n++
        const start = (w << 2) + L.RECORD_HEADER_SIZE
        onMessage(bytes, start, start + length)
      }
      this.cursor = cursor
    } finally {
      this.#received += n
    }
    return n
  }

  /**
   * The records from the cursor up to `tail` (or the end of the ring, or
   * `max` messages, or what the scratch buffer holds), copied in one go,
   * checked with step 3's rule, then handed out from the copy: a message
   * the writer may have overwritten never reaches the callback.
   */
  #copied (onMessage: OnMessage, max: number, tail: number): number {
    const ring = this.#ring
    const h = ring.h
    const from = this.cursor
    const first = ring.base + (from & ring.mask)
    const room = Math.min((tail - from) >>> 0, ring.base + ring.capacity - first)
    let scratch = this.#scratch ?? this.#grow(Math.min(SCRATCH_SIZE, ring.capacity))
    // How far to copy, from the headers in place: they may be under a write
    // (the check after the copy tells), so a size that does not fit only ends the walk.
    let span = 0
    for (let count = 0; span < room && count < max;) {
      const w = (first + span) >>> 2
      const type = h[w + 1]
      const length = h[w] >>> 0
      // A torn header may hold any length: one past the ring would align to a negative size.
      if (length > ring.capacity) break
      const size = type === L.TYPE_PADDING ? ring.base + ring.capacity - first - span : L.alignRecord(length)
      if (span + size > room) break
      if (span + size > scratch.length) {
        if (span > 0) break
        scratch = this.#grow(size)
      }
      if (type === L.TYPE_DATA) count++
      span += size
    }
    ring.bytes.copy(scratch, 0, first, first + span)
    if (this.#overwritten(from)) {
      this.#lapped()
      this.stoppedAtLap = true
      return 0
    }
    if (span === 0) return this.#malformed(from, 0)
    const sw = this.#scratchWords as Int32Array
    let at = 0
    let n = 0
    try {
      while (at < span) {
        const w = at >>> 2
        const length = sw[w] >>> 0
        const type = sw[w + 1]
        const position = (from + at) >>> 0
        const size = type === L.TYPE_PADDING ? ring.capacity - (position & ring.mask) : L.alignRecord(length)
        if ((sw[w + 2] >>> 0) !== position || (type !== L.TYPE_DATA && type !== L.TYPE_PADDING) || length > ring.capacity || at + size > span) {
          throw invalidSegment(TOPIC, `record at position ${position} (type ${type}, length ${length}, position word ${sw[w + 2] >>> 0}) is not a record that fits the ring`)
        }
        at += size
        this.cursor = (from + at) >>> 0
        if (type === L.TYPE_PADDING) continue
        this.#expected = (sw[w + 3] + 1) >>> 0
        n++
        onMessage(scratch, at - size + L.RECORD_HEADER_SIZE, at - size + L.RECORD_HEADER_SIZE + length)
      }
    } finally {
      this.#received += n
    }
    return n
  }

  /** A scratch buffer of at least `size` bytes, 4-byte aligned for its word view. */
  #grow (size: number): Buffer {
    let length = this.#scratch?.length ?? SCRATCH_SIZE
    while (length < size) length *= 2
    const words = new Int32Array(length / 4)
    this.#scratchWords = words
    this.#scratch = Buffer.from(words.buffer)
    return this.#scratch
  }

  /** A record at `cursor` that is not one: a lap if the writer may have overwritten it, else a corrupt segment. */
  #malformed (cursor: number, n: number): number {
    if (this.#overwritten(cursor)) {
      this.#lapped()
      this.stoppedAtLap = true
      return n
    }
    const w = this.#ring.recordWord(cursor)
    const h = this.#ring.h
    throw invalidSegment(TOPIC, `record at position ${cursor} (type ${h[w + 1]}, length ${h[w] >>> 0}, position word ${h[w + 2] >>> 0}) is not a record that fits the ring`)
  }

  /** Step 3's check, after the fence: the writer's intent is more than a ring ahead of `cursor`. */
  #overwritten (cursor: number): boolean {
    Atomics.add(this.#ring.h, this.#lostWord, 0)
    return ((Atomics.load(this.#ring.h, INTENT) - cursor) >>> 0) > this.#ring.capacity
  }

  /**
   * Step 4: moves to the oldest retained record and counts what was lost.
   * Under 'block' the reader then announces its cursor again: a writer
   * that found it more than a ring behind stopped waiting for it.
   */
  #lapped (): number {
    const ring = this.#ring
    const h = ring.h
    for (let attempt = 0; ; attempt++) {
      if (attempt === 1000) throw invalidSegment(TOPIC, 'the head never points at a record the writer has not overwritten')
      const head = Atomics.load(h, HEAD) >>> 0
      if (head === (Atomics.load(h, TAIL) >>> 0)) {
        this.lastLost = 0
        this.#expected = Atomics.load(h, NEXT_SEQUENCE) >>> 0
        this.#moveTo(head)
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
      this.#moveTo(head)
      return LAPPED
    }
  }

  #moveTo (cursor: number): void {
    if (this.#ring.overwrite) {
      this.#advance(cursor)
      return
    }
    this.cursor = cursor
    this.flush()
    Atomics.add(this.#ring.h, JOINS, 1)
    this.#settleFrom()
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
