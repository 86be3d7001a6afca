/**
 * Request/response between processes, for a sidecar serving its neighbours:
 * the serving side. `serve(name, handler)` makes a listener under the name
 * (lib/rpc/listener.ts) and gives each admitted client its own duplex (two
 * channels, lib/rpc/duplex.ts); requests and replies travel as frames
 * (lib/rpc/frames.ts). The server waits on one word for all its clients, the
 * listener's doorbell: a client sets its visit bit after each request and
 * rings only a parked server (lib/rpc/listener-layout.ts). An idle client
 * costs the server no thread, no timer and no CPU; one liveness sweep a
 * second notices clients that died. docs/rpc.md gives the costs measured.
 */
import { EventEmitter } from 'node:events'
import { setTimeout as delay } from 'node:timers/promises'

import type { Codec } from '../codecs'
import { AbortError, ShmChannelError, invalidType } from '../errors'
import { checkInteger, checkSignal, checkTimeout } from '../options'
import { isAlive } from '../platform/liveness'
import { checkCapacity } from '../channel/options'
import type { WaitSettings } from '../segment/wait'
import type { Consumer } from '../channel/consumer'
import type { Producer } from '../channel/producer'
import { Duplex, type DuplexOptions } from './duplex'
import {
  FLAG_NO_VALUE, FRAME_HEADER_SIZE, FRAME_KIND, KIND_CANCEL, KIND_REPLY, KIND_REQUEST, STATUS_ERROR, STATUS_OK,
  decodeValue, errorPayload, isAbort, malformed, readId, writeFrame
} from './frames'
import { Listener } from './listener'
import { MAX_SLOTS, MAX_TABLE_BITS, SLOT_ACCEPTED, SLOT_REFUSED, type SlotOwner } from './listener-layout'
import { DEFAULT_RPC_CAPACITY, DEFAULT_MAX_CLIENTS, common, connectionName, serviceName, type ConnectionOptions, type ServeOptions } from './options'

export type { ServeOptions } from './options'

/** How often the server looks for clients that died (connected, or while connecting). */
const SWEEP_INTERVAL = 1000
/** How often an unref()ed server looks at its doorbell, in milliseconds. */
const UNREFED_POLL = 20
/** Longest the server's loop runs passes without letting the event loop turn, in milliseconds. */
const LOOP_TURN = 1

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

/** `serve(name, handler)`: answers requests from any number of clients until closed. */
export function serve<Req = unknown, Res = unknown> (name: string, handler: Handler<Req, Res>, options: ServeOptions<Req, Res> = {}): Server<Req, Res> {
  return new Server<Req, Res>(name, handler, options)
}

/**
 * The serving side. Created by `serve()`; emits 'connection' and
 * 'disconnect' with a ClientInfo, and 'error' if the listener fails (with
 * no 'error' listener that ends the process, as for any EventEmitter).
 * While it is open it keeps the process alive, as a listening socket does,
 * unless unref()ed.
 */
export class Server<Req = unknown, Res = unknown> extends EventEmitter<ServerEvents> {
  /** The service name (the listener's shared memory name, with its slash). */
  readonly name: string
  readonly #base: string
  readonly #listener: Listener
  readonly #connections = new Set<Connection>()
  /** Connections by their index in the listener's connection table. */
  readonly #byIndex = new Map<number, Connection>()
  readonly #wait: WaitSettings
  /** Ends the accept loop's current sleep: on close(), ref() and unref(). */
  #nap: AbortController | undefined
  #refed = true
  readonly #signal: AbortSignal | undefined
  readonly #onAbort = (): void => { this.close() }
  readonly #setup: ConnectionSetup
  readonly #maxClients: number
  #closed = false

  /** Use `serve()`. */
  constructor (name: string, handler: Handler<Req, Res>, options: ServeOptions<Req, Res> = {}) {
    super()
    const { shm, base } = serviceName(name)
    if (typeof handler !== 'function') throw invalidType('handler', 'a function', handler)
    const { codec, channel, peerCheckInterval } = common(options as ConnectionOptions<unknown, unknown>)
    const capacity = checkCapacity(options.capacity ?? DEFAULT_RPC_CAPACITY)
    const backlog = checkInteger('backlog', options.backlog ?? 32, 1, MAX_SLOTS)
    this.#maxClients = checkInteger('maxClients', options.maxClients ?? DEFAULT_MAX_CLIENTS, 1, MAX_TABLE_BITS)
    this.#wait = { wait: channel.wait ?? 'adaptive', spinMicros: channel.spinMicros ?? 50, peerCheckInterval }
    const maxInFlight = checkInteger('maxInFlight', options.maxInFlight ?? 1024, 1, Number.MAX_SAFE_INTEGER)
    const openTimeout = checkTimeout('openTimeout', options.openTimeout ?? 5000)
    const signal = checkSignal('signal', options.signal)
    if (signal?.aborted === true) throw new AbortError({ cause: signal.reason })
    this.#setup = {
      handler: handler as Handler,
      codec,
      channel,
      maxInFlight,
      streaming: (index) => this.#listener.streaming(index),
      answering: (index, on) => { this.#listener.answering(index, on) },
      replied: this.#replied,
      onEnd: (connection, error) => { this.#ended(connection, error) }
    }
    this.#listener = Listener.create(shm, { slots: backlog, maxClients: this.#maxClients, capacity, codec: codec.name, mode: options.mode, openTimeout })
    this.name = shm
    this.#base = base
    this.#signal = signal
    signal?.addEventListener('abort', this.#onAbort, { once: true })
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

  /** Replies were written (or connections ended) since the reply bell last rang. */
  #repliesDue = false
  #flushQueued = false

  /** A connection wrote a reply or ended: the reply bell rings at the end of this pass, or of this turn of the loop. */
  readonly #replied = (): void => {
    this.#repliesDue = true
    if (!this.#flushQueued) {
      this.#flushQueued = true
      queueMicrotask(this.#flushReplies)
    }
  }

  /** Rings the reply bell once for every reply written since the last ring. */
  readonly #flushReplies = (): void => {
    this.#flushQueued = false
    if (!this.#repliesDue) return
    this.#repliesDue = false
    this.#listener.ringReplies()
  }

  readonly #visit = (index: number): void => {
    this.#byIndex.get(index)?.visit()
  }

  async #accept (): Promise<void> {
    const listener = this.#listener
    let swept = performance.now()
    let turned = swept
    let nap = new AbortController()
    while (!this.#closed) {
      // Load the doorbell before scanning: a client that readies its slot
      // after the scan has also rung after this load, so the wait below
      // ends at once (the word changed) and the next scan finds it.
      listener.mark()
      for (const slot of listener.ready()) this.#admit(slot)
      listener.takeVisits(this.#visit)
      // Before the wait (whose spin would hold back a microtask): one ring for the pass's replies.
      this.#flushReplies()
      const now = performance.now()
      if (now - swept >= SWEEP_INTERVAL) {
        swept = now
        this.#sweep()
      }
      // A wait that ends in its spin resumes this loop as a microtask: while
      // requests keep coming, timers and I/O of the process would never run.
      // Give the event loop a turn every millisecond of such passes.
      if (now - turned >= LOOP_TURN) {
        await new Promise((resolve) => setImmediate(resolve))
        turned = performance.now()
        if (this.#closed) break // close() had no sleep to abort
      }
      // One controller for every sleep until one is aborted: making one per pass shows in profiles.
      if (nap.signal.aborted) nap = new AbortController()
      this.#nap = nap
      try {
        // A pending kernel wait holds the event loop: unref()ed with no
        // client, the server looks at the doorbell on an unref()ed timer instead.
        if (this.#refed || this.#connections.size > 0) {
          await listener.sleep(this.#wait, SWEEP_INTERVAL, nap.signal)
          // Longer than the default spin by far: parked, and woken through the event loop.
          if (performance.now() - now > LOOP_TURN) turned = performance.now()
        } else {
          await delay(UNREFED_POLL, undefined, { ref: false, signal: nap.signal })
        }
      } catch (err) {
        // Aborted: closed (the loop ends), or ref()/unref()/a new connection: look again.
        if (!isAbort(err) && (err as ShmChannelError).code !== 'ERR_TIMEOUT') throw err
      } finally {
        this.#nap = undefined
      }
    }
  }

  /** Ends the connections of clients that died, one liveness check per client process, and frees dead connectors' slots. */
  #sweep (): void {
    const verdicts = new Map<string, boolean>()
    for (const connection of this.#connections) {
      const { pid, startTime } = connection.owner
      const key = `${pid}:${startTime}`
      let alive = verdicts.get(key)
      if (alive === undefined) {
        alive = isAlive(pid, startTime)
        verdicts.set(key, alive)
      }
      if (!alive) connection.lost()
    }
    for (const orphan of this.#listener.sweep()) {
      try {
        Duplex.unlink(connectionName(this.#base, orphan))
      } catch {} // best effort: a name we may not remove is not worth stopping for
    }
  }

  #admit (slot: number): void {
    const owner: SlotOwner | null = this.#listener.take(slot)
    if (owner === null) return // the client withdrew at this instant
    const index = this.#connections.size >= this.#maxClients ? -1 : this.#listener.takeIndex()
    if (index < 0) {
      this.#listener.answer(slot, SLOT_REFUSED) // the client removes its channels
      return
    }
    const name = connectionName(this.#base, owner)
    let duplex: Duplex<Uint8Array, Uint8Array>
    try {
      duplex = Duplex.listen<Uint8Array, Uint8Array>(name, this.#setup.channel)
    } catch {
      this.#listener.freeIndex(index)
      this.#listener.answer(slot, SLOT_REFUSED)
      return
    }
    const client: ClientInfo = Object.freeze({ pid: owner.pid, connection: owner.connection, name })
    const connection = new Connection(client, owner, index, duplex, this.#setup)
    this.#connections.add(connection)
    this.#byIndex.set(index, connection)
    this.#listener.answer(slot, SLOT_ACCEPTED, index)
    // The first wait with a client holds the event loop even when unref()ed.
    if (!this.#refed) this.#nap?.abort()
    this.emit('connection', client)
  }

  #ended (connection: Connection, error: Error | undefined): void {
    if (!this.#connections.delete(connection)) return
    this.#byIndex.delete(connection.index)
    if (!this.#listener.closed) this.#listener.freeIndex(connection.index)
    // unref()ed and without clients: stop holding the event loop.
    if (!this.#refed && this.#connections.size === 0) this.#nap?.abort()
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
    this.#signal?.removeEventListener('abort', this.#onAbort)
    this.#nap?.abort()
    for (const connection of [...this.#connections]) connection.close()
    this.#flushReplies()
    this.#listener.close()
  }

  /** `using server = serve(...)`: close() at the end of the scope. */
  [Symbol.dispose] (): void {
    this.close()
  }

  /**
   * Lets the process exit while this server waits for clients, as
   * `net.Server.unref()` does. While it has clients it still holds the
   * process, as connected sockets do. While unref()ed with no client, the
   * server looks for new clients every 20 ms instead of sleeping on the doorbell.
   */
  unref (): this {
    if (this.#refed) {
      this.#refed = false
      this.#nap?.abort()
    }
    return this
  }

  /** Undoes unref(): the server keeps the process alive again while open. */
  ref (): this {
    if (!this.#refed) {
      this.#refed = true
      this.#nap?.abort()
    }
    return this
  }
}

interface ConnectionSetup {
  handler: Handler
  codec: Codec<unknown>
  channel: DuplexOptions<Uint8Array>
  maxInFlight: number
  /** True while connection `index`'s client streams. */
  streaming: (index: number) => boolean
  /** Marks connection `index` answering: a reply its channel publishes later, without a ring. */
  answering: (index: number, on: boolean) => void
  /** A reply was written or a connection ended: the clients' reply waiters must look. */
  replied: () => void
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

/** Longest the server follows a streaming connection's channel before looking at its streaming bit again, in milliseconds. */
const FOLLOW_SLICE = 250

/**
 * The server's side of one client: reads its requests when the client rings
 * (visit), runs the handler, writes replies. It holds no waiter of its own,
 * except while the client streams (lib/rpc/listener-layout.ts).
 */
class Connection {
  readonly client: ClientInfo
  /** The client process, as the listener slot named it (for the liveness sweep). */
  readonly owner: SlotOwner
  /** The connection's bit in the listener's connection table. */
  readonly index: number
  readonly #duplex: Duplex<Uint8Array, Uint8Array>
  readonly #producer: Producer<Uint8Array>
  readonly #consumer: Consumer<Uint8Array>
  readonly #setup: ConnectionSetup
  /** Requests whose handler returned a promise, by id. */
  readonly #running = new Map<number, Context>()
  /** True while maxInFlight handlers run: the next request waits in the ring. */
  #full = false
  #following = false
  /** Replies the channel publishes later (waiting for room, or in fragments): the connection is answering while > 0. */
  #slowReplies = 0
  #ended = false

  constructor (client: ClientInfo, owner: SlotOwner, index: number, duplex: Duplex<Uint8Array, Uint8Array>, setup: ConnectionSetup) {
    this.client = client
    this.owner = owner
    this.index = index
    this.#duplex = duplex
    this.#producer = duplex.producer
    this.#consumer = duplex.consumer
    this.#setup = setup
  }

  /** The client rang (or there is room again): reads what is waiting, then follows the channel if the client streams. */
  visit (): void {
    if (!this.#drain()) return
    if (!this.#full && !this.#following && this.#setup.streaming(this.index)) void this.#follow()
  }

  /**
   * Reads every whole request waiting now (up to maxInFlight running).
   * False once the connection ended: the client's close, or a broken frame.
   */
  #drain (): boolean {
    if (this.#ended) return false
    const consumer = this.#consumer
    const producer = this.#producer
    const max = this.#setup.maxInFlight
    try {
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
    } catch (err) {
      this.#failed(err)
      return false
    }
    this.#full = this.#running.size >= max
    return true
  }

  /**
   * While the client streams, its channel publishes without ringing: wait
   * on the channel itself (one waiter, for this connection only) until the
   * streaming bit is clear. The client rings once more after clearing it.
   */
  async #follow (): Promise<void> {
    this.#following = true
    try {
      while (!this.#full && this.#setup.streaming(this.index)) {
        let more = true
        try {
          more = await this.#consumer.readable({ timeout: FOLLOW_SLICE })
        } catch (err) {
          if ((err as ShmChannelError).code !== 'ERR_TIMEOUT') throw err
        }
        if (!this.#drain() || !more) break
      }
    } catch (err) {
      this.#failed(err)
    } finally {
      this.#following = false
    }
  }

  #failed (err: unknown): void {
    if (this.#ended) return
    // The client's close makes read() throw ERR_CHANNEL_CLOSED once everything was read.
    this.#end((err as ShmChannelError).code === 'ERR_CHANNEL_CLOSED' ? undefined : err as Error)
  }

  /** The liveness sweep found the client's process gone. */
  lost (): void {
    this.#end(new ShmChannelError('ERR_PEER_DEAD', `the client (pid ${this.client.pid}) died`))
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
    // Room again: read the requests left waiting in the ring.
    if (this.#full && this.#running.size < this.#setup.maxInFlight) this.visit()
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
      this.#setup.replied()
      // A reply waiting for room fails only if the connection ends: the close reports that.
      if (sent !== undefined) this.#replySlowly(sent)
    } catch (err) {
      if (status === STATUS_OK && err instanceof TypeError) {
        this.#write(STATUS_ERROR, 0, id, errorPayload(err)) // the codec returned something unwritable
      }
      // Otherwise the channel is closed: run() sees it and ends the connection.
    }
  }

  /**
   * A reply the channel publishes later, without a ring: the connection is
   * answering (its client follows the channel) until the last such reply is
   * out, then rings as for any reply.
   */
  #replySlowly (sent: Promise<void>): void {
    if (this.#slowReplies++ === 0) this.#setup.answering(this.index, true)
    sent.catch(() => {}).finally(() => {
      // Once ended, the index may be another connection's: its bit is not ours to clear.
      if (--this.#slowReplies === 0 && !this.#ended) this.#setup.answering(this.index, false)
      this.#setup.replied()
    })
  }

  /** Ends the connection once: cancels running handlers, closes the channels and removes their names. */
  #end (error: Error | undefined): void {
    if (this.#ended) return
    this.#ended = true
    const gone = new AbortError({ cause: error ?? 'the connection closed' })
    for (const context of this.#running.values()) context.cancel(gone)
    this.#running.clear()
    this.#duplex.close()
    this.#setup.replied() // a client waiting for replies reads the close
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
