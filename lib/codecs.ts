/**
 * Codecs turn values into message bytes and back.
 *
 * `encode` may return a string: the channel then writes it as UTF-8 straight
 * into the ring, with no intermediate buffer. `decode` gets a view of the
 * message that may point into shared memory and is valid only during the
 * call: copy what you keep.
 */
import v8 from 'node:v8'
import { markAsUntransferable } from 'node:worker_threads'

import { ShmChannelError, invalidType, invalidValue } from './errors'

export interface Codec<T> {
  readonly name: string
  encode (value: T): Uint8Array | string
  decode (bytes: Buffer): T
  /** Optional: decode bytes[start, end) without a view being made first. */
  decodeRange? (bytes: Buffer, start: number, end: number): T
}

/**
 * Private copies of received messages of COPY_SLAB_MIN to COPY_SLAB_MAX
 * bytes are cut from COPY_SLAB_SIZE slabs, as Buffer.allocUnsafe cuts
 * smaller ones from its 8 KiB pool, which holds only a few such copies: from
 * 4 KiB, Node gives each Buffer an ArrayBuffer of its own. In one process on
 * Node 20, a 4 KiB copy measured 3–5 µs that way (an ArrayBuffer, its
 * backing store, and the garbage collection that external memory brings on)
 * and 0.3–0.6 µs cut from a slab; a 256-byte one 150–165 ns against
 * 105–115 ns. Below 256 bytes Node's pool is as cheap. A slab stays under
 * malloc's mmap threshold, so its memory is reused while warm. The cost: a
 * copy that is kept keeps its slab.
 */
const COPY_SLAB_SIZE = 64 * 1024
const COPY_SLAB_MIN = 256
const COPY_SLAB_MAX = 16 * 1024
let copySlab: ArrayBuffer | undefined
let copySlabUsed = COPY_SLAB_SIZE

/** A private copy of bytes[start, end) of `data`, which may be shared memory. */
function copyRange (data: Uint8Array, start: number, end: number): Buffer {
  const length = end - start
  let out: Buffer
  if (length < COPY_SLAB_MIN || length > COPY_SLAB_MAX) {
    out = Buffer.allocUnsafe(length)
  } else {
    if (copySlabUsed + length > COPY_SLAB_SIZE || copySlab === undefined) {
      // allocUnsafeSlow: a slab of its own, not zero-filled, every byte of which is written before it is read.
      copySlab = Buffer.allocUnsafeSlow(COPY_SLAB_SIZE).buffer
      // As Node does with its pool: a copy's ArrayBuffer in a postMessage
      // transfer list is not detached, which would take the slab, and the
      // copies cut from it, away from this thread.
      markAsUntransferable(copySlab)
      copySlabUsed = 0
    }
    out = Buffer.from(copySlab, copySlabUsed, length)
    copySlabUsed = (copySlabUsed + length + 7) & ~7
  }
  // A plain Uint8Array view and TypedArray#set: a third cheaper for small
  // messages than Buffer#copy or a Buffer subarray, which go through more JavaScript.
  out.set(new Uint8Array(data.buffer, data.byteOffset + start, length))
  return out
}

/**
 * Raw bytes: any Uint8Array (Buffer included) in, a Buffer (a private copy)
 * out. Copies of 256 B to 16 KiB share 64 KiB slabs, as smaller Buffers share
 * Node's pool: to keep many of them for long, copy them (`Buffer.from(m)`).
 */
export const bytes: Codec<Uint8Array> = {
  name: 'bytes',
  encode (value) {
    if (!(value instanceof Uint8Array)) throw invalidType('value', 'a Uint8Array or Buffer (the bytes codec)', value)
    return value
  },
  decode (data) { return copyRange(data, 0, data.length) },
  decodeRange: copyRange
}

/** Strings, as UTF-8. */
export const utf8: Codec<string> = {
  name: 'utf8',
  encode (value) {
    if (typeof value !== 'string') throw invalidType('value', 'a string (the utf8 codec)', value)
    return value
  },
  decode (data) { return data.toString('utf8') },
  decodeRange (data, start, end) { return data.toString('utf8', start, end) }
}

/** JSON values. The default: see docs/codecs.md for the measurements behind that choice. */
export const json: Codec<unknown> = {
  name: 'json',
  encode (value) {
    const text = JSON.stringify(value)
    if (text === undefined) throw invalidValue('value', `cannot be sent by the json codec: ${typeof value} has no JSON form`)
    return text
  },
  decode (data) { return JSON.parse(data.toString('utf8')) },
  decodeRange (data, start, end) { return JSON.parse(data.toString('utf8', start, end)) }
}

/** Anything the structured clone algorithm takes (Map, Set, Date, typed arrays, BigInt, cycles …), through v8.serialize. */
export const structured: Codec<unknown> = {
  name: 'structured',
  encode (value) { return v8.serialize(value) },
  // v8.deserialize returns typed arrays and Buffers that are views of its
  // input where alignment allows: deserialize a copy, or they would alias
  // ring memory the producer overwrites once this message is released.
  decode (data) { return v8.deserialize(Buffer.from(data)) }
}

/** What the msgpack codec uses of msgpackr's Packr (typed here: msgpackr is an optional peer dependency). */
interface Packr {
  pack (value: unknown): Uint8Array
  unpack (bytes: Uint8Array): unknown
}

let msgpackCodec: Codec<unknown> | undefined

/**
 * msgpackr reads a string of 32 bytes or more (type markers 0xd9 to 0xdb)
 * through a decoder that measured 10 to 40× slower on shared memory than on
 * a private copy. A message from the ring that may hold one is decoded from
 * a copy; a false positive (the byte inside a number) only costs the copy.
 */
function mayHoldLongString (data: Buffer): boolean {
  return data.length >= 34 && data.buffer instanceof SharedArrayBuffer &&
    (data.indexOf(0xd9) !== -1 || data.indexOf(0xda) !== -1 || data.indexOf(0xdb) !== -1)
}

function copyOf (data: Buffer): Uint8Array {
  return Uint8Array.prototype.slice.call(data)
}

/**
 * MessagePack through msgpackr, loaded on first use; ERR_MISSING_DEPENDENCY
 * if it is not installed. Plain MessagePack (no record extension: each
 * message stands alone, as a consumer that joins late needs). Binary values
 * are decoded as copies, since the message bytes are ring memory the
 * producer reuses once the message is released.
 */
function loadMsgpack (): Codec<unknown> {
  if (msgpackCodec !== undefined) return msgpackCodec
  let Packr: new (options: object) => Packr
  try {
    Packr = require('msgpackr').Packr
  } catch (err) {
    throw new ShmChannelError('ERR_MISSING_DEPENDENCY', 'the msgpack codec needs the msgpackr package: npm install msgpackr', { cause: err })
  }
  const packr = new Packr({ useRecords: false, copyBuffers: true })
  msgpackCodec = {
    name: 'msgpack',
    encode (value) { return packr.pack(value) },
    // No decodeRange: unpack(ring, { start, end }) measured 40× slower than
    // unpack of the view (docs/codecs.md).
    decode (data) { return packr.unpack(mayHoldLongString(data) ? copyOf(data) : data) }
  }
  return msgpackCodec
}

/** The built-in codecs by name. `msgpack` is loaded when first read (it needs msgpackr). */
export const codecs = {
  bytes,
  utf8,
  json,
  structured,
  get msgpack (): Codec<unknown> { return loadMsgpack() }
}
export type CodecName = keyof typeof codecs

export function resolveCodec<T> (codec: Codec<T> | CodecName | undefined): Codec<T> {
  if (codec === undefined) return json as Codec<T>
  if (typeof codec === 'string') {
    const found = Object.hasOwn(codecs, codec) ? (codecs as Record<string, Codec<unknown>>)[codec] : undefined
    if (found === undefined) {
      throw invalidValue('codec', `must be one of ${Object.keys(codecs).join(', ')} or an object with encode and decode, got ${JSON.stringify(codec)}`)
    }
    return found as Codec<T>
  }
  if (typeof codec !== 'object' || codec === null || typeof codec.encode !== 'function' || typeof codec.decode !== 'function') {
    throw invalidType('codec', 'a codec name or an object with encode and decode functions', codec)
  }
  return codec
}
