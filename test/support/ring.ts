/**
 * A ring with both ends in this thread, and eyes on its raw bytes: what the
 * ring tests (test/channel/ring.*.test.ts, test/channel/layout.test.ts) build on.
 */
import * as L from '../../lib/channel/layout'
import { RingConsumer, RingProducer } from '../../lib/channel/ring'
import { initSegment } from '../../lib/channel/segment'
import { firstDifference } from './prng'

export interface TestRing {
  buffer: SharedArrayBuffer
  capacity: number
  producer: RingProducer
  consumer: RingConsumer
  /** The header as 32-bit words. */
  header: Int32Array
  /** The ring's bytes (index 0 is the first byte after the header). */
  bytes: Buffer
}

export interface RingOptions {
  /** Position both ends start at (default 0); a multiple of 8. */
  initialPosition?: number
  /** The consumer's maxMessageSize (default Infinity). */
  maxMessageSize?: number
  /** Bytes the buffer has past the end of the ring (default 0). */
  tail?: number
}

/** A fresh segment of `capacity` bytes, its producer and its consumer. */
export function makeRing (capacity = 4096, options: RingOptions = {}): TestRing {
  const buffer = new SharedArrayBuffer(L.segmentSize(capacity) + (options.tail ?? 0))
  initSegment(buffer, capacity, options.initialPosition ?? 0)
  return {
    buffer,
    capacity,
    producer: new RingProducer(buffer),
    consumer: new RingConsumer(buffer, options.maxMessageSize ?? Infinity),
    header: new Int32Array(buffer, 0, L.HEADER_SIZE / 4),
    bytes: Buffer.from(buffer, L.HEADER_SIZE, capacity)
  }
}

/** A u32 of the header. */
export function headerWord (ring: { header: Int32Array }, byteOffset: number): number {
  return ring.header[L.word(byteOffset)] >>> 0
}

export function setHeaderWord (ring: { header: Int32Array }, byteOffset: number, value: number): void {
  ring.header[L.word(byteOffset)] = value | 0
}

export function producerPosition (ring: { header: Int32Array }): number {
  return headerWord(ring, L.PRODUCER_POSITION_OFFSET)
}

export function consumerPosition (ring: { header: Int32Array }): number {
  return headerWord(ring, L.CONSUMER_POSITION_OFFSET)
}

/** The record header at ring index `index`. */
export function recordAt (ring: { bytes: Buffer }, index: number): { length: number, type: number } {
  return { length: ring.bytes.readUInt32LE(index), type: ring.bytes.readUInt32LE(index + 4) }
}

/** Writes a record header at ring index `index` (the payload is left as it is). */
export function writeRecord (ring: { bytes: Buffer }, index: number, length: number, type: number): void {
  ring.bytes.writeUInt32LE(length >>> 0, index)
  ring.bytes.writeUInt32LE(type >>> 0, index + 4)
}

/** Ring index of a view returned by claim() or read(): where its payload starts. */
export function indexOf (view: Uint8Array): number {
  return view.byteOffset - L.HEADER_SIZE
}

/** Copies `length` ring bytes from position `position`, wrapping at the end. */
export function copyRing (ring: { bytes: Buffer, capacity: number }, position: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length)
  const index = position & (ring.capacity - 1)
  const first = Math.min(length, ring.capacity - index)
  ring.bytes.copy(out, 0, index, index + first)
  if (first < length) ring.bytes.copy(out, first, 0, length - first)
  return out
}

/** Null if `actual` holds exactly `expected`, else where they part (for assertion messages). */
export function bytesDiffer (actual: Uint8Array | null, expected: Uint8Array): string | null {
  if (actual === null) return `expected ${expected.length} bytes, got null`
  const at = firstDifference(actual, expected)
  if (at === -1) return null
  return actual.length !== expected.length && at === Math.min(actual.length, expected.length)
    ? `expected ${expected.length} bytes, got ${actual.length}`
    : `${actual.length} bytes, first difference at byte ${at}`
}
