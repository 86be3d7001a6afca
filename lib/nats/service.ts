/**
 * Services across hosts: `serve(name, handler, { nats })` is the local
 * server of lib/rpc/server.ts plus a NATS subscription in a queue group on
 * `shm-channel.svc.<name>` that hands each request to the same handler;
 * `connect(name, { nats })` is a local client when the service runs on this
 * machine and a NATS requester otherwise. Both sides keep the codec of the
 * local API. What differs over NATS is in docs/nats.md:
 *
 * - a handler error reaches the caller as RemoteError (ERR_REMOTE, with
 *   remoteName and remoteCode), as locally;
 * - a timeout is ERR_TIMEOUT, a cancelled request an AbortError, as
 *   locally; but the cancellation does not reach the handler on the other
 *   host (its context.signal aborts only when that server closes);
 * - no server answering (none running, or all dead) is ERR_PEER_DEAD at
 *   once (NATS "no responders"), where a local client sees its server die;
 * - the client holds no connection to a server: a request after a server
 *   restart (or a NATS reconnect) simply reaches the server that answers.
 */
import fs from 'node:fs'
import path from 'node:path'

import type { NatsConnection, Msg, Subscription } from '@nats-io/transport-node'
import { headers as natsHeaders } from '@nats-io/transport-node'

import { resolveCodec, type Codec } from '../codecs'
import { AbortError, RemoteError, ShmChannelError, invalidType } from '../errors'
import { checkTimeout } from '../options'
import { checkName } from '../platform/region'
import { connect as connectLocal, type Client } from '../rpc/client'
import type { ConnectOptions, RequestOptions, ServeOptions } from '../rpc/options'
import { serve as serveLocal, type Handler, type Server } from '../rpc/server'

/** Header of a reply that carries a handler's error instead of a value (JSON: message, name, code). */
export const ERROR_HEADER = 'Shm-Channel-Error'
/** NATS's own status header: 503 means no responders. */
const NO_RESPONDERS = 503

export interface NatsServeOptions<Req = unknown, Res = unknown> extends ServeOptions<Req, Res> {
  /** A connection from `connect()` of `@nats-io/transport-node`. */
  nats: NatsConnection
  /** Subject the service answers on. Default `shm-channel.svc.<name>`. */
  subject?: string
  /** Queue group: each request goes to one server of the group. Default 'shm-channel'. */
  queue?: string
}

export interface NatsConnectOptions<Req = unknown, Res = unknown> extends ConnectOptions<Req, Res> {
  nats: NatsConnection
  /** Subject of the service. Default `shm-channel.svc.<name>`. */
  subject?: string
  /** 'prefer' (default): a local client when the service listens on this machine, NATS otherwise; 'never': always NATS. */
  local?: 'prefer' | 'never'
}

/** What `connect` returns: a local Client or a NATS one, the same two calls. */
export interface ServiceClient<Req = unknown, Res = unknown> {
  readonly name: string
  /** 'shm' for a local client, 'nats' otherwise. */
  readonly transport: 'shm' | 'nats'
  request: (value: Req, options?: RequestOptions) => Promise<Res>
  close: () => void
}

export function subjectOf (name: string, subject: string | undefined): string {
  return subject ?? `shm-channel.svc.${checkName(name).slice(1)}`
}

/** A service answering both on this machine (shared memory) and over NATS. */
export class NatsService<Req = unknown, Res = unknown> {
  /** The shared memory server (lib/rpc). */
  readonly local: Server<Req, Res>
  readonly subject: string
  readonly #subscription: Subscription
  readonly #closer = new AbortController()
  #nextId = 0

  constructor (name: string, handler: Handler<Req, Res>, options: NatsServeOptions<Req, Res>) {
    const { nats, subject, queue, ...local } = options
    this.subject = subjectOf(name, subject)
    const codec = resolveCodec(local.codec) as Codec<Req | Res>
    this.local = serveLocal(name, handler, local)
    const client = { pid: 0, connection: 0, name: 'nats' }
    this.#subscription = nats.subscribe(this.subject, {
      queue: queue ?? 'shm-channel',
      callback: (err, msg) => {
        if (err !== null) return
        this.#answer(msg, handler, codec, client)
      }
    })
  }

  /** Answers one request: at once for a handler that returns a value, once settled for one that returns a promise. */
  #answer (msg: Msg, handler: Handler<Req, Res>, codec: Codec<Req | Res>, client: { pid: number, connection: number, name: string }): void {
    if (msg.reply === undefined || msg.reply === '') return
    let result: Res | PromiseLike<Res>
    try {
      const request = (msg.data.length === 0 ? undefined : codec.decode(Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.length))) as Req
      result = handler(request, { id: ++this.#nextId, client, signal: this.#closer.signal })
    } catch (err) {
      fail(msg, err)
      return
    }
    if (typeof (result as PromiseLike<Res> | undefined)?.then === 'function') {
      (result as PromiseLike<Res>).then((value) => { respond(msg, value, codec) }, (err) => { fail(msg, err) })
    } else {
      respond(msg, result as Res, codec)
    }
  }

  /** Stops answering, locally and over NATS; running handlers' context.signal aborts. */
  close (): void {
    this.#closer.abort()
    this.#subscription.unsubscribe()
    this.local.close()
  }
}

function respond<T> (msg: Msg, value: T, codec: Codec<T>): void {
  let payload: Uint8Array | string
  try {
    payload = value === undefined ? new Uint8Array(0) : codec.encode(value)
  } catch (err) {
    fail(msg, err)
    return
  }
  msg.respond(typeof payload === 'string' ? Buffer.from(payload) : payload)
}

/** A handler's error as the reply: no body, the error in ERROR_HEADER. */
function fail (msg: Msg, err: unknown): void {
  const e = err as { message?: unknown, name?: unknown, code?: unknown }
  const h = natsHeaders()
  h.set(ERROR_HEADER, JSON.stringify({
    message: String(e?.message ?? err),
    name: typeof e?.name === 'string' ? e.name : 'Error',
    code: typeof e?.code === 'string' || typeof e?.code === 'number' ? e.code : undefined
  }))
  msg.respond(new Uint8Array(0), { headers: h })
}

/** Serves `name` on this machine and over NATS (see the top of this file). */
export function serve<Req = unknown, Res = unknown> (name: string, handler: Handler<Req, Res>, options: NatsServeOptions<Req, Res>): NatsService<Req, Res> {
  if (typeof options?.nats?.publish !== 'function') throw invalidType('nats', 'a connection from @nats-io/transport-node', options?.nats)
  return new NatsService(name, handler, options)
}

/** A client of `name`: local when the service listens on this machine (unless `local: 'never'`), over NATS otherwise. */
export async function connect<Req = unknown, Res = unknown> (name: string, options: NatsConnectOptions<Req, Res>): Promise<ServiceClient<Req, Res>> {
  if (typeof options?.nats?.publish !== 'function') throw invalidType('nats', 'a connection from @nats-io/transport-node', options?.nats)
  const { nats, subject, local, ...rest } = options
  const shm = checkName(name)
  if (local !== 'never' && fs.existsSync(path.join('/dev/shm', shm.slice(1)))) {
    try {
      const client: Client<Req, Res> = await connectLocal<Req, Res>(name, rest as ConnectOptions<Req, Res>)
      return { name, transport: 'shm', request: client.request.bind(client), close: client.close.bind(client) }
    } catch {
      // A listener left by a dead server, or one at maxClients: NATS reaches another.
    }
  }
  return new NatsClient<Req, Res>(name, nats, subjectOf(name, subject), resolveCodec(rest.codec) as Codec<Req | Res>)
}

class NatsClient<Req, Res> implements ServiceClient<Req, Res> {
  readonly name: string
  readonly transport = 'nats'
  readonly #nats: NatsConnection
  readonly #subject: string
  readonly #codec: Codec<Req | Res>
  #closed = false

  constructor (name: string, nats: NatsConnection, subject: string, codec: Codec<Req | Res>) {
    this.name = name
    this.#nats = nats
    this.#subject = subject
    this.#codec = codec
  }

  async request (value: Req, options: RequestOptions = {}): Promise<Res> {
    if (this.#closed) throw new ShmChannelError('ERR_CHANNEL_CLOSED', 'this client is closed')
    const timeout = checkTimeout('timeout', options.timeout)
    const signal = options.signal
    if (signal?.aborted === true) throw new AbortError({ cause: signal.reason })
    const encoded = value === undefined ? new Uint8Array(0) : this.#codec.encode(value)
    const payload = typeof encoded === 'string' ? Buffer.from(encoded) : encoded
    // NATS needs a timer; "no limit" is the longest one a timer takes.
    const reply = this.#nats.request(this.#subject, payload, { timeout: timeout === Infinity ? 0x7fffffff : timeout })
    let msg: Msg
    try {
      msg = signal === undefined ? await reply : await untilAborted(reply, signal)
    } catch (err) {
      if (err instanceof AbortError) { reply.catch(() => {}); throw err }
      throw translate(err, this.name, timeout)
    }
    const failure = msg.headers?.get(ERROR_HEADER)
    if (failure !== undefined && failure !== '') {
      const remote = JSON.parse(failure) as { message: string, name?: string, code?: string | number }
      throw new RemoteError(remote.message, remote)
    }
    if (msg.headers?.code === NO_RESPONDERS) throw noServer(this.name)
    return (msg.data.length === 0 ? undefined : this.#codec.decode(Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.length))) as Res
  }

  close (): void {
    this.#closed = true
  }
}

/** `reply`, or an AbortError as soon as `signal` aborts (the request itself runs on to its timeout). */
async function untilAborted (reply: Promise<Msg>, signal: AbortSignal): Promise<Msg> {
  let onAbort: (() => void) | undefined
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => { reject(new AbortError({ cause: signal.reason })) }
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([reply, aborted])
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
  }
}

function noServer (name: string): ShmChannelError {
  return new ShmChannelError('ERR_PEER_DEAD', `no server of ${name} answers over NATS`)
}

/** NATS's request errors as this library's codes. */
function translate (err: unknown, name: string, timeout: number): Error {
  const e = err as { name?: string, message?: string, code?: unknown, cause?: { name?: string } }
  const text = `${String(e?.name)} ${String(e?.message)} ${String(e?.cause?.name)}`
  if (/NoResponders|no responders|503/i.test(text)) return noServer(name)
  if (/Timeout|timed out/i.test(text)) return new ShmChannelError('ERR_TIMEOUT', `request timed out after ${timeout} ms`)
  return err as Error
}
