/**
 * What a channel end does when it takes over from a dead holder (the claim
 * itself is lib/segment/ends.ts's takeOverEnd): the bookkeeping each role
 * writes while its claim is held, before its end reads OPEN, and whether a
 * dead end is worth taking over at all. docs/protocol.md, "Taking over an
 * end", is the same rules for other languages.
 */
import { storeU64, loadU64 } from '../segment/words'
import * as L from './layout'

export type Role = 'producer' | 'consumer'

/**
 * True when a dead end of `role` should be taken over rather than the
 * segment reclaimed: its peer is live, being taken over, or never came (it
 * may be on its way), or messages remain unread. A producer does not take
 * over a channel whose consumer closed: nobody would read it.
 */
export function worthTakingOver (h: Int32Array, role: Role, peerState: number, peerUsedUp: boolean): boolean {
  if (role === 'producer' && peerState === L.END_CLOSED) return false
  return !peerUsedUp || unread(h)
}

/** True when the producer has published bytes the consumer has not released. */
export function unread (h: Int32Array): boolean {
  return Atomics.load(h, L.word(L.PRODUCER_POSITION_OFFSET)) !== Atomics.load(h, L.word(L.CONSUMER_POSITION_OFFSET))
}

/**
 * A new producer's bookkeeping, under its claim: records where it begins, so
 * that a consumer holding part of a message the dead producer never finished
 * drops it at the first message that starts from here (RingConsumer), and
 * when the takeover happened. The store of ABANDONED_AT comes before any
 * record of the new producer is published, so a consumer that sees such a
 * record sees it too.
 */
export function producerTakeover (h: Int32Array): void {
  Atomics.store(h, L.word(L.ABANDONED_AT_OFFSET), Atomics.load(h, L.word(L.PRODUCER_POSITION_OFFSET)))
  storeU64(h, L.word(L.PRODUCER_TAKEOVER_TIME_OFFSET), Date.now())
}

/**
 * A new consumer's bookkeeping, under its claim: counts the messages between
 * the released position and the dead consumer's read mark (read, never
 * released: they will be delivered again) and adds them to the channel's
 * redelivery count. Returns that number. The records are intact: the
 * producer cannot reuse space that was not released.
 */
export function consumerTakeover (h: Int32Array, buffer: SharedArrayBuffer): number {
  const redelivered = countReadUnreleased(h, buffer)
  storeU64(h, L.word(L.REDELIVERED_OFFSET), loadU64(h, L.word(L.REDELIVERED_OFFSET)) + redelivered)
  storeU64(h, L.word(L.CONSUMER_TAKEOVER_TIME_OFFSET), Date.now())
  return redelivered
}

/**
 * Messages that end in [consumer position, mark): read by a dead consumer,
 * not released. The mark is the further of the read mark and where the
 * previous takeover's redelivery ended (a consumer killed while it
 * redelivers has moved the read mark back); it is kept for the next takeover.
 * A mark behind the released position or past what was published (a 1.0
 * segment, or an old value) counts for nothing.
 */
function countReadUnreleased (h: Int32Array, buffer: SharedArrayBuffer): number {
  const capacity = h[L.word(L.CAPACITY_OFFSET)] >>> 0
  let position = Atomics.load(h, L.word(L.CONSUMER_POSITION_OFFSET)) >>> 0
  const published = Atomics.load(h, L.word(L.PRODUCER_POSITION_OFFSET)) >>> 0
  const ahead = (mark: number): number => {
    const span = (mark - position) >>> 0
    return span > ((published - position) >>> 0) ? 0 : span
  }
  const readMark = h[L.word(L.READ_MARK_OFFSET)] >>> 0
  const previous = h[L.word(L.REDELIVER_UNTIL_OFFSET)] >>> 0
  const span = Math.max(ahead(readMark), ahead(previous))
  const mark = (position + span) >>> 0
  h[L.word(L.REDELIVER_UNTIL_OFFSET)] = mark
  if (span === 0) return 0
  const words = new Int32Array(buffer, L.HEADER_SIZE, capacity / 4)
  let messages = 0
  while (position !== mark) {
    const index = position & (capacity - 1)
    const length = words[index >>> 2] >>> 0
    const type = words[(index >>> 2) + 1] >>> 0
    const size = (type & L.TYPE_MASK) === L.TYPE_PADDING ? capacity - index : L.alignRecord(length)
    if (size > capacity - index || size > ((mark - position) >>> 0)) break // not a record boundary: stop counting
    if ((type & L.TYPE_MASK) === L.TYPE_DATA && (type & L.FLAG_END) !== 0) messages++
    position = (position + size) >>> 0
  }
  return messages
}
