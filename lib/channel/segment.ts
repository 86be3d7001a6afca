/**
 * A channel's segment as a whole: its identity among segment kinds, a fresh
 * header, and the check every end makes before it trusts a header another
 * process wrote (the bytes are in lib/channel/layout.ts).
 */
import { invalidType } from '../errors'
import { checkIdentity, invalidSegment, publishIdentity, writeIdentity, type SegmentIdentity } from '../segment/identity'
import * as L from './layout'
import { checkCapacity, DEFAULT_CAPACITY } from './options'

export const CHANNEL: SegmentIdentity = {
  kind: 'channel',
  magic: L.MAGIC,
  major: L.VERSION_MAJOR,
  minor: L.VERSION_MINOR,
  headerSize: L.HEADER_SIZE
}

/** Writes a fresh header but the identity words: capacity and positions. */
export function writeChannelHeader (buffer: SharedArrayBuffer, capacity: number, initialPosition = 0): void {
  const h = new Int32Array(buffer, 0, L.HEADER_SIZE / 4)
  h[L.word(L.CAPACITY_OFFSET)] = capacity
  h[L.word(L.PRODUCER_POSITION_OFFSET)] = initialPosition | 0
  h[L.word(L.CONSUMER_POSITION_OFFSET)] = initialPosition | 0
}

/** Writes a whole fresh header in a buffer nobody reads yet; the magic goes last, so an opener never trusts a half-built header. */
export function initSegment (buffer: SharedArrayBuffer, capacity: number, initialPosition = 0): void {
  const h = new Int32Array(buffer, 0, L.HEADER_SIZE / 4)
  h.fill(0)
  writeIdentity(h, CHANNEL)
  writeChannelHeader(buffer, capacity, initialPosition)
  publishIdentity(h, CHANNEL)
}

/**
 * Validates a segment's header against the buffer holding it. Returns the
 * capacity, or 0 while the creator has not finished the header.
 */
export function checkSegment (buffer: SharedArrayBuffer): number {
  if (!checkIdentity(buffer, CHANNEL)) return 0
  const h = new Int32Array(buffer, 0, L.HEADER_SIZE / 4)
  const capacity = h[L.word(L.CAPACITY_OFFSET)] >>> 0
  if (capacity < L.MIN_CAPACITY || capacity > L.MAX_CAPACITY || (capacity & (capacity - 1)) !== 0) {
    throw invalidSegment(CHANNEL, `capacity ${capacity} is not a power of two from ${L.MIN_CAPACITY} to ${L.MAX_CAPACITY}`)
  }
  if (L.segmentSize(capacity) > buffer.byteLength) throw invalidSegment(CHANNEL, `capacity ${capacity} does not fit in ${buffer.byteLength} bytes`)
  const producer = h[L.word(L.PRODUCER_POSITION_OFFSET)]
  const consumer = h[L.word(L.CONSUMER_POSITION_OFFSET)]
  if (((producer | consumer) & (L.RECORD_ALIGNMENT - 1)) !== 0) {
    throw invalidSegment(CHANNEL, `positions ${producer >>> 0} (producer) and ${consumer >>> 0} (consumer) are not both multiples of ${L.RECORD_ALIGNMENT}`)
  }
  const used = (producer - consumer) >>> 0
  if (used > capacity) throw invalidSegment(CHANNEL, `producer is ${used} bytes ahead of the consumer in a ${capacity}-byte ring`)
  return capacity
}

/** Makes a SharedArrayBuffer holding a fresh channel, for `Producer.fromBuffer`/`Consumer.fromBuffer` in worker threads. */
export function createChannelBuffer (capacity: number = DEFAULT_CAPACITY): SharedArrayBuffer {
  checkCapacity(capacity)
  const buffer = new SharedArrayBuffer(L.segmentSize(capacity))
  initSegment(buffer, capacity)
  return buffer
}

/** Checks a `buffer` argument of fromBuffer. */
export function checkBuffer (buffer: unknown): SharedArrayBuffer {
  if (!(buffer instanceof SharedArrayBuffer)) throw invalidType('buffer', 'a SharedArrayBuffer', buffer)
  return buffer
}
