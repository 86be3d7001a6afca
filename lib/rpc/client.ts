/**
 * Request/response between processes: the client. `await connect(name)`
 * claims a slot of the server's listener (lib/rpc/ticket.ts), makes its
 * duplex and waits to be accepted; `await client.request(value)` sends a
 * request frame and resolves with the reply.
 */
import { EventEmitter } from 'node:events'

import type { Codec } from '../codecs'
import { AbortError, ShmChannelError, invalidValue } from '../errors'
import { checkTimeout } from '../options'
import { isAlive } from '../platform/liveness'
import { checkCapacity } from '../channel/options'
import type { Consumer } from '../channel/consumer'
import type { Producer } from '../channel/producer'
import { Duplex, type DuplexOptions } from './duplex'
import {
  FLAG_NO_VALUE, FRAME_HEADER_SIZE, FRAME_KIND, FRAME_STATUS, KIND_CANCEL, KIND_REPLY, KIND_REQUEST, STATUS_OK,
  decodeValue, malformed, putHeader, readId, remoteError, writeFrame
} from './frames'
import { W_CLIENTS_PARKED, W_REPLY_BELL } from './listener-layout'
import { Ticket, reclaimListener, type Bell } from './ticket'
import { waitAsync, type WaitSpec, type WaitStrategy } from '../segment/wait'
import { DEFAULT_RPC_CAPACITY, common, connectionName, serviceName, type ConnectionOptions, type ConnectOptions, type RequestOptions } from './options'

export type { ConnectOptions, RequestOptions } from './options'

/** Longest a reply waiter (or a client following its channel) waits before looking whether anything is still pending, in milliseconds. */
const IDLE_SLICE = 200

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
  const settings: Settings = { shm, base, codec, channel, peerCheckInterval, timeout, capacity: options.capacity, allowForeignOwner: options.allowForeignOwner, reconnect: options.reconnect === true }
  const link = await openLink(settings, options.signal)
  return new Client<Req, Res>(settings, link)
}

/** What connect() was asked, kept by the client to connect again. */
interface Settings {
  shm: string
  base: string
  codec: Codec<unknown>
  channel: DuplexOptions<Uint8Array>
  peerCheckInterval: number
  timeout: number
  capacity: number | undefined
  allowForeignOwner: boolean | undefined
  reconnect: boolean
}

/** One connection: its two channels, and the server process at their other end. */
interface Link {
  connection: string
  duplex: Duplex<Uint8Array, Uint8Array>
  producer: Producer<Uint8Array>
  consumer: Consumer<Uint8Array>
  /** Tells the server a request (or the close) is waiting: the server reads no connection that did not ring. */
  bell: Bell
  /** Sends the channel has not published yet (waiting for room, or going in fragments): the connection streams while > 0. */
  slowSends: number
  server: { pid: number, startTime: number }
  /** The reply waiter this connection's replies come through: one per process, server and name. */
  replies: string
}

/** Claims a slot of the server's listener, makes the connection's duplex and waits to be accepted. */
async function openLink (settings: Settings, signal: AbortSignal | undefined): Promise<Link> {
  const { shm, base, codec, channel } = settings
  const deadline = performance.now() + settings.timeout
  const ticket = await Ticket.claim(shm, deadline, signal, settings.allowForeignOwner)
  const connection = connectionName(base, { pid: process.pid, connection: ticket.connection })
  let duplex: Duplex<Uint8Array, Uint8Array> | undefined
  try {
    if (ticket.server.codec !== codec.name) {
      throw invalidValue('codec', `must be the server's: ${shm} uses ${JSON.stringify(ticket.server.codec)}, this client ${JSON.stringify(codec.name)}`)
    }
    const capacity = settings.capacity ?? (ticket.server.capacity !== 0 ? ticket.server.capacity : DEFAULT_RPC_CAPACITY)
    duplex = Duplex.connect<Uint8Array, Uint8Array>(connection, { ...channel, capacity })
    ticket.ready()
    const answer = await ticket.answer(deadline, signal, settings.peerCheckInterval)
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
  const bell = ticket.release() as Bell // accepted: the ticket hands over the listener
  const replies = `${shm}:${ticket.server.pid}:${ticket.server.startTime}`
  return { connection, duplex, producer: duplex.producer, consumer: duplex.consumer, bell, slowSends: 0, server: ticket.server, replies }
}

/** `promise`, or ERR_TIMEOUT after `timeout` ms, or an AbortError when `signal` aborts, whichever comes first. */
async function bounded<T> (promise: Promise<T>, timeout: number, signal: AbortSignal | undefined): Promise<T> {
  if (timeout === Infinity && signal === undefined) return await promise
  return await new Promise<T>((resolve, reject) => {
    const onAbort = (): void => { done(); reject(new AbortError({ cause: signal?.reason })) }
    const timer = timeout === Infinity
      ? undefined
      : setTimeout(() => { done(); reject(new ShmChannelError('ERR_TIMEOUT', `request timed out after ${timeout} ms`)) }, timeout)
    const done = (): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    promise.then((value) => { done(); resolve(value) }, (err: unknown) => { done(); reject(err) })
  })
}

/**
 * One reply waiter per process and server: every client of this process
 * with requests pending on that server waits on the listener's reply bell
 * through it, instead of each on its own channel (see the top of
 * lib/rpc/listener-layout.ts). The server wakes it once per pass of
 * replies; it then reads every member's channel. It lives while a member
 * has requests pending, and maps the listener through one member's bell.
 */
class Replies {
  static readonly #all = new Map<string, Replies>()
  readonly #key: string
  readonly #members = new Set<Client<any, any>>()
  readonly #bell: Bell
  readonly #spec: WaitSpec
  /** The members' wait strategy; 'adaptive' spins only for a lone member (see #run). */
  readonly #strategy: WaitStrategy

  private constructor (key: string, link: Link, settings: Settings) {
    this.#key = key
    this.#bell = link.bell
    const { server } = link
    this.#strategy = settings.channel.wait ?? 'adaptive'
    this.#spec = {
      header: link.bell.hold(),
      parkedFlag: W_CLIENTS_PARKED,
      waitWord: W_REPLY_BELL,
      strategy: this.#strategy,
      spinMicros: settings.channel.spinMicros ?? 50,
      peerCheckInterval: settings.peerCheckInterval,
      ready: this.#poll,
      checkPeer: () => {
        if (!isAlive(server.pid, server.startTime)) throw new ShmChannelError('ERR_PEER_DEAD', 'the server died')
      },
      // Client processes share the count: one's unpark must not hide another's park.
      parkedCounts: true
    }
  }

  /** Makes `client` (with requests pending on `link`) a member; the first member of a process and server starts the waiter. */
  static join (client: Client<any, any>, link: Link, settings: Settings): void {
    const key = link.replies
    let replies = Replies.#all.get(key)
    if (replies === undefined) {
      replies = new Replies(key, link, settings)
      Replies.#all.set(key, replies)
      const started = replies
      // After the caller's synchronous burst of requests, not inside the first one.
      queueMicrotask(() => { void started.#run() })
    }
    replies.#members.add(client)
  }

  /** Reads every member's replies; drops members that wait for none. True when the wait is over (something read, or no member left). */
  readonly #poll = (): boolean => {
    let read = 0
    for (const client of this.#members) {
      const n = Client.readReplies(client, this.#key)
      if (n < 0) this.#members.delete(client)
      else read += n
    }
    return read > 0 || this.#members.size === 0
  }

  async #run (): Promise<void> {
    try {
      for (;;) {
        this.#poll()
        if (this.#members.size === 0) return
        // Spinning holds this process's event loop and a core: worth it for one
        // request's round trip, not while several clients wait, whose replies
        // come in passes of the server and whose process has other work.
        this.#spec.strategy = this.#strategy === 'adaptive' && this.#members.size > 1 ? 'block' : this.#strategy
        try {
          // In slices, so that once nothing is pending (the last request timed
          // out or was cancelled) the waiter ends soon and an idle process is
          // not held. A slice, not an AbortSignal: merging signals costs several
          // microseconds per wait.
          await waitAsync(this.#spec, IDLE_SLICE)
        } catch (err) {
          if ((err as ShmChannelError).code !== 'ERR_TIMEOUT') throw err
          this.#spec.checkPeer() // a wait that ends by its timeout skips the peer check
        }
      }
    } catch (err) {
      for (const client of this.#members) Client.repliesFailed(client, this.#key, err)
      this.#members.clear()
    } finally {
      if (Replies.#all.get(this.#key) === this) Replies.#all.delete(this.#key)
      this.#bell.letGo()
    }
  }
}

/** A client under watch: held through a WeakRef, so a client dropped without close() can still be collected. */
type Watched = WeakRef<Client<any, any>>

/**
 * One timer per process and per peerCheckInterval for every client: an idle
 * client looks at its server (late replies, a close, a death) without a
 * timer of its own, and a server's liveness is checked once per round
 * however many of its clients this process holds. The timers are unref()ed.
 */
class Watchdogs {
  readonly #rounds = new Map<number, { timer: NodeJS.Timeout, clients: Set<Watched> }>()
  readonly #intervals = new WeakMap<Watched, number>()
  readonly #announcing = new Set<string>()

  add (client: Client<any, any>, interval: number): Watched {
    const watched = new WeakRef(client)
    let round = this.#rounds.get(interval)
    if (round === undefined) {
      const clients = new Set<Watched>()
      const timer = setInterval(() => { this.#round(clients) }, interval).unref()
      round = { timer, clients }
      this.#rounds.set(interval, round)
    }
    round.clients.add(watched)
    this.#intervals.set(watched, interval)
    return watched
  }

  remove (watched: Watched | undefined): void {
    if (watched === undefined) return
    const interval = this.#intervals.get(watched)
    if (interval === undefined) return
    this.#intervals.delete(watched)
    const round = this.#rounds.get(interval)
    round?.clients.delete(watched)
    if (round !== undefined && round.clients.size === 0) {
      clearInterval(round.timer)
      this.#rounds.delete(interval)
    }
  }

  /** A client found its server dead: every other client of this process on that server fails now, not at its own next look. */
  serverDied (server: { pid: number, startTime: number }): void {
    const key = `${server.pid}:${server.startTime}`
    if (this.#announcing.has(key)) return // the clients failing now call this again: one pass does
    this.#announcing.add(key)
    try {
      for (const { clients } of [...this.#rounds.values()]) {
        for (const watched of [...clients]) {
          const client = watched.deref()
          if (client !== undefined) Client.serverDied(client, server)
        }
      }
    } finally {
      this.#announcing.delete(key)
    }
  }

  #round (clients: Set<Watched>): void {
    const verdicts = new Map<string, boolean>()
    for (const watched of [...clients]) {
      const client = watched.deref()
      if (client === undefined) this.remove(watched)
      else Client.watch(client, verdicts)
    }
  }
}

const watchdogs = new Watchdogs()

export interface ClientEvents {
  /**
   * The client ended, once: `error` is undefined after close(), else why
   * its connection broke: ERR_PEER_DEAD (the server died), ERR_CHANNEL_CLOSED
   * (it closed the connection), or a protocol error. Emitted whether or not
   * a request was in flight. With `reconnect`, a broken connection emits
   * 'disconnect' instead, and 'close' comes only from close().
   */
  close: [error: Error | undefined]
  /**
   * With `reconnect`: the connection broke (as for 'close'); the next
   * request connects again.
   */
  disconnect: [error: Error]
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
 * the process alive; it still looks at its server every peerCheckInterval
 * and emits 'close' when the server dies or closes the connection.
 */
export class Client<Req = unknown, Res = unknown> extends EventEmitter<ClientEvents> {
  /** The service name (with its slash). */
  readonly name: string
  readonly #settings: Settings
  readonly #codec: Codec<Req | Res>
  /** The current connection; replaced when the client connects again (`reconnect`). */
  #link: Link
  readonly #pending = new Map<number, Pending>()
  #nextId = 0
  /** The connection whose replies its process's reply waiter reads for this client (requests pending), if any. */
  #reading: Link | undefined
  /** True while following the channel itself, for a reply the server publishes without a ring. */
  #following = false
  /** Set once the connection broke: every request fails like this, or (`reconnect`) connects again. */
  #failure: ShmChannelError | undefined
  /** The connecting again that requests wait for, while it lasts. */
  #reconnecting: Promise<void> | undefined
  #closed = false
  /** Looks at the server while no read loop runs (lib/rpc/client.ts, Watchdogs); keeps no process alive. */
  #watchdog: Watched | undefined

  /** Use `connect()`. */
  constructor (settings: Settings, link: Link) {
    super()
    this.name = settings.shm
    this.#settings = settings
    this.#codec = settings.codec as Codec<Req | Res>
    this.#link = link
    this.#startWatchdog()
  }

  /** The process id of the server at the other end of the current connection. */
  get serverPid (): number {
    return this.#link.server.pid
  }

  #startWatchdog (): void {
    this.#watchdog = watchdogs.add(this, this.#settings.peerCheckInterval)
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
   * after its request timed out or was cancelled is dropped. With
   * `reconnect`, a request made after the connection broke first connects
   * again (within its own timeout and signal too); if no server accepts in
   * time, it rejects with connect()'s error and the next request tries again.
   */
  request (value: Req, options: RequestOptions = {}): Promise<Res> {
    if (this.#closed) return Promise.reject(new ShmChannelError('ERR_CHANNEL_CLOSED', 'this client is closed'))
    if (this.#failure !== undefined) {
      if (this.#settings.reconnect) return this.#requestAfterReconnect(value, options)
      return Promise.reject(new ShmChannelError(this.#failure.code, this.#failure.message))
    }
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
        const link = this.#link
        const sent = writeFrame(link.producer, KIND_REQUEST, STATUS_OK, payload === undefined ? FLAG_NO_VALUE : 0, id, payload)
        if (sent === undefined) link.bell.ring()
        else this.#sendSlowly(link, sent, id)
      } catch (err) {
        this.#settle(id)
        reject(this.#translate(err))
        return
      }
      this.#startReading()
    })
  }

  /**
   * A request the channel publishes later, when there is room: the
   * connection streams (the server follows its channel) until the last such
   * send is out, then rings as for any request.
   */
  #sendSlowly (link: Link, sent: Promise<void>, id: number): void {
    if (link.slowSends++ === 0) link.bell.streaming(true)
    link.bell.ring()
    sent.then(undefined, (err: unknown) => { this.#settle(id)?.reject(this.#translate(err)) }).finally(() => {
      if (--link.slowSends === 0) link.bell.streaming(false)
      link.bell.ring()
    })
  }

  async #requestAfterReconnect (value: Req, options: RequestOptions): Promise<Res> {
    const timeout = checkTimeout('timeout', options.timeout)
    const started = performance.now()
    this.#reconnecting ??= this.#reconnect().finally(() => { this.#reconnecting = undefined })
    await bounded(this.#reconnecting, timeout, options.signal)
    const left = timeout === Infinity ? Infinity : Math.max(1, timeout - (performance.now() - started))
    return await this.request(value, { ...options, timeout: left })
  }

  /** Connects again, to whatever server now serves the name; the broken connection was closed by #fail. */
  async #reconnect (): Promise<void> {
    const link = await openLink(this.#settings, undefined)
    if (this.#closed) {
      hangUp(link)
      throw new ShmChannelError('ERR_CHANNEL_CLOSED', 'this client is closed')
    }
    this.#link = link
    this.#failure = undefined
    this.#startWatchdog()
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
      const producer = this.#link.producer
      const view = producer.claim(FRAME_HEADER_SIZE)
      if (view !== null) {
        putHeader(view, KIND_CANCEL, STATUS_OK, 0, id)
        producer.commit()
        this.#link.bell.ring()
      }
    } catch {}
  }

  #startReading (): void {
    if (this.#reading === this.#link) return
    this.#reading = this.#link
    Replies.join(this, this.#link, this.#settings)
  }

  /** For Replies: reads the replies waiting now and returns how many frames; -1 once this client waits for none. */
  static readReplies (client: Client<any, any>, replies: string): number {
    // A client that connected again reads through another waiter (or this one again, as a new member).
    if (client.#reading?.replies !== replies) return -1
    return client.#readReplies()
  }

  /** For Replies: the reply waiter failed (the server died). */
  static repliesFailed (client: Client<any, any>, replies: string, err: unknown): void {
    if (client.#reading?.replies !== replies) return
    client.#reading = undefined
    if (!client.#closed && client.#failure === undefined) client.#fail(client.#translate(err))
  }

  #readReplies (): number {
    if (this.#pending.size === 0 || this.#closed || this.#failure !== undefined || this.#reading !== this.#link) {
      this.#reading = undefined
      return -1
    }
    const { consumer, bell } = this.#link
    let n = 0
    try {
      let frame: Buffer | undefined
      while ((frame = consumer.read()) !== undefined) {
        this.#onFrame(frame)
        if ((++n & 63) === 0) consumer.release()
      }
      consumer.release()
      if (this.#pending.size > 0 && !this.#following && bell.answering()) void this.#follow()
    } catch (err) {
      if (!this.#closed) this.#fail(this.#translate(err))
    }
    return n
  }

  /**
   * While the server answers this connection without ringing (a reply that
   * waits for room, or goes in fragments), wait on the channel itself until
   * its answering bit is clear; the server rings once more after clearing it.
   */
  async #follow (): Promise<void> {
    this.#following = true
    const { consumer, bell } = this.#link
    try {
      while (this.#pending.size > 0 && !this.#closed && this.#failure === undefined && bell.answering()) {
        try {
          await consumer.readable({ timeout: IDLE_SLICE })
        } catch (err) {
          if ((err as ShmChannelError).code !== 'ERR_TIMEOUT') throw err
        }
        if (this.#closed || this.#failure !== undefined) break
        let frame: Buffer | undefined
        while ((frame = consumer.read()) !== undefined) this.#onFrame(frame)
        consumer.release()
      }
    } catch (err) {
      if (!this.#closed && this.#failure === undefined) this.#fail(this.#translate(err))
    } finally {
      this.#following = false
    }
  }

  /**
   * Between requests: drops late replies, and notices a server that closed
   * the connection or died. While requests are pending the read loop does both.
   */
  #watch (verdicts: Map<string, boolean>): void {
    if (this.#reading !== undefined || this.#failure !== undefined || this.#closed) return
    const { consumer, server } = this.#link
    try {
      let frame: Buffer | undefined
      while ((frame = consumer.read()) !== undefined) this.#onFrame(frame)
      consumer.release()
      // One look at /proc per server per round, however many of its clients this process holds.
      const key = `${server.pid}:${server.startTime}`
      let alive = verdicts.get(key)
      if (alive === undefined) {
        alive = isAlive(server.pid, server.startTime)
        verdicts.set(key, alive)
      }
      if (!alive) throw new ShmChannelError('ERR_PEER_DEAD', 'the server died')
    } catch (err) {
      this.#fail(this.#translate(err))
    }
  }

  /** For Watchdogs only. */
  static watch (client: Client<any, any>, verdicts: Map<string, boolean>): void {
    client.#watch(verdicts)
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
    if (code === 'ERR_PEER_DEAD') return new ShmChannelError('ERR_PEER_DEAD', `the server of ${this.name} (pid ${this.#link.server.pid}) died`)
    if (code === 'ERR_CHANNEL_CLOSED') return new ShmChannelError('ERR_CHANNEL_CLOSED', `the server of ${this.name} closed the connection`)
    return err
  }

  /** The connection is broken: fail everything pending, and every later request, with `err`. */
  #fail (err: unknown): void {
    const failure = err instanceof ShmChannelError ? err : new ShmChannelError('ERR_DECODE', (err as Error).message, { cause: err })
    this.#failure = failure
    for (const id of [...this.#pending.keys()]) this.#settle(id)?.reject(failure)
    watchdogs.remove(this.#watchdog)
    const link = this.#link
    if (failure.code === 'ERR_PEER_DEAD') {
      // The dead server's listener goes now, before a reconnect looks for
      // the name. Closing a connection costs a few unmaps and unlinks, a
      // millisecond or more on a busy machine: a process holding a thousand
      // clients of the dead server would hold their callers' rejections back
      // for a second. The rejections run first; the channels close at the
      // next turn of the event loop (a reconnect meanwhile makes a new link).
      try {
        reclaimListener(this.name, link.server)
      } catch {}
      setImmediate(() => {
        hangUp(link)
        try {
          Duplex.unlink(link.connection)
        } catch {}
      })
    } else {
      hangUp(link)
    }
    if (this.#settings.reconnect) this.emit('disconnect', failure)
    else this.emit('close', failure)
    // The other clients of this process on the same server need not each find out.
    if (failure.code === 'ERR_PEER_DEAD') watchdogs.serverDied(this.#link.server)
  }

  /** For Watchdogs only: fails `client` if its connection is to `server`, which died. */
  static serverDied (client: Client<any, any>, server: { pid: number, startTime: number }): void {
    const ours = client.#link.server
    if (client.#failure !== undefined || client.#closed || ours.pid !== server.pid || ours.startTime !== server.startTime) return
    client.#fail(client.#translate(new ShmChannelError('ERR_PEER_DEAD', 'the server died')))
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
    watchdogs.remove(this.#watchdog)
    // Without reconnect a broken connection has already emitted 'close'.
    const closeEmitted = this.#failure !== undefined && !this.#settings.reconnect
    const link = this.#link
    hangUp(link)
    if (!isAlive(link.server.pid, link.server.startTime)) cleanUpAfterServer(this.name, link)
    if (!closeEmitted) this.emit('close', undefined)
  }

  /** `using client = await connect(...)`: close() at the end of the scope. */
  [Symbol.dispose] (): void {
    this.close()
  }
}

/** Closes a connection's channels and rings, so the server reads the close; then lets go of the listener. Idempotent. */
function hangUp (link: Link): void {
  const { duplex, bell } = link
  duplex.close()
  bell.ring()
  bell.close()
}

/** A dead server removes nothing: the last ones out clean up after it. */
function cleanUpAfterServer (name: string, link: Link): void {
  try {
    Duplex.unlink(link.connection)
    reclaimListener(name, link.server)
  } catch {}
}
