/**
 * A lock-free single-producer/single-consumer ring of length-prefixed records
 * in a shared segment (layout in lib/channel/layout.ts). One process or thread holds
 * the RingProducer, one the RingConsumer; each class may only be used from
 * the end it names. Neither blocks: waiting is lib/segment/wait.ts's business.
 *
 * Publication: the producer copies a record with plain stores, then makes it
 * visible with one Atomics.store of its position (sequentially consistent,
 * so every byte written before it is visible to a consumer whose
 * Atomics.load returns that position). The consumer hands space back the same
 * way. Each side caches the other's position and re-reads it only when the
 * cached value says it must, so in steady state neither touches the other's
 * cache line per message.
 */
import { constants } from 'node:buffer'

import { ShmChannelError, outOfRange } from '../errors'
import { wake } from '../platform/futex'
import { invalidSegment } from '../segment/identity'
import { loadU64, readU64, storeU64, writeU64 } from '../segment/words'
import * as L from './layout'
import { DEFAULT_MAX_MESSAGE_SIZE } from './options'
import { CHANNEL, checkSegment } from './segment'

const MAX_LENGTH = constants.MAX_LENGTH
const READ_MARK = L.word(L.READ_MARK_OFFSET)

// What the hot paths below use of the layout, bound once as module constants:
// a constant here compiles to an immediate, a property of the layout module is
// a load from its CommonJS exports object each time. When that object was in
// dictionary mode (it re-exported values, which compile to accessors; it
// exports plain constants now, and lint forbids re-exports in lib/), reading
// them through `L.` per message made trySend/receiveSync at 64 B about half as
// fast (docs/performance.md, "Layout constants").
const BYTES_RECEIVED_WORD = L.word(L.BYTES_RECEIVED_OFFSET)
const BYTES_SENT_WORD = L.word(L.BYTES_SENT_OFFSET)
const CONSUMER_PARKED_WORD = L.word(L.CONSUMER_PARKED_OFFSET)
const CONSUMER_POSITION_WORD = L.word(L.CONSUMER_POSITION_OFFSET)
const CONSUMER_WAKEUPS_WORD = L.word(L.CONSUMER_WAKEUPS_OFFSET)
const MESSAGES_RECEIVED_WORD = L.word(L.MESSAGES_RECEIVED_OFFSET)
const MESSAGES_SENT_WORD = L.word(L.MESSAGES_SENT_OFFSET)
const PRODUCER_PARKED_WORD = L.word(L.PRODUCER_PARKED_OFFSET)
const PRODUCER_POSITION_WORD = L.word(L.PRODUCER_POSITION_OFFSET)
const PRODUCER_WAKEUPS_WORD = L.word(L.PRODUCER_WAKEUPS_OFFSET)
const TIMES_FULL_WORD = L.word(L.TIMES_FULL_OFFSET)
const FLAG_BEGIN = L.FLAG_BEGIN
const FLAG_END = L.FLAG_END
const FRAGMENT_TOTAL_SIZE = L.FRAGMENT_TOTAL_SIZE
const RECORD_ALIGNMENT = L.RECORD_ALIGNMENT
const RECORD_HEADER_SIZE = L.RECORD_HEADER_SIZE
const TYPE_DATA = L.TYPE_DATA
const TYPE_MASK = L.TYPE_MASK
const TYPE_PADDING = L.TYPE_PADDING
const HEADER_SIZE = L.HEADER_SIZE
/** L.alignRecord over the constants above, so that it too compiles to immediates. */
function alignRecord (payloadLength: number): number {
  return (payloadLength + RECORD_HEADER_SIZE + RECORD_ALIGNMENT - 1) & ~(RECORD_ALIGNMENT - 1)
}

/**
 * The most a consumer allocates ahead of the bytes that fill it while it
 * reassembles a fragmented message: a peer's announced length is a claim, not
 * a fact. A message up to this size is reassembled in one buffer of its
 * length; a larger one in pieces of this size, joined once its last fragment
 * is in (docs/performance.md, "Reassembly", has the measurement).
 */
export const REASSEMBLY_STEP = 8 * 1024 * 1024

function invalid (what: string): ShmChannelError {
  return invalidSegment(CHANNEL, what)
}

/** Views shared by both ends. */
class RingEnd {
  readonly buffer: SharedArrayBuffer
  readonly capacity: number
  /** Largest payload of one record; larger messages travel as fragments. */
  readonly maxRecordPayload: number
  protected readonly mask: number
  /** The header as 32-bit words. */
  readonly header: Int32Array
  /** The ring's bytes, and the same bytes as 32-bit words for record headers. */
  readonly bytes: Buffer
  protected readonly words: Int32Array

  constructor (buffer: SharedArrayBuffer) {
    const capacity = checkSegment(buffer)
    if (capacity === 0) throw invalid('header is not initialised')
    this.buffer = buffer
    this.capacity = capacity
    this.mask = capacity - 1
    this.maxRecordPayload = L.maxRecordPayload(capacity)
    this.header = new Int32Array(buffer, 0, HEADER_SIZE / 4)
    this.bytes = Buffer.from(buffer, HEADER_SIZE, capacity)
    this.words = new Int32Array(buffer, HEADER_SIZE, capacity / 4)
  }
}

/** The writing end. Producer side only. */
export class RingProducer extends RingEnd {
  /** Next write position: committed records, published or not. */
  #position: number
  #published: number
  /** Consumer position as last read; space is free up to it plus capacity. */
  #consumerCache: number
  #claimIndex = -1
  #claimLength = 0
  #messages: number
  #bytesSent: number
  #timesFull: number
  #wakeups: number

  constructor (buffer: SharedArrayBuffer) {
    super(buffer)
    const h = this.header
    this.#position = Atomics.load(h, PRODUCER_POSITION_WORD) >>> 0
    this.#published = this.#position
    this.#consumerCache = Atomics.load(h, CONSUMER_POSITION_WORD) >>> 0
    this.#messages = loadU64(h, MESSAGES_SENT_WORD)
    this.#bytesSent = loadU64(h, BYTES_SENT_WORD)
    this.#timesFull = h[TIMES_FULL_WORD] >>> 0
    this.#wakeups = h[CONSUMER_WAKEUPS_WORD] >>> 0
  }

  /**
   * Reserves room for a record of `payloadLength` bytes and returns its index,
   * writing a padding record first when it does not fit before the end.
   * Returns -1 when the ring is too full. Reads the consumer's position only
   * when the cached one says there is no room.
   */
  #reserve (payloadLength: number): number {
    const size = alignRecord(payloadLength)
    let index = this.#position & this.mask
    const toEnd = this.capacity - index
    const needed = size <= toEnd ? size : toEnd + size
    if (needed > this.capacity - ((this.#position - this.#consumerCache) >>> 0)) {
      this.#consumerCache = Atomics.load(this.header, CONSUMER_POSITION_WORD) >>> 0
      if (needed > this.capacity - ((this.#position - this.#consumerCache) >>> 0)) return -1
    }
    if (size > toEnd) {
      const w = index >>> 2
      this.words[w] = toEnd - RECORD_HEADER_SIZE
      this.words[w + 1] = TYPE_PADDING
      this.#position = (this.#position + toEnd) >>> 0
      index = 0
    }
    return index
  }

  /**
   * Claims `length` bytes (at most maxRecordPayload) for one record and
   * returns a view of them to fill, or null when the ring has no room now.
   * Follow with commit() or discard(); nothing is visible until publish().
   */
  claim (length: number): Buffer | null {
    if (this.#claimIndex !== -1) throw new ShmChannelError('ERR_BUSY', 'a claim is already open: commit or discard it first')
    if (length > this.maxRecordPayload) {
      throw new ShmChannelError('ERR_MESSAGE_TOO_LARGE', `a claim of ${length} bytes exceeds the ${this.maxRecordPayload}-byte record limit of this ring`)
    }
    const index = this.#reserve(length)
    if (index === -1) return null
    this.#claimIndex = index
    this.#claimLength = length
    const start = index + RECORD_HEADER_SIZE
    return this.bytes.subarray(start, start + length)
  }

  /** Finishes the open claim as a message of `length` bytes (default: all claimed). */
  commit (length: number = this.#claimLength): void {
    this.#commitRecord(length, FLAG_BEGIN | FLAG_END)
    this.#messages++
    this.#bytesSent += length
  }

  #commitRecord (length: number, flags: number): void {
    const index = this.#claimIndex
    if (index === -1) throw new ShmChannelError('ERR_BUSY', 'no claim is open')
    if (!(length >= 0 && length <= this.#claimLength)) throw outOfRange('length', `an integer from 0 to the ${this.#claimLength} bytes claimed`, length)
    const w = index >>> 2
    this.words[w] = length
    this.words[w + 1] = TYPE_DATA | flags
    this.#position = (this.#position + alignRecord(length)) >>> 0
    this.#claimIndex = -1
  }

  /**
   * Writes as much as fits now of a message larger than maxRecordPayload, as
   * fragments of up to maxRecordPayload bytes, from `offset` of the message
   * (0 for a new one). Returns the new offset; message.length once the last
   * fragment is committed. Nothing else may be written until it is.
   * A message that fits one record is a RangeError: as fragments it would
   * arrive with its length prefix (or, empty, not at all). Use tryWrite.
   */
  writeFragments (message: Uint8Array, offset: number): number {
    const total = message.length
    if (total <= this.maxRecordPayload) throw outOfRange('message.length', `over maxRecordPayload (${this.maxRecordPayload}) for writeFragments; use tryWrite`, total)
    while (offset < total) {
      const prefix = offset === 0 ? FRAGMENT_TOTAL_SIZE : 0
      const chunk = Math.min(this.maxRecordPayload - prefix, total - offset)
      const view = this.claim(prefix + chunk)
      if (view === null) break
      if (prefix !== 0) {
        writeU64(view, 0, total)
      }
      view.set(message.subarray(offset, offset + chunk), prefix)
      const last = offset + chunk === total
      this.#commitRecord(prefix + chunk, (offset === 0 ? FLAG_BEGIN : 0) | (last ? FLAG_END : 0))
      offset += chunk
    }
    if (offset === total) {
      this.#messages++
      this.#bytesSent += total
    }
    return offset
  }

  /** Ring bytes a message of `length` bytes takes at most, padding included. */
  footprint (length: number): number {
    if (length <= this.maxRecordPayload) return 2 * alignRecord(length)
    const fragments = Math.ceil((length + FRAGMENT_TOTAL_SIZE) / this.maxRecordPayload)
    return length + FRAGMENT_TOTAL_SIZE + fragments * (RECORD_HEADER_SIZE + RECORD_ALIGNMENT) + this.capacity / 4
  }

  /** Drops the open claim; nothing of it is ever seen. */
  discard (): void {
    this.#claimIndex = -1
  }

  /** Copies one message of at most maxRecordPayload bytes in; false when there is no room now. */
  tryWrite (message: Uint8Array): boolean {
    // claim + set + commit, without making a view: the hot path of small messages.
    const length = message.length
    if (this.#claimIndex !== -1) throw new ShmChannelError('ERR_BUSY', 'a claim is open: commit or discard it first')
    if (length > this.maxRecordPayload) {
      throw new ShmChannelError('ERR_MESSAGE_TOO_LARGE', `a ${length}-byte record exceeds the ${this.maxRecordPayload}-byte record limit of this ring`)
    }
    const index = this.#reserve(length)
    if (index === -1) return false
    this.bytes.set(message, index + RECORD_HEADER_SIZE)
    this.#commitWhole(index, length)
    return true
  }

  /**
   * Writes a string as one message of UTF-8, straight into the ring and
   * without making a view; false when there is no room now. For strings
   * whose longest UTF-8 form (3 bytes per UTF-16 code unit) fits a record:
   * room for that is reserved first, the exact length only when that fails.
   */
  tryWriteString (text: string): boolean {
    if (this.#claimIndex !== -1) throw new ShmChannelError('ERR_BUSY', 'a claim is open: commit or discard it first')
    let room = text.length * 3
    if (room > this.maxRecordPayload) throw outOfRange('text.length', `at most a third of maxRecordPayload (${this.maxRecordPayload})`, text.length)
    let index = this.#reserve(room)
    if (index === -1) {
      const exact = Buffer.byteLength(text, 'utf8')
      if (exact === room || (index = this.#reserve(exact)) === -1) return false
      room = exact
    }
    this.#commitWhole(index, this.bytes.write(text, index + RECORD_HEADER_SIZE, room, 'utf8'))
    return true
  }

  /** Commits the whole message of `length` bytes just written at `index`. */
  #commitWhole (index: number, length: number): void {
    const w = index >>> 2
    this.words[w] = length
    this.words[w + 1] = TYPE_DATA | FLAG_BEGIN | FLAG_END
    this.#position = (this.#position + alignRecord(length)) >>> 0
    this.#messages++
    this.#bytesSent += length
  }

  /** Bytes of committed records not yet published. */
  get unpublishedBytes (): number {
    return (this.#position - this.#published) >>> 0
  }

  /** True when the consumer is parked (asleep, or about to sleep, waiting for a publish). */
  get consumerParked (): boolean {
    return Atomics.load(this.header, CONSUMER_PARKED_WORD) !== 0
  }

  /** True when committed records are not yet published. */
  get pending (): boolean {
    return this.#position !== this.#published
  }

  /**
   * Makes every committed record visible to the consumer with one store, and
   * wakes the consumer if it is parked. Returns true if it had to wake it.
   */
  publish (): boolean {
    if (this.#position === this.#published) return false
    const h = this.header
    storeU64(h, MESSAGES_SENT_WORD, this.#messages)
    storeU64(h, BYTES_SENT_WORD, this.#bytesSent)
    this.#published = this.#position
    // The release: every record byte above is written before this store.
    Atomics.store(h, PRODUCER_POSITION_WORD, this.#position | 0)
    // Load after store, both sequentially consistent: either this load sees
    // the consumer's parked flag, or the consumer's re-check after setting
    // the flag sees the position just stored. A wake-up cannot be lost.
    // The exchange takes the flag down with the wake: publishes that follow
    // before the woken consumer runs (its wake-up goes through its event
    // loop) see it down and make no system call. One wake per park, not one
    // per message. (A plain load first: the flag's line stays shared while
    // the consumer is awake.)
    if (Atomics.load(h, CONSUMER_PARKED_WORD) !== 0 && Atomics.exchange(h, CONSUMER_PARKED_WORD, 0) !== 0) {
      this.wakeConsumer()
      return true
    }
    return false
  }

  /** Wakes a parked consumer (used by publish and by close). */
  wakeConsumer (): void {
    this.header[CONSUMER_WAKEUPS_WORD] = ++this.#wakeups
    wake(this.header, PRODUCER_POSITION_WORD, 1)
  }

  /** Counts a time the producer found the ring full and had to wait. */
  noteFull (): void {
    this.header[TIMES_FULL_WORD] = ++this.#timesFull
  }

  /** Bytes free for records now (reads the consumer's position). */
  get freeBytes (): number {
    this.#consumerCache = Atomics.load(this.header, CONSUMER_POSITION_WORD) >>> 0
    return this.capacity - ((this.#position - this.#consumerCache) >>> 0)
  }

  /** True once everything published has been released by the consumer (reads the consumer's position). */
  get drained (): boolean {
    this.#consumerCache = Atomics.load(this.header, CONSUMER_POSITION_WORD) >>> 0
    return this.#consumerCache === this.#published
  }

  /** True when a record of `payloadLength` bytes would fit now (reads the consumer's position). */
  hasRoomFor (payloadLength: number): boolean {
    const size = alignRecord(payloadLength)
    const index = this.#position & this.mask
    const toEnd = this.capacity - index
    const needed = size <= toEnd ? size : toEnd + size
    this.#consumerCache = Atomics.load(this.header, CONSUMER_POSITION_WORD) >>> 0
    return needed <= this.capacity - ((this.#position - this.#consumerCache) >>> 0)
  }

  /** Word the producer sleeps on while full (the consumer position) and its parked flag. */
  static readonly WAIT_WORD = CONSUMER_POSITION_WORD
  static readonly PARKED_FLAG = PRODUCER_PARKED_WORD
}

/** nextRange() results. */
export const NONE = 0
export const SINGLE = 1
export const ASSEMBLED = 2
const EMPTY = Buffer.alloc(0)

/** A message read out of the ring. */
export interface RingMessage {
  /** The payload: a view into the ring for a single record (valid until release), a fresh buffer for a reassembled one. */
  data: Buffer
  /** True when data is a view into shared memory. */
  shared: boolean
}

/** The reading end. Consumer side only. */
export class RingConsumer extends RingEnd {
  /** Next read position: records read, released or not. */
  #position: number
  #released: number
  #producerCache: number
  #maxMessageSize: number
  /** Reassembly of a fragmented message: its announced length, the pieces filled so far, and the piece being filled. */
  #partialTotal = -1
  #partialFilled = 0
  #pieces: Buffer[] = []
  #piece: Buffer = EMPTY
  #pieceFilled = 0
  #skipping = false
  #messages: number
  #bytesReceived: number
  #wakeups: number

  constructor (buffer: SharedArrayBuffer, maxMessageSize = DEFAULT_MAX_MESSAGE_SIZE) {
    super(buffer)
    const h = this.header
    this.#position = Atomics.load(h, CONSUMER_POSITION_WORD) >>> 0
    this.#released = this.#position
    this.#producerCache = this.#position
    this.#maxMessageSize = maxMessageSize
    this.#messages = loadU64(h, MESSAGES_RECEIVED_WORD)
    this.#bytesReceived = loadU64(h, BYTES_RECEIVED_WORD)
    this.#wakeups = h[PRODUCER_WAKEUPS_WORD] >>> 0
  }

  /** True when a record is published and not yet read (reads the producer position if the cache says empty). */
  get available (): boolean {
    if (this.#position !== this.#producerCache) return true
    this.#producerCache = this.#loadProducerPosition()
    return this.#position !== this.#producerCache
  }

  #loadProducerPosition (): number {
    const p = Atomics.load(this.header, PRODUCER_POSITION_WORD) >>> 0
    const ahead = (p - this.#position) >>> 0
    if (ahead > this.capacity) throw invalid(`producer position ${p} is ${ahead} bytes ahead of the consumer at ${this.#position}`)
    return p
  }

  /**
   * Reads the next whole message, or null when none is complete yet. A
   * single-record message is a view into the ring, valid until release().
   * Fragments are copied out and their space released as they arrive, so a
   * message larger than the ring still goes through; that release covers
   * everything read before them, so earlier views end there too.
   * Throws ERR_MESSAGE_TOO_LARGE (once, then skips that message) for a message
   * over maxMessageSize, and ERR_INVALID_SEGMENT for records that break the protocol.
   */
  read (): RingMessage | null {
    const data = this.next()
    return data === null ? null : { data, shared: this.#lastShared }
  }

  #lastShared = false

  /** read(), without wrapping the payload: the view or buffer itself. `lastShared` tells which. */
  next (): Buffer | null {
    const found = this.nextRange()
    if (found === NONE) return null
    if (found === SINGLE) {
      this.#lastShared = true
      return this.bytes.subarray(this.lastStart, this.lastStart + this.lastLength)
    }
    this.#lastShared = false
    return this.#assembled
  }

  /** Where the message found by nextRange() lies in `bytes` (SINGLE), and its length. */
  lastStart = 0
  lastLength = 0
  #assembled: Buffer = EMPTY

  /** The message found by nextRange() when it returned ASSEMBLED. */
  get assembled (): Buffer {
    return this.#assembled
  }

  /**
   * The allocation-free core of read(): finds the next whole message and
   * returns SINGLE (it lies in `bytes` at lastStart, lastLength bytes, valid
   * until release), ASSEMBLED (reassembled from fragments: `assembled`), or
   * NONE.
   */
  nextRange (): number {
    for (;;) {
      if (this.#position === this.#producerCache) {
        this.#producerCache = this.#loadProducerPosition()
        if (this.#position === this.#producerCache) return NONE
      }
      const index = this.#position & this.mask
      const w = index >>> 2
      const length = this.words[w] >>> 0
      const type = this.words[w + 1] >>> 0
      const toEnd = this.capacity - index
      const available = (this.#producerCache - this.#position) >>> 0
      if ((type & TYPE_MASK) === TYPE_PADDING) {
        if (type !== TYPE_PADDING || length !== toEnd - RECORD_HEADER_SIZE || toEnd > available) {
          throw invalid(`padding record at index ${index} has length ${length} and type 0x${type.toString(16)}`)
        }
        this.#position = (this.#position + toEnd) >>> 0
        continue
      }
      const size = alignRecord(length)
      if ((type & ~(FLAG_BEGIN | FLAG_END)) !== TYPE_DATA || size > toEnd || size > available || length > this.maxRecordPayload) {
        throw invalid(`record at index ${index} has length ${length} and type 0x${type.toString(16)}`)
      }
      const start = index + RECORD_HEADER_SIZE
      this.#position = (this.#position + size) >>> 0
      const begin = (type & FLAG_BEGIN) !== 0
      const end = (type & FLAG_END) !== 0
      if (begin && end && this.#partialTotal === -1 && !this.#skipping) {
        this.#count(length)
        if (length > this.#maxMessageSize) {
          throw new ShmChannelError('ERR_MESSAGE_TOO_LARGE', `message of ${length} bytes exceeds maxMessageSize ${this.#maxMessageSize}`)
        }
        this.lastStart = start
        this.lastLength = length
        // Plain store: a consumer that takes over from this one redelivers up to here (lib/channel/takeover.ts).
        this.header[READ_MARK] = this.#position
        return SINGLE
      }
      if (begin && (this.#partialTotal !== -1 || this.#skipping) && this.#abandoned((this.#position - size) >>> 0)) {
        // The producer that began the unfinished message died; this is its successor's first.
        this.#dropPartial()
        this.#position = (this.#position - size) >>> 0
        continue
      }
      const message = this.#fragment(this.bytes.subarray(start, start + length), begin, end, index)
      // A fragment's bytes are copied out: hand its space back now, or a
      // message larger than the ring could never finish.
      this.release()
      if (message !== null) {
        this.#assembled = message
        this.lastLength = message.length
        return ASSEMBLED
      }
    }
  }

  /** True once this consumer took over from a dead one, until it meets the start of a message. */
  #resuming = false

  /** Called by a consumer that took over from a dead one: the first records may continue a message begun before. */
  resumeAfterTakeover (): void {
    this.#resuming = true
  }

  /** True when a record at `position` is at or after where the last producer takeover began. */
  #abandoned (position: number): boolean {
    if (Atomics.load(this.header, L.word(L.PRODUCER_TAKEOVERS_OFFSET)) >>> 1 === 0) return false
    const at = Atomics.load(this.header, L.word(L.ABANDONED_AT_OFFSET)) >>> 0
    return ((position - at) >>> 0) < this.capacity
  }

  /** Forgets a message whose producer died before its last fragment. */
  #dropPartial (): void {
    this.#partialTotal = -1
    this.#partialFilled = 0
    this.#pieces = []
    this.#piece = EMPTY
    this.#pieceFilled = 0
    this.#skipping = false
  }

  #fragment (payload: Buffer, begin: boolean, end: boolean, index: number): Buffer | null {
    if (begin) {
      this.#resuming = false
      if (this.#partialTotal !== -1 || this.#skipping) throw invalid(`fragment at index ${index} begins a message inside another`)
      if (end || payload.length < FRAGMENT_TOTAL_SIZE) throw invalid(`first fragment at index ${index} is malformed`)
      const total = readU64(payload, 0)
      const first = payload.length - FRAGMENT_TOTAL_SIZE
      if (total <= first) throw invalid(`fragmented message of ${total} bytes has a first fragment of ${first}`)
      if (total > this.#maxMessageSize || total > MAX_LENGTH) {
        this.#skipping = true
        this.#count(total)
        const limit = total > this.#maxMessageSize ? `maxMessageSize ${this.#maxMessageSize}` : `the largest Buffer, ${MAX_LENGTH} bytes`
        throw new ShmChannelError('ERR_MESSAGE_TOO_LARGE', `message of ${total} bytes exceeds ${limit}`)
      }
      this.#partialTotal = total
      this.#partialFilled = 0
      this.#append(payload.subarray(FRAGMENT_TOTAL_SIZE))
      return null
    }
    if (this.#skipping) {
      if (end) this.#skipping = false
      return null
    }
    const total = this.#partialTotal
    if (total === -1 && this.#resuming) {
      // Taken over mid-message: the dead consumer released the beginning. Skip the rest.
      this.#skipping = !end
      return null
    }
    if (total === -1) throw invalid(`fragment at index ${index} continues no message`)
    if (this.#partialFilled + payload.length > total) throw invalid(`fragments at index ${index} overrun their message of ${total} bytes`)
    this.#append(payload)
    if (!end) return null
    if (this.#partialFilled !== total) throw invalid(`fragmented message ended at ${this.#partialFilled} of ${total} bytes`)
    const pieces = this.#pieces
    const message = pieces.length === 0 ? this.#piece : Buffer.concat([...pieces, this.#piece], total)
    this.#partialTotal = -1
    this.#pieces = []
    this.#piece = EMPTY
    this.#pieceFilled = 0
    this.#count(total)
    return message
  }

  /**
   * Copies a fragment's bytes into the message being reassembled, allocating
   * at most REASSEMBLY_STEP bytes beyond what has arrived: a new piece only
   * when the current one is full, of the announced bytes still to come or
   * REASSEMBLY_STEP, whichever is less. The caller has checked the bytes fit
   * the announced length.
   */
  #append (bytes: Buffer): void {
    let from = 0
    while (from < bytes.length) {
      if (this.#pieceFilled === this.#piece.length) {
        if (this.#piece.length !== 0) this.#pieces.push(this.#piece)
        this.#piece = Buffer.allocUnsafe(Math.min(this.#partialTotal - this.#partialFilled, REASSEMBLY_STEP))
        this.#pieceFilled = 0
      }
      const n = Math.min(bytes.length - from, this.#piece.length - this.#pieceFilled)
      bytes.copy(this.#piece, this.#pieceFilled, from, from + n)
      this.#pieceFilled += n
      this.#partialFilled += n
      from += n
    }
  }

  /** True when the last message returned by next() is a view into shared memory. */
  get lastShared (): boolean {
    return this.#lastShared
  }

  #count (length: number): void {
    this.#messages++
    this.#bytesReceived += length
  }

  /** Bytes read but not yet released. */
  get unreleased (): number {
    return (this.#position - this.#released) >>> 0
  }

  /**
   * Hands the space of everything read so far back to the producer, and
   * wakes the producer if it is parked waiting for space. Views returned by
   * read() are invalid after this. Returns true if it had to wake it.
   */
  release (): boolean {
    if (this.#position === this.#released) return false
    const h = this.header
    storeU64(h, MESSAGES_RECEIVED_WORD, this.#messages)
    storeU64(h, BYTES_RECEIVED_WORD, this.#bytesReceived)
    this.#released = this.#position
    Atomics.store(h, CONSUMER_POSITION_WORD, this.#position | 0)
    // Same pairing as RingProducer.publish, mirrored (one wake per park).
    if (Atomics.load(h, PRODUCER_PARKED_WORD) !== 0 && Atomics.exchange(h, PRODUCER_PARKED_WORD, 0) !== 0) {
      this.wakeProducer()
      return true
    }
    return false
  }

  /** Wakes a parked producer (used by release and by close). */
  wakeProducer (): void {
    this.header[PRODUCER_WAKEUPS_WORD] = ++this.#wakeups
    wake(this.header, CONSUMER_POSITION_WORD, 1)
  }

  /** Word the consumer sleeps on while empty (the producer position) and its parked flag. */
  static readonly WAIT_WORD = PRODUCER_POSITION_WORD
  static readonly PARKED_FLAG = CONSUMER_PARKED_WORD
}
