/**
 * The fan-in consumer's reassembly of fragmented messages: one message in
 * progress per producer index, since the fragments of different producers
 * interleave in the ring (lib/fanin/layout.ts, Records).
 *
 * A producer index is a table entry, and entries are reused. A message
 * whose writer left before its LAST fragment (it died, or closed with a send
 * under way) is dropped, never delivered, never joined to what the entry's
 * next owner sends:
 *
 *   - the next owner's first record is a FIRST or a DATA: one arriving while
 *     a message of that index is unfinished drops it;
 *   - if no next owner writes, sweep() (between the consumer's waits) sees
 *     the entry not live, notes the tail then (every record of a writer
 *     that is gone was claimed below it) and drops the message once the
 *     consumer has read up to there.
 *
 * Consumer side only.
 */
import { constants } from 'node:buffer'
import { ShmChannelError } from '../errors'
import { REASSEMBLY_STEP } from '../channel/ring'
import { endLive, readEnd } from '../segment/ends'
import { invalidSegment } from '../segment/identity'
import { readU64, word } from '../segment/words'
import * as L from './layout'
import { FANIN } from './segment'

const EMPTY = Buffer.alloc(0)

/** A message of one producer index being reassembled, or passed over. */
class Partial {
  readonly total: number
  /** Refused (over maxMessageSize): its fragments are read and thrown away. */
  readonly refused: boolean
  filled = 0
  pieces: Buffer[] = []
  piece: Buffer = EMPTY
  pieceFilled = 0
  /** Once its writer is seen gone: the tail then, by which every record of it was claimed; -1 before. */
  orphanedBy = -1

  constructor (total: number, refused: boolean) {
    this.total = total
    this.refused = refused
  }

  /**
   * Copies fragment bytes in, allocating at most REASSEMBLY_STEP bytes
   * ahead of what has arrived (an announced length is a claim, not a fact),
   * as the channel's consumer does. The caller checked that they fit.
   */
  append (bytes: Buffer, from: number, to: number): void {
    while (from < to) {
      if (this.pieceFilled === this.piece.length) {
        if (this.piece.length !== 0) this.pieces.push(this.piece)
        this.piece = Buffer.allocUnsafe(Math.min(this.total - this.filled, REASSEMBLY_STEP))
        this.pieceFilled = 0
      }
      const n = Math.min(to - from, this.piece.length - this.pieceFilled)
      bytes.copy(this.piece, this.pieceFilled, from, from + n)
      this.pieceFilled += n
      this.filled += n
      from += n
    }
  }

  message (): Buffer {
    return this.pieces.length === 0 ? this.piece : Buffer.concat([...this.pieces, this.piece], this.total)
  }
}

export class Reassembly {
  readonly #partials: Array<Partial | undefined>
  /** How many entries of #partials are set: 0 on the path of whole messages. */
  #pending = 0
  readonly #maxMessageSize: number
  readonly #onDrop: () => void

  /** `onDrop` counts a partial message dropped because its writer left. */
  constructor (maxProducers: number, maxMessageSize: number, onDrop: () => void) {
    this.#partials = new Array<Partial | undefined>(maxProducers).fill(undefined)
    this.#maxMessageSize = maxMessageSize
    this.#onDrop = onDrop
  }

  /** A whole message (DATA record) from `producer`: an unfinished message of that index was left by its writer. */
  whole (producer: number): void {
    if (this.#pending !== 0 && this.#partials[producer] !== undefined) this.#drop(producer)
  }

  /**
   * A fragment (`type` FIRST, MIDDLE or LAST) from `producer`, its payload
   * at bytes[start, end). Returns the whole message once its LAST is in,
   * else null. The bytes are copied: the record may be released at once.
   * Throws ERR_MESSAGE_TOO_LARGE at the FIRST of a message over
   * maxMessageSize (or the largest Buffer), whose other fragments are then
   * passed over, and ERR_INVALID_SEGMENT for fragments out of sequence.
   */
  fragment (producer: number, type: number, bytes: Buffer, start: number, end: number): Buffer | null {
    const partials = this.#partials
    if (type === L.TYPE_FIRST) {
      if (partials[producer] !== undefined) this.#drop(producer)
      const length = end - start
      if (length <= L.FRAGMENT_TOTAL_SIZE) throw invalidSegment(FANIN, `first fragment of producer ${producer} has ${length} bytes`)
      const total = readU64(bytes, start)
      const first = length - L.FRAGMENT_TOTAL_SIZE
      if (total <= first) throw invalidSegment(FANIN, `fragmented message of ${total} bytes from producer ${producer} has a first fragment of ${first}`)
      const refused = total > this.#maxMessageSize || total > constants.MAX_LENGTH
      const partial = new Partial(total, refused)
      partials[producer] = partial
      this.#pending++
      if (refused) {
        const limit = total > this.#maxMessageSize ? `maxMessageSize ${this.#maxMessageSize}` : `the largest Buffer, ${constants.MAX_LENGTH} bytes`
        throw new ShmChannelError('ERR_MESSAGE_TOO_LARGE', `message of ${total} bytes from producer ${producer} exceeds ${limit}`)
      }
      partial.append(bytes, start + L.FRAGMENT_TOTAL_SIZE, end)
      return null
    }
    const partial = partials[producer]
    if (partial === undefined) throw invalidSegment(FANIN, `fragment of producer ${producer} continues no message`)
    const last = type === L.TYPE_LAST
    if (partial.refused) {
      if (last) this.#forget(producer)
      return null
    }
    if (partial.filled + end - start > partial.total) throw invalidSegment(FANIN, `fragments of producer ${producer} overrun their message of ${partial.total} bytes`)
    partial.append(bytes, start, end)
    if (!last) return null
    if (partial.filled !== partial.total) throw invalidSegment(FANIN, `fragmented message of producer ${producer} ended at ${partial.filled} of ${partial.total} bytes`)
    this.#forget(producer)
    return partial.message()
  }

  /**
   * Between waits: notes the messages whose writer is gone (its entry not
   * live: dead, closed, or free), and drops those the consumer has read past
   * the tail noted then (`head`: the consumer's read position).
   */
  sweep (h: Int32Array, head: number): void {
    if (this.#pending === 0) return
    const partials = this.#partials
    for (let i = 0; i < partials.length; i++) {
      const partial = partials[i]
      if (partial === undefined) continue
      if (partial.orphanedBy === -1) {
        if (endLive(readEnd(h, L.producerEntryOffset(i)))) continue
        // Loaded after the entry was seen gone: its writer's claims are all below.
        partial.orphanedBy = Atomics.load(h, word(L.TAIL_OFFSET)) >>> 0
      }
      // Positions differ by at most the capacity (2^30): the sign of the 32-bit difference orders them.
      if (((head - partial.orphanedBy) | 0) >= 0) this.#drop(i)
    }
  }

  #drop (producer: number): void {
    const partial = this.#partials[producer]
    this.#forget(producer)
    // A refused message was reported when it was refused.
    if (partial !== undefined && !partial.refused) this.#onDrop()
  }

  #forget (producer: number): void {
    if (this.#partials[producer] === undefined) return
    this.#partials[producer] = undefined
    this.#pending--
  }
}
