/**
 * Codecs turn values into message bytes and back.
 *
 * `encode` may return a string: the channel then writes it as UTF-8 straight
 * into the ring, with no intermediate buffer. `decode` gets a view of the
 * message that may point into shared memory and is valid only during the
 * call: copy what you keep.
 */
import v8 from 'node:v8'

import { ShmChannelError, invalidType, invalidValue } from './errors'

export interface Codec<T> {
  readonly name: string
  encode (value: T): Uint8Array | string
  decode (bytes: Buffer): T
  /** Optional: decode bytes[start, end) without a view being made first. */
  decodeRange? (bytes: Buffer, start: number, end: number): T
}

/** Raw bytes: any Uint8Array (Buffer included) in, a Buffer (a private copy) out. */
export const bytes: Codec<Uint8Array> = {
  name: 'bytes',
  encode (value) {
    if (!(value instanceof Uint8Array)) throw invalidType('value', 'a Uint8Array or Buffer (the bytes codec)', value)
    return value
  },
  decode (data) { return Buffer.from(data) },
  decodeRange (data, start, end) {
    const out = Buffer.allocUnsafe(end - start)
    // A plain Uint8Array view and TypedArray#set: a third cheaper for small
    // messages than Buffer#copy or a Buffer subarray, which go through more JavaScript.
    out.set(new Uint8Array(data.buffer, data.byteOffset + start, end - start))
    return out
  }
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
