/**
 * Codecs turn values into message bytes and back.
 *
 * `encode` may return a string: the channel then writes it as UTF-8 straight
 * into the ring, with no intermediate buffer. `decode` gets a view of the
 * message that may point into shared memory and is valid only during the
 * call: copy what you keep.
 */
import v8 from 'node:v8'

import { invalidType, invalidValue } from './errors'

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

export const codecs = { bytes, utf8, json, structured } as const
export type CodecName = keyof typeof codecs

export function resolveCodec<T> (codec: Codec<T> | CodecName | undefined): Codec<T> {
  if (codec === undefined) return json as Codec<T>
  if (typeof codec === 'string') {
    const found = (codecs as Record<string, Codec<unknown>>)[codec]
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
