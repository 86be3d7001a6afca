/**
 * The identity words every segment kind starts with, so that any opener can
 * tell what a shared memory object is before it trusts another byte:
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +---------------------------------------------------------------+
 *   |                 magic: four ASCII letters of the kind         | 0  written last by the creator
 *   +-------------------------------+-------------------------------+
 *   |         major version         |         minor version         | 4
 *   +-------------------------------+-------------------------------+
 *   |                          header size                          | 8
 *   +---------------------------------------------------------------+
 *
 * A magic of 0 means the creator has not finished the header. A different
 * major version is refused; a different minor version is accepted (minor
 * versions only add fields a reader may ignore).
 */
import { ShmChannelError } from '../errors'
import { word } from './words'

export const MAGIC_OFFSET = 0
export const VERSION_OFFSET = MAGIC_OFFSET + 4
export const HEADER_SIZE_OFFSET = VERSION_OFFSET + 4

/** What a segment kind says about itself in its first words. */
export interface SegmentIdentity {
  /** The kind, in messages: 'channel', 'listener'. */
  readonly kind: string
  /** Four ASCII letters read as a little-endian u32 ("SHMC" is 0x434d4853). */
  readonly magic: number
  readonly major: number
  readonly minor: number
  /** Bytes of the header, the identity words included. */
  readonly headerSize: number
}

export function invalidSegment (identity: SegmentIdentity, what: string): ShmChannelError {
  return new ShmChannelError('ERR_INVALID_SEGMENT', `invalid ${identity.kind} segment: ${what}`)
}

/** Writes version and header size. The magic comes later, from publishIdentity. */
export function writeIdentity (h: Int32Array, identity: SegmentIdentity): void {
  h[word(VERSION_OFFSET)] = (identity.major << 16) | identity.minor
  h[word(HEADER_SIZE_OFFSET)] = identity.headerSize
}

/**
 * Stores the magic, with a sequentially consistent store: an opener whose
 * Atomics.load sees it sees every field written before it. Call last.
 */
export function publishIdentity (h: Int32Array, identity: SegmentIdentity): void {
  Atomics.store(h, word(MAGIC_OFFSET), identity.magic | 0)
}

/** The magic now; 0 while the creator is still writing the header. */
export function loadMagic (h: Int32Array): number {
  return Atomics.load(h, word(MAGIC_OFFSET)) >>> 0
}

/**
 * Checks the identity words of `buffer` against `identity`. Returns false
 * while the magic is 0; throws ERR_INVALID_SEGMENT for a buffer smaller than
 * the header, another kind, another major version or another header size.
 */
export function checkIdentity (buffer: SharedArrayBuffer, identity: SegmentIdentity): boolean {
  if (buffer.byteLength < identity.headerSize) throw invalidSegment(identity, `${buffer.byteLength} bytes is smaller than a header`)
  const h = new Int32Array(buffer, 0, 3)
  const magic = loadMagic(h)
  if (magic === 0) return false
  if (magic !== identity.magic) throw invalidSegment(identity, `magic is 0x${magic.toString(16)}, not a shm-channel ${identity.kind}`)
  const version = h[word(VERSION_OFFSET)] >>> 0
  const major = version >>> 16
  if (major !== identity.major) {
    throw invalidSegment(identity, `protocol version ${major}.${version & 0xffff} is not supported (this is ${identity.major}.${identity.minor})`)
  }
  const headerSize = h[word(HEADER_SIZE_OFFSET)] >>> 0
  if (headerSize !== identity.headerSize) throw invalidSegment(identity, `header size ${headerSize}, expected ${identity.headerSize}`)
  return true
}
