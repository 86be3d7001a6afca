/**
 * Request/response between processes, for a sidecar serving its neighbours:
 * `serve(name, handler)` in the server, `await connect(name)` and
 * `await client.request(value)` in each client.
 *
 * Each client gets its own duplex (two channels, lib/duplex.ts); clients are
 * admitted by name through the server's listener region (lib/listener.ts).
 * docs/architecture.md, "Request/response", describes the design and the
 * bytes.
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
import { EventEmitter } from 'node:events'

import { DEFAULT_CAPACITY, checkCapacity, settings, type Consumer, type Producer, type WaitStrategy } from './channel'
import { resolveCodec, type Codec, type CodecName } from './codecs'
import { Duplex, type DuplexOptions } from './duplex'
import { AbortError, RemoteError, ShmChannelError, checkInteger, checkTimeout, invalidType, invalidValue } from './errors'
import { Listener, MAX_SLOTS, SLOT_ACCEPTED, SLOT_REFUSED, Ticket, reclaimListener, type SlotOwner } from './listener'
import * as L from './layout'
import { isAlive } from './liveness'
import { checkName } from './region'

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

/** Longest `.${pid}.${connection}.down` suffix a service name gets for its channels. */
const CHANNEL_SUFFIX_MAX = '.4294967295.4294967295.down'.length
/** How often the server frees the slots of clients that died while connecting. */
const SWEEP_INTERVAL = 1000
/** Longest a client's read loop waits before looking whether anything is still pending, in milliseconds. */
const IDLE_SLICE = 200

export interface ConnectionOptions<Req, Res> {
  /** How requests and replies become bytes: 'json' (default), 'structured', 'utf8', 'bytes', or your own. Both sides must use the same. */
  codec?: Codec<Req | Res> | CodecName
  /** How this side waits for frames: 'adaptive' (default), 'spin' or 'block'; see ChannelOptions. */
  wait?: WaitStrategy
  /** Spin budget of 'adaptive', in microseconds. Default 50. */
  spinMicros?: number
  /** While waiting, how often to check that the other process lives, in milliseconds. Default 250. */
  peerCheckInterval?: number
  /** Largest request (server) or reply (client) value accepted, in encoded bytes. Default: no limit. */
  maxMessageSize?: number
  /** Permission bits of the shared memory objects this side creates. Default 0o600. */
  mode?: number
  /** Talk to a peer running as another user: join its listener (client) or channels (server). Default false: ERR_FOREIGN_OWNER. */
  allowForeignOwner?: boolean
}

export interface ServeOptions<Req = unknown, Res = unknown> extends ConnectionOptions<Req, Res> {
  /** Ring bytes of each channel a client creates (clients may override). A power of two, 4096 to 2^30. Default 1 MiB. */
  capacity?: number
  /** Connection slots of the listener: how many clients can be connecting at one instant. 1 to 1024, default 32. */
  backlog?: number
  /** Connected clients at most; more are refused (their connect fails with ERR_BUSY). Default 64. */
  maxClients?: number
  /** Requests of one client whose handler is still running, at most; beyond it the server reads no further requests of that client until one finishes. Default 1024. */
  maxInFlight?: number
  /** How long to wait for another process's half-made listener under the name, in milliseconds. Default 5000. */
  openTimeout?: number
}

export interface ConnectOptions<Req = unknown, Res = unknown> extends ConnectionOptions<Req, Res> {
  /** Ring bytes of this client's two channels. Default: what the server asks for. */
  capacity?: number
  /** How long to wait for the server (its listener may not exist yet) and its acceptance, in milliseconds. Default 5000. */
  timeout?: number
  /** Gives up connecting. */
  signal?: AbortSignal
}

export interface RequestOptions {
  /** Milliseconds until the request fails with ERR_TIMEOUT. Default: no limit. */
  timeout?: number
  /** Cancels the request: it fails with an AbortError, and the handler's `context.signal` aborts. */
  signal?: AbortSignal
}

/** Who a connection is with. */
export interface ClientInfo {
  /** The client's process id. */
  readonly pid: number
  /** The client's number for this connection (random start, then counting up per process). */
  readonly connection: number
  /** Base name of the connection's two channels (`${name}.up`, `${name}.down`). */
  readonly name: string
}

export interface RequestContext {
  /** The request's id on its connection. */
  readonly id: number
  readonly client: ClientInfo
  /** Aborts when the caller gives up (timeout or abort), the client disconnects, or the server closes. */
  readonly signal: AbortSignal
}

/** Answers one request; may return a promise. Throwing (or rejecting) sends the caller a RemoteError. */
export type Handler<Req = unknown, Res = unknown> = (request: Req, context: RequestContext) => Res | PromiseLike<Res>

export interface ServerEvents {
  /** A client was admitted. */
  connection: [client: ClientInfo]
  /** A client's connection ended: it closed (no error), died (ERR_PEER_DEAD), or broke the protocol. */
  disconnect: [client: ClientInfo, error: Error | undefined]
  /** The server cannot go on accepting (an unexpected failure of the listener). */
  error: [error: Error]
}

// ---------------------------------------------------------------------------
// Options

interface Common {
  codec: Codec<unknown>
  peerCheckInterval: number
  channel: DuplexOptions<Uint8Array>
}


/** Checks what both sides take, so a bad option fails at serve()/connect() and not at the first client. */
function common (options: ConnectionOptions<unknown, unknown>): Common {
  const codec = resolveCodec(options.codec as Codec<unknown> | CodecName | undefined)
  const { wait, spinMicros, peerCheckInterval } = settings(options)
  let maxMessageSize = options.maxMessageSize ?? Infinity
  if (maxMessageSize !== Infinity) maxMessageSize = checkInteger('maxMessageSize', maxMessageSize, 0, Number.MAX_SAFE_INTEGER - FRAME_HEADER_SIZE) + FRAME_HEADER_SIZE
  if (options.mode !== undefined) checkInteger('mode', options.mode, 0, 0o777)
  return {
    codec,
    peerCheckInterval,
    channel: { codec: 'bytes', wait, spinMicros, peerCheckInterval, maxMessageSize, mode: options.mode, allowForeignOwner: options.allowForeignOwner }
  }
}

/** The service name as a shared memory name (with its slash) and bare (for channel names). */
function serviceName (name: unknown): { shm: string, base: string } {
  const shm = checkName(name)
  const base = shm.slice(1)
  if (Buffer.byteLength(base) > 255 - CHANNEL_SUFFIX_MAX) {
    throw invalidValue('name', `must be at most ${255 - CHANNEL_SUFFIX_MAX} bytes: the connections' channel names add up to ${CHANNEL_SUFFIX_MAX}`)
  }
  return { shm, base }
}

function connectionName (base: string, owner: { pid: number, connection: number }): string {
  return `${base}.${owner.pid}.${owner.connection}`
}

// ---------------------------------------------------------------------------
// Frames

function putHeader (view: Uint8Array, kind: number, status: number, flags: number, id: number): void {
  view[FRAME_KIND] = kind
  view[FRAME_STATUS] = status
  view[FRAME_FLAGS] = flags
  view[3] = 0
  view[FRAME_ID] = id
  view[FRAME_ID + 1] = id >>> 8
  view[FRAME_ID + 2] = id >>> 16
  view[FRAME_ID + 3] = id >>> 24
}

function readId (view: Uint8Array): number {
  return (view[FRAME_ID] | (view[FRAME_ID + 1] << 8) | (view[FRAME_ID + 2] << 16) | (view[FRAME_ID + 3] << 24)) >>> 0
}

/**
 * Writes one frame. In place in the ring when it fits one record and there
 * is room now (returns undefined); otherwise as a Buffer through send(),
 * which waits for room and fragments large frames (returns its promise).
 * Throws what claim/send throw at once (the channel is closed).
 */
function writeFrame (producer: Producer<Uint8Array>, kind: number, status: number, flags: number, id: number, payload: string | Uint8Array | undefined): Promise<void> | undefined {
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
  if (!(payload instanceof Uint8Array)) throw new TypeError('the codec returned neither a string nor a Uint8Array')
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
function decodeValue<T> (codec: Codec<T>, frame: Buffer): T {
  if ((frame[FRAME_FLAGS] & FLAG_NO_VALUE) !== 0) return undefined as T
  try {
    return codec.decodeRange !== undefined ? codec.decodeRange(frame, FRAME_HEADER_SIZE, frame.length) : codec.decode(frame.subarray(FRAME_HEADER_SIZE))
  } catch (err) {
    throw new ShmChannelError('ERR_DECODE', `codec ${codec.name} could not decode a ${frame.length - FRAME_HEADER_SIZE}-byte value: ${(err as Error).message}`, { cause: err })
  }
}

function malformed (frame: Buffer): ShmChannelError {
  return new ShmChannelError('ERR_DECODE', `malformed frame: ${frame.length} bytes, kind ${frame.length > 0 ? frame[0] : 'none'}`)
}

/** What crosses for a failed handler: name, message and a string or number code. Never the stack. */
function errorPayload (err: unknown): string {
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

function remoteError (frame: Buffer): RemoteError {
  let remote: { name?: unknown, message?: unknown, code?: unknown }
  try {
    remote = JSON.parse(frame.toString('utf8', FRAME_HEADER_SIZE))
  } catch {
    remote = { message: 'the handler failed (its error could not be read)' }
  }
  const code = typeof remote.code === 'string' || typeof remote.code === 'number' ? remote.code : undefined
  return new RemoteError(String(remote.message ?? ''), { name: typeof remote.name === 'string' ? remote.name : undefined, code })
}

function isAbort (err: unknown): boolean {
  return (err as Error | undefined)?.name === 'AbortError'
}

// ---------------------------------------------------------------------------
// Server

/** `serve(name, handler)`: answers requests from any number of clients until closed. */
export function serve<Req = unknown, Res = unknown> (name: string, handler: Handler<Req, Res>, options: ServeOptions<Req, Res> = {}): Server<Req, Res> {
  return new Server<Req, Res>(name, handler, options)
}

/**
 * The serving side. Created by `serve()`; emits 'connection' and
 * 'disconnect' with a ClientInfo, and 'error' if the listener fails (with
 * no 'error' listener that ends the process, as for any EventEmitter).
 * While it is open it keeps the process alive, as a listening socket does.
 */
export class Server<Req = unknown, Res = unknown> extends EventEmitter<ServerEvents> {
  /** The service name (the listener's shared memory name, with its slash). */
  readonly name: string
  readonly #base: string
  readonly #listener: Listener
  readonly #connections = new Set<Connection>()
  readonly #closer = new AbortController()
  readonly #setup: ConnectionSetup
  readonly #maxClients: number
  #closed = false

  /** Use `serve()`. */
  constructor (name: string, handler: Handler<Req, Res>, options: ServeOptions<Req, Res> = {}) {
    super()
    const { shm, base } = serviceName(name)
    if (typeof handler !== 'function') throw invalidType('handler', 'a function', handler)
    const { codec, channel } = common(options as ConnectionOptions<unknown, unknown>)
    const capacity = checkCapacity(options.capacity ?? DEFAULT_CAPACITY)
    const backlog = checkInteger('backlog', options.backlog ?? 32, 1, MAX_SLOTS)
    this.#maxClients = checkInteger('maxClients', options.maxClients ?? 64, 1, Number.MAX_SAFE_INTEGER)
    const maxInFlight = checkInteger('maxInFlight', options.maxInFlight ?? 1024, 1, Number.MAX_SAFE_INTEGER)
    const openTimeout = checkTimeout('openTimeout', options.openTimeout ?? 5000)
    this.#setup = { handler: handler as Handler, codec, channel, maxInFlight, onEnd: (connection, error) => { this.#ended(connection, error) } }
    this.#listener = Listener.create(shm, { slots: backlog, capacity, codec: codec.name, mode: options.mode, openTimeout })
    this.name = shm
    this.#base = base
    this.#accept().catch((err: unknown) => {
      if (!this.#closed) this.emit('error', err as Error)
    })
  }

  get closed (): boolean {
    return this.#closed
  }

  /** The clients connected now. */
  get clients (): ClientInfo[] {
    return [...this.#connections].map((connection) => connection.client)
  }

  async #accept (): Promise<void> {
    const listener = this.#listener
    let swept = performance.now()
    while (!this.#closed) {
      // Load the doorbell before scanning: a client that readies its slot
      // after the scan has also rung after this load, so the sleep below
      // returns at once (the word changed) and the next scan finds it.
      const seen = listener.doorbell()
      for (const slot of listener.ready()) this.#admit(slot)
      if (performance.now() - swept >= SWEEP_INTERVAL) {
        swept = performance.now()
        for (const orphan of listener.sweep()) {
          try {
            Duplex.unlink(connectionName(this.#base, orphan))
          } catch {} // best effort: a name we may not remove is not worth stopping for
        }
      }
      try {
        await listener.sleep(seen, SWEEP_INTERVAL, this.#closer.signal)
      } catch (err) {
        if (this.#closed && isAbort(err)) return
        throw err
      }
    }
  }

  #admit (slot: number): void {
    const owner: SlotOwner | null = this.#listener.take(slot)
    if (owner === null) return // the client withdrew at this instant
    if (this.#connections.size >= this.#maxClients) {
      this.#listener.answer(slot, SLOT_REFUSED) // the client removes its channels
      return
    }
    const name = connectionName(this.#base, owner)
    let duplex: Duplex<Uint8Array, Uint8Array>
    try {
      duplex = Duplex.listen<Uint8Array, Uint8Array>(name, this.#setup.channel)
    } catch {
      this.#listener.answer(slot, SLOT_REFUSED)
      return
    }
    const client: ClientInfo = Object.freeze({ pid: owner.pid, connection: owner.connection, name })
    const connection = new Connection(client, duplex, this.#setup)
    this.#connections.add(connection)
    this.#listener.answer(slot, SLOT_ACCEPTED)
    void connection.run()
    this.emit('connection', client)
  }

  #ended (connection: Connection, error: Error | undefined): void {
    if (!this.#connections.delete(connection)) return
    this.emit('disconnect', connection.client, error)
  }

  /**
   * Stops accepting, closes every connection (requests not yet answered fail
   * in their clients with ERR_CHANNEL_CLOSED; running handlers' signals
   * abort) and removes the listener's name. Idempotent.
   */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    this.#closer.abort()
    this.#listener.close()
    for (const connection of [...this.#connections]) connection.close()
  }
}

interface ConnectionSetup {
  handler: Handler
  codec: Codec<unknown>
  channel: DuplexOptions<Uint8Array>
  maxInFlight: number
  onEnd: (connection: Connection, error: Error | undefined) => void
}

/** The context of one request; its AbortController is made only if the handler asks for the signal. */
class Context implements RequestContext {
  readonly id: number
  readonly client: ClientInfo
  cancelled = false
  #controller: AbortController | undefined
  #reason: unknown

  constructor (id: number, client: ClientInfo) {
    this.id = id
    this.client = client
  }

  get signal (): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController()
      if (this.cancelled) this.#controller.abort(this.#reason)
    }
    return this.#controller.signal
  }

  cancel (reason: Error): void {
    if (this.cancelled) return
    this.cancelled = true
    this.#reason = reason
    this.#controller?.abort(reason)
  }
}

/** The server's side of one client: reads its requests, runs the handler, writes replies. */
class Connection {
  readonly client: ClientInfo
  readonly #duplex: Duplex<Uint8Array, Uint8Array>
  readonly #producer: Producer<Uint8Array>
  readonly #consumer: Consumer<Uint8Array>
  readonly #setup: ConnectionSetup
  /** Requests whose handler returned a promise, by id. */
  readonly #running = new Map<number, Context>()
  #room: (() => void) | undefined
  #ended = false

  constructor (client: ClientInfo, duplex: Duplex<Uint8Array, Uint8Array>, setup: ConnectionSetup) {
    this.client = client
    this.#duplex = duplex
    this.#producer = duplex.producer
    this.#consumer = duplex.consumer
    this.#setup = setup
  }

  async run (): Promise<void> {
    const consumer = this.#consumer
    const producer = this.#producer
    const max = this.#setup.maxInFlight
    let error: Error | undefined
    try {
      while (!this.#ended) {
        // Replies of handlers that answer at once go out together, one
        // publish (and at most one wake-up) for the batch.
        producer.cork()
        try {
          let frame: Buffer | undefined
          let n = 0
          while (this.#running.size < max && (frame = consumer.read()) !== undefined) {
            this.#onFrame(frame)
            if ((++n & 63) === 0) consumer.release()
          }
        } finally {
          if (!producer.closed) producer.uncork()
        }
        consumer.release()
        if (this.#running.size >= max) {
          await new Promise<void>((resolve) => { this.#room = resolve })
          continue
        }
        if (!await consumer.readable()) break // the client closed, and every request was read
      }
    } catch (err) {
      const code = (err as ShmChannelError).code
      // Our own close ends the wait with ERR_CHANNEL_CLOSED; the client's
      // close makes read() throw it once everything was read.
      if (!this.#ended && code !== 'ERR_CHANNEL_CLOSED') error = err as Error
    }
    this.#end(error)
  }

  #onFrame (frame: Buffer): void {
    if (frame.length < FRAME_HEADER_SIZE) throw malformed(frame)
    const kind = frame[FRAME_KIND]
    const id = readId(frame)
    if (kind === KIND_CANCEL) {
      this.#running.get(id)?.cancel(new AbortError({ cause: 'the caller cancelled the request' }))
      return
    }
    if (kind !== KIND_REQUEST) throw malformed(frame)
    let value: unknown
    try {
      value = decodeValue(this.#setup.codec, frame)
    } catch (err) {
      this.#write(STATUS_ERROR, 0, id, errorPayload(err))
      return
    }
    const context = new Context(id, this.client)
    const handler = this.#setup.handler // called as a plain function: `this` is not our setup object
    let result: unknown
    try {
      result = handler(value, context)
    } catch (err) {
      this.#write(STATUS_ERROR, 0, id, errorPayload(err))
      return
    }
    if (typeof (result as PromiseLike<unknown> | undefined)?.then === 'function') {
      this.#running.set(id, context)
      ;(result as PromiseLike<unknown>).then(
        (value) => { this.#settled(context, value, undefined, false) },
        (err: unknown) => { this.#settled(context, undefined, err, true) }
      )
      return
    }
    this.#reply(id, result)
  }

  #settled (context: Context, value: unknown, err: unknown, failed: boolean): void {
    // A cancelled request's id may already be reused by its client: never answer it.
    if (this.#running.get(context.id) === context) this.#running.delete(context.id)
    if (!context.cancelled && !this.#ended) {
      if (failed) this.#write(STATUS_ERROR, 0, context.id, errorPayload(err))
      else this.#reply(context.id, value)
    }
    const room = this.#room
    if (room !== undefined && this.#running.size < this.#setup.maxInFlight) {
      this.#room = undefined
      room()
    }
  }

  #reply (id: number, value: unknown): void {
    if (value === undefined) {
      this.#write(STATUS_OK, FLAG_NO_VALUE, id, undefined)
      return
    }
    let payload: string | Uint8Array
    try {
      payload = this.#setup.codec.encode(value)
    } catch (err) {
      this.#write(STATUS_ERROR, 0, id, errorPayload(err))
      return
    }
    this.#write(STATUS_OK, 0, id, payload)
  }

  #write (status: number, flags: number, id: number, payload: string | Uint8Array | undefined): void {
    try {
      const sent = writeFrame(this.#producer, KIND_REPLY, status, flags, id, payload)
      // A reply waiting for room fails only if the connection ends: run() reports that.
      sent?.catch(() => {})
    } catch (err) {
      if (status === STATUS_OK && err instanceof TypeError) {
        this.#write(STATUS_ERROR, 0, id, errorPayload(err)) // the codec returned something unwritable
      }
      // Otherwise the channel is closed: run() sees it and ends the connection.
    }
  }

  /** Ends the connection once: cancels running handlers, closes the channels and removes their names. */
  #end (error: Error | undefined): void {
    if (this.#ended) return
    this.#ended = true
    const gone = new AbortError({ cause: error ?? 'the connection closed' })
    for (const context of this.#running.values()) context.cancel(gone)
    this.#running.clear()
    this.#room?.()
    this.#room = undefined
    this.#duplex.close()
    // The client's channel names are unique to this connection; whichever
    // way it ended (a client that died cannot remove them), remove them.
    try {
      Duplex.unlink(this.client.name)
    } catch {}
    this.#setup.onEnd(this, error)
  }

  /** Ends the connection from the server's side. */
  close (): void {
    this.#end(undefined)
  }
}

// ---------------------------------------------------------------------------
// Client

/**
 * Connects to the server of `name`, waiting up to `timeout` (default 5 s)
 * for it to appear and accept. Rejects with ERR_TIMEOUT, ERR_BUSY (the
 * server is at maxClients), ERR_PEER_DEAD or ERR_CHANNEL_CLOSED (the server
 * died or closed while accepting), an AbortError, or a TypeError when the
 * codecs differ.
 */
export async function connect<Req = unknown, Res = unknown> (name: string, options: ConnectOptions<Req, Res> = {}): Promise<Client<Req, Res>> {
  const { shm, base } = serviceName(name)
  const { codec, channel, peerCheckInterval } = common(options as ConnectionOptions<unknown, unknown>)
  if (options.capacity !== undefined) checkCapacity(options.capacity)
  const timeout = checkTimeout('timeout', options.timeout ?? 5000)
  const signal = options.signal
  const deadline = performance.now() + timeout
  const ticket = await Ticket.claim(shm, deadline, signal, options.allowForeignOwner)
  const connection = connectionName(base, { pid: process.pid, connection: ticket.connection })
  let duplex: Duplex<Uint8Array, Uint8Array> | undefined
  try {
    if (ticket.server.codec !== codec.name) {
      throw invalidValue('codec', `must be the server's: ${shm} uses ${JSON.stringify(ticket.server.codec)}, this client ${JSON.stringify(codec.name)}`)
    }
    const capacity = options.capacity ?? (ticket.server.capacity !== 0 ? ticket.server.capacity : DEFAULT_CAPACITY)
    duplex = Duplex.connect<Uint8Array, Uint8Array>(connection, { ...channel, capacity })
    ticket.ready()
    const answer = await ticket.answer(deadline, signal, peerCheckInterval)
    if (answer === 'refused') {
      throw new ShmChannelError('ERR_BUSY', `the server of ${shm} (pid ${ticket.server.pid}) refused the connection: it has its maxClients, or could not open the channels`)
    }
  } catch (err) {
    // The server never attached (or refused): nobody else will remove the names.
    duplex?.close()
    Duplex.unlink(connection)
    ticket.release()
    throw err
  }
  ticket.release()
  return new Client<Req, Res>(shm, connection, duplex, codec as Codec<Req | Res>, ticket.server)
}

interface Pending {
  resolve: (value: any) => void
  reject: (err: unknown) => void
  timer: NodeJS.Timeout | undefined
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
}

/**
 * One connection to a server. `request()` may be called any number of times
 * without waiting; replies are matched to requests by id, in whatever order
 * the server finishes them. An idle client (nothing pending) does not keep
 * the process alive.
 */
export class Client<Req = unknown, Res = unknown> {
  /** The service name (with its slash). */
  readonly name: string
  /** The server's process id. */
  readonly serverPid: number
  readonly #connection: string
  readonly #duplex: Duplex<Uint8Array, Uint8Array>
  readonly #producer: Producer<Uint8Array>
  readonly #consumer: Consumer<Uint8Array>
  readonly #codec: Codec<Req | Res>
  readonly #server: { pid: number, startTime: number }
  readonly #pending = new Map<number, Pending>()
  #nextId = 0
  #reading = false
  /** Set once the connection broke: every request fails like this. */
  #failure: ShmChannelError | undefined
  #closed = false

  /** Use `connect()`. */
  constructor (name: string, connection: string, duplex: Duplex<Uint8Array, Uint8Array>, codec: Codec<Req | Res>, server: { pid: number, startTime: number }) {
    this.name = name
    this.#connection = connection
    this.#duplex = duplex
    this.#producer = duplex.producer
    this.#consumer = duplex.consumer
    this.#codec = codec
    this.#server = server
    this.serverPid = server.pid
  }

  /** Requests sent and not yet answered, timed out or cancelled. */
  get pending (): number {
    return this.#pending.size
  }

  get closed (): boolean {
    return this.#closed
  }

  /**
   * Sends `value` to the server's handler and resolves with its answer.
   * Rejects with a RemoteError (code ERR_REMOTE) if the handler failed,
   * ERR_TIMEOUT, an AbortError, ERR_PEER_DEAD if the server died,
   * ERR_CHANNEL_CLOSED if it (or this client) closed. A reply that comes
   * after its request timed out or was cancelled is dropped.
   */
  request (value: Req, options: RequestOptions = {}): Promise<Res> {
    if (this.#failure !== undefined) return Promise.reject(new ShmChannelError(this.#failure.code, this.#failure.message))
    if (this.#closed) return Promise.reject(new ShmChannelError('ERR_CHANNEL_CLOSED', 'this client is closed'))
    let timeout: number
    let payload: string | Uint8Array | undefined
    try {
      timeout = checkTimeout('timeout', options.timeout)
      if (value !== undefined) payload = this.#codec.encode(value)
    } catch (err) {
      return Promise.reject(err)
    }
    const signal = options.signal
    if (signal?.aborted === true) return Promise.reject(new AbortError({ cause: signal.reason }))
    const id = this.#newId()
    return new Promise<Res>((resolve, reject) => {
      const pending: Pending = { resolve, reject, timer: undefined, signal, onAbort: undefined }
      this.#pending.set(id, pending)
      if (timeout !== Infinity) {
        pending.timer = setTimeout(() => { this.#giveUp(id, new ShmChannelError('ERR_TIMEOUT', `request timed out after ${timeout} ms`)) }, timeout)
      }
      if (signal !== undefined) {
        pending.onAbort = () => { this.#giveUp(id, new AbortError({ cause: signal.reason })) }
        signal.addEventListener('abort', pending.onAbort, { once: true })
      }
      try {
        const sent = writeFrame(this.#producer, KIND_REQUEST, STATUS_OK, payload === undefined ? FLAG_NO_VALUE : 0, id, payload)
        sent?.catch((err: unknown) => { this.#settle(id)?.reject(this.#translate(err)) })
      } catch (err) {
        this.#settle(id)
        reject(this.#translate(err))
        return
      }
      this.#startReading()
    })
  }

  #newId (): number {
    let id = this.#nextId
    do id = (id + 1) >>> 0
    while (id === 0 || this.#pending.has(id))
    this.#nextId = id
    return id
  }

  /** Removes request `id` from the pending map with its timer and abort listener; returns it if it was there. */
  #settle (id: number): Pending | undefined {
    const pending = this.#pending.get(id)
    if (pending === undefined) return undefined
    this.#pending.delete(id)
    if (pending.timer !== undefined) clearTimeout(pending.timer)
    if (pending.onAbort !== undefined) pending.signal?.removeEventListener('abort', pending.onAbort)
    return pending
  }

  /** Timeout or abort: fail the request now, tell the server (best effort), and stop reading if nothing else waits. */
  #giveUp (id: number, err: Error): void {
    const pending = this.#settle(id)
    if (pending === undefined) return
    pending.reject(err)
    try {
      // Only if it can go at once: a CANCEL is advice, and a full ring (or
      // a request still queued behind it) means it would come too late.
      const view = this.#producer.claim(FRAME_HEADER_SIZE)
      if (view !== null) {
        putHeader(view, KIND_CANCEL, STATUS_OK, 0, id)
        this.#producer.commit()
      }
    } catch {}
  }

  #startReading (): void {
    if (this.#reading) return
    this.#reading = true
    // After the caller's synchronous burst of requests, not inside the first one.
    queueMicrotask(() => { void this.#read() })
  }

  async #read (): Promise<void> {
    const consumer = this.#consumer
    try {
      while (this.#pending.size > 0 && !this.#closed) {
        let frame: Buffer | undefined
        let n = 0
        while ((frame = consumer.read()) !== undefined) {
          this.#onFrame(frame)
          if ((++n & 63) === 0) consumer.release()
        }
        consumer.release()
        if (this.#pending.size === 0) break
        // Waits in slices, so that once nothing is pending (the last request
        // timed out or was cancelled) the loop ends soon and an idle client
        // stops holding the event loop. A slice, not an AbortSignal: merging
        // signals (AbortSignal.any) costs several microseconds per wait.
        let more: boolean
        try {
          more = await consumer.readable({ timeout: IDLE_SLICE })
        } catch (err) {
          if ((err as ShmChannelError).code !== 'ERR_TIMEOUT') throw err
          // A wait that ends by its timeout skips the channel's own peer
          // check (lib/wait.ts checks the deadline first): check here.
          if (!isAlive(this.#server.pid, this.#server.startTime)) throw new ShmChannelError('ERR_PEER_DEAD', 'the server died')
          continue
        }
        if (!more) throw new ShmChannelError('ERR_CHANNEL_CLOSED', `the server of ${this.name} closed the connection`)
      }
    } catch (err) {
      if (!this.#closed) this.#fail(this.#translate(err))
    } finally {
      this.#reading = false
    }
    // A request may have come while the loop was stopping.
    if (this.#pending.size > 0 && this.#failure === undefined && !this.#closed) this.#startReading()
  }

  #onFrame (frame: Buffer): void {
    if (frame.length < FRAME_HEADER_SIZE || frame[FRAME_KIND] !== KIND_REPLY) throw malformed(frame)
    const pending = this.#settle(readId(frame))
    if (pending === undefined) return // the request timed out or was cancelled: a late reply is dropped
    if (frame[FRAME_STATUS] !== STATUS_OK) {
      pending.reject(remoteError(frame))
      return
    }
    let value: unknown
    try {
      value = decodeValue(this.#codec, frame)
    } catch (err) {
      pending.reject(err)
      return
    }
    pending.resolve(value)
  }

  /** Channel errors in the words of a connection. */
  #translate (err: unknown): unknown {
    const code = (err as ShmChannelError).code
    if (this.#closed) return new ShmChannelError('ERR_CHANNEL_CLOSED', 'this client is closed')
    if (code === 'ERR_PEER_DEAD') return new ShmChannelError('ERR_PEER_DEAD', `the server of ${this.name} (pid ${this.#server.pid}) died`)
    if (code === 'ERR_CHANNEL_CLOSED') return new ShmChannelError('ERR_CHANNEL_CLOSED', `the server of ${this.name} closed the connection`)
    return err
  }

  /** The connection is broken: fail everything pending, and every later request, with `err`. */
  #fail (err: unknown): void {
    const failure = err instanceof ShmChannelError ? err : new ShmChannelError('ERR_DECODE', (err as Error).message, { cause: err })
    this.#failure = failure
    for (const id of [...this.#pending.keys()]) this.#settle(id)?.reject(failure)
    this.#duplex.close()
    if (failure.code === 'ERR_PEER_DEAD') this.#cleanUpAfterServer()
  }

  /**
   * Closes the connection. Pending requests fail with ERR_CHANNEL_CLOSED;
   * the server sees the client leave. Idempotent.
   */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    const closed = new ShmChannelError('ERR_CHANNEL_CLOSED', 'this client is closed')
    for (const id of [...this.#pending.keys()]) this.#settle(id)?.reject(closed)
    this.#duplex.close()
    if (!isAlive(this.#server.pid, this.#server.startTime)) this.#cleanUpAfterServer()
  }

  /** A dead server removes nothing: the last ones out clean up after it. */
  #cleanUpAfterServer (): void {
    try {
      Duplex.unlink(this.#connection)
      reclaimListener(this.name, this.#server)
    } catch {}
  }
}
