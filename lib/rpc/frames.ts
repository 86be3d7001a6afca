/**
 * The frames of a request/response connection, and how values and errors
 * cross in them.
 *
 * Frames. Every message on a connection's channels is one frame: an 8-byte
 * header, then the payload.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +---------------+---------------+---------------+---------------+
 *   |     kind      |    status     |     flags     |   reserved 0  |  0
 *   +---------------+---------------+---------------+---------------+
 *   |                          request id (u32)                     |  4
 *   +---------------------------------------------------------------+
 *   |  payload: the codec's bytes of the value (REQUEST, REPLY OK),  |  8
 *   |  JSON {name, message, code} (REPLY ERROR), nothing (CANCEL)   |
 *
 * The frame is written straight into the ring (claim/commit) when it fits
 * one record, so a request costs the codec's encoding and one copy; the
 * reader decodes in place from shared memory (read/release).
 */
import type { Codec } from '../codecs'
import { RemoteError, ShmChannelError, invalidReturn } from '../errors'
import type { Producer } from '../channel/producer'
import * as L from '../channel/layout'

export const FRAME_HEADER_SIZE = 8
export const FRAME_KIND = 0
export const FRAME_STATUS = 1
export const FRAME_FLAGS = 2
export const FRAME_ID = 4

/** Client to server: call the handler with the payload. */
export const KIND_REQUEST = 1
/** Server to client: the answer to the request with the same id. */
export const KIND_REPLY = 2
/** Client to server: the caller gave up on this id (timeout or abort); the handler's signal aborts. No payload. */
export const KIND_CANCEL = 3

export const STATUS_OK = 0
export const STATUS_ERROR = 1

/** The value is `undefined`: no payload (codecs such as JSON cannot carry it). */
export const FLAG_NO_VALUE = 0x01

export function putHeader (view: Uint8Array, kind: number, status: number, flags: number, id: number): void {
  view[FRAME_KIND] = kind
  view[FRAME_STATUS] = status
  view[FRAME_FLAGS] = flags
  view[3] = 0
  view[FRAME_ID] = id
  view[FRAME_ID + 1] = id >>> 8
  view[FRAME_ID + 2] = id >>> 16
  view[FRAME_ID + 3] = id >>> 24
}

export function readId (view: Uint8Array): number {
  return (view[FRAME_ID] | (view[FRAME_ID + 1] << 8) | (view[FRAME_ID + 2] << 16) | (view[FRAME_ID + 3] << 24)) >>> 0
}

/**
 * Writes one frame. In place in the ring when it fits one record and there
 * is room now (returns undefined); otherwise as a Buffer through send(),
 * which waits for room and fragments large frames (returns its promise).
 * Throws what claim/send throw at once (the channel is closed).
 */
export function writeFrame (producer: Producer<Uint8Array>, kind: number, status: number, flags: number, id: number, payload: string | Uint8Array | undefined): Promise<void> | undefined {
  const limit = L.maxRecordPayload(producer.capacity)
  if (payload === undefined) {
    const view = producer.claim(FRAME_HEADER_SIZE)
    if (view !== null) {
      putHeader(view, kind, status, flags, id)
      producer.commit()
      return undefined
    }
    const frame = Buffer.allocUnsafe(FRAME_HEADER_SIZE)
    putHeader(frame, kind, status, flags, id)
    return producer.send(frame)
  }
  if (typeof payload === 'string') {
    // UTF-8 takes at most 3 bytes per UTF-16 unit: claim that much, commit what was written.
    const most = FRAME_HEADER_SIZE + payload.length * 3
    if (most <= limit) {
      const view = producer.claim(most)
      if (view !== null) {
        putHeader(view, kind, status, flags, id)
        producer.commit(FRAME_HEADER_SIZE + view.write(payload, FRAME_HEADER_SIZE, 'utf8'))
        return undefined
      }
    }
    const length = FRAME_HEADER_SIZE + Buffer.byteLength(payload, 'utf8')
    if (length < most && length <= limit) {
      const view = producer.claim(length)
      if (view !== null) {
        putHeader(view, kind, status, flags, id)
        view.write(payload, FRAME_HEADER_SIZE, 'utf8')
        producer.commit()
        return undefined
      }
    }
    const frame = Buffer.allocUnsafe(length)
    putHeader(frame, kind, status, flags, id)
    frame.write(payload, FRAME_HEADER_SIZE, 'utf8')
    return producer.send(frame)
  }
  if (!(payload instanceof Uint8Array)) throw invalidReturn('the codec\'s encode', 'a string or a Uint8Array', payload)
  const length = FRAME_HEADER_SIZE + payload.length
  if (length <= limit) {
    const view = producer.claim(length)
    if (view !== null) {
      putHeader(view, kind, status, flags, id)
      view.set(payload, FRAME_HEADER_SIZE)
      producer.commit()
      return undefined
    }
  }
  const frame = Buffer.allocUnsafe(length)
  putHeader(frame, kind, status, flags, id)
  frame.set(payload, FRAME_HEADER_SIZE)
  return producer.send(frame)
}

/** The frame's value, decoded from the view (which may point into shared memory). */
export function decodeValue<T> (codec: Codec<T>, frame: Buffer): T {
  if ((frame[FRAME_FLAGS] & FLAG_NO_VALUE) !== 0) return undefined as T
  try {
    return codec.decodeRange !== undefined ? codec.decodeRange(frame, FRAME_HEADER_SIZE, frame.length) : codec.decode(frame.subarray(FRAME_HEADER_SIZE))
  } catch (err) {
    throw new ShmChannelError('ERR_DECODE', `codec ${codec.name} could not decode a ${frame.length - FRAME_HEADER_SIZE}-byte value: ${(err as Error).message}`, { cause: err })
  }
}

export function malformed (frame: Buffer): ShmChannelError {
  return new ShmChannelError('ERR_DECODE', `malformed frame: ${frame.length} bytes, kind ${frame.length > 0 ? frame[0] : 'none'}`)
}

/** What crosses for a failed handler: name, message and a string or number code. Never the stack. */
export function errorPayload (err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code
    return JSON.stringify({ name: err.name, message: err.message, code: typeof code === 'string' || typeof code === 'number' ? code : undefined })
  }
  let message: string
  try {
    message = typeof err === 'string' ? err : JSON.stringify(err) ?? String(err)
  } catch {
    message = String(err)
  }
  return JSON.stringify({ name: 'Error', message })
}

export function remoteError (frame: Buffer): RemoteError {
  let remote: { name?: unknown, message?: unknown, code?: unknown }
  try {
    remote = JSON.parse(frame.toString('utf8', FRAME_HEADER_SIZE))
  } catch {
    remote = { message: 'the handler failed (its error could not be read)' }
  }
  const code = typeof remote.code === 'string' || typeof remote.code === 'number' ? remote.code : undefined
  return new RemoteError(String(remote.message ?? ''), { name: typeof remote.name === 'string' ? remote.name : undefined, code })
}

export function isAbort (err: unknown): boolean {
  return (err as Error | undefined)?.name === 'AbortError'
}
