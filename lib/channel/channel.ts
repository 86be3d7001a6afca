/**
 * Channels: a producer end and a consumer end over one ring, opened by name
 * (a shared memory object) or built on a SharedArrayBuffer handed to a
 * worker thread. Either end may create the channel; the other attaches.
 */
import { AbortError, ShmChannelError, checkInteger, checkTimeout, invalidType, invalidValue, outOfRange } from './errors'
import { resolveCodec, type Codec, type CodecName } from './codecs'
import * as L from './layout'
import { claimEnd, closeEnd, endLive, markEndOnThreadExit, readEnd } from './liveness'
import { Region, checkOwner } from './region'
import { ASSEMBLED, NONE, RingConsumer, RingProducer, checkSegment, initSegment } from './ring'
import { waitAsync, waitSync, type WaitSpec, type WaitStrategy } from './wait'

export type { WaitStrategy } from './wait'

export const DEFAULT_CAPACITY = 1 << 20

export interface ChannelOptions<T> {
  /** How values become bytes: 'json' (default), 'structured', 'utf8', 'bytes', or your own codec. */
  codec?: Codec<T> | CodecName
  /** How this end waits: 'adaptive' (default: spin `spinMicros`, then sleep), 'spin' (never sleeps; one core busy), 'block' (sleeps at once). */
  wait?: WaitStrategy
  /** Spin budget of the adaptive strategy, in microseconds. Default 50. */
  spinMicros?: number
  /** While waiting, how often to check that the other process lives, in milliseconds. Default 250. */
  peerCheckInterval?: number
  /** Ring size in bytes when this end creates the channel: a power of two from 4096 to 2^30. Default 1 MiB. */
  capacity?: number
  /** Permission bits when this end creates the channel. Default 0o600. */
  mode?: number
  /** How long to wait for a creator to finish the channel's header, in milliseconds. Default 5000. */
  openTimeout?: number
  /** Join a channel whose shared memory object another user owns. Default false: ERR_FOREIGN_OWNER. */
  allowForeignOwner?: boolean
}

export interface ConsumerOptions<T> extends ChannelOptions<T> {
  /** Largest message this end accepts (reassembles), in bytes. Default: no limit. */
  maxMessageSize?: number
}

export interface WaitOptions {
  /** Milliseconds; default no limit. */
  timeout?: number
  signal?: AbortSignal
}

/** Makes a SharedArrayBuffer holding a fresh channel, for `Producer.fromBuffer`/`Consumer.fromBuffer` in worker threads. */
export function createChannelBuffer (capacity: number = DEFAULT_CAPACITY): SharedArrayBuffer {
  checkCapacity(capacity)
  const buffer = new SharedArrayBuffer(L.segmentSize(capacity))
  initSegment(buffer, capacity)
  return buffer
}

/** Checks a ring capacity option (also used by lib/rpc.ts). */
export function checkCapacity (capacity: unknown): number {
  checkInteger('capacity', capacity, L.MIN_CAPACITY, L.MAX_CAPACITY)
  const c = capacity as number
  if ((c & (c - 1)) !== 0) throw outOfRange('capacity', `a power of two between ${L.MIN_CAPACITY} and 2^30`, c)
  return c
}

export interface Settings {
  wait: WaitStrategy
  spinMicros: number
  peerCheckInterval: number
}

/** Checks the waiting options every end takes (also used by lib/rpc.ts). */
export function settings (options: ChannelOptions<unknown>): Settings {
  const wait = options.wait ?? 'adaptive'
  if (wait !== 'adaptive' && wait !== 'spin' && wait !== 'block') {
    throw invalidValue('wait', `must be 'adaptive', 'spin' or 'block', got ${JSON.stringify(wait)}`)
  }
  const spinMicros = options.spinMicros ?? 50
  if (typeof spinMicros !== 'number' || !(spinMicros >= 0)) throw outOfRange('spinMicros', 'a non-negative number', spinMicros)
  if (options.allowForeignOwner !== undefined && typeof options.allowForeignOwner !== 'boolean') {
    throw invalidType('allowForeignOwner', 'a boolean', options.allowForeignOwner)
  }
  const peerCheckInterval = options.peerCheckInterval ?? 250
  if (typeof peerCheckInterval !== 'number' || !(peerCheckInterval > 0) || peerCheckInterval === Infinity) {
    throw outOfRange('peerCheckInterval', 'a positive number of milliseconds', peerCheckInterval)
  }
  return { wait, spinMicros, peerCheckInterval }
}

/**
 * A signal that aborts when `closer` or `user` does, and a function that
 * detaches it from both once the wait is over. AbortSignal.any would do,
 * but in Node 20 each call leaves an entry on its source signals for as long
 * as they live (nodejs/node#55351), and `closer` lives as long as the end:
 * a producer waiting for room once per send grew without bound.
 */
function linkSignals (closer: AbortSignal, user: AbortSignal): { signal: AbortSignal, unlink: () => void } {
  const controller = new AbortController()
  const onCloser = (): void => { controller.abort(closer.reason) }
  const onUser = (): void => { controller.abort(user.reason) }
  if (closer.aborted || user.aborted) {
    controller.abort(closer.aborted ? closer.reason : user.reason)
  } else {
    closer.addEventListener('abort', onCloser, { once: true })
    user.addEventListener('abort', onUser, { once: true })
  }
  return {
    signal: controller.signal,
    unlink () {
      closer.removeEventListener('abort', onCloser)
      user.removeEventListener('abort', onUser)
    }
  }
}

/** Checked before an end is taken: an option refused after that would leave the end claimed. */
function checkMaxMessageSize (max: unknown): number {
  if (max === undefined || max === Infinity) return Infinity
  return checkInteger('maxMessageSize', max, 0, Number.MAX_SAFE_INTEGER)
}

type Role = 'producer' | 'consumer'

const END_OFFSETS = {
  producer: { own: L.PRODUCER_END_OFFSET, peer: L.CONSUMER_END_OFFSET },
  consumer: { own: L.CONSUMER_END_OFFSET, peer: L.PRODUCER_END_OFFSET }
} as const

const sleeper = new Int32Array(new SharedArrayBuffer(4))

/**
 * Opens the segment behind `name` and takes the `role` end of it, creating
 * the channel if there is none. A segment whose end for `role` is used up
 * (closed, or held by a dead process), or whose consumer is gone when a
 * producer comes, is stale: it is unlinked and a fresh one created.
 */
function attach (name: string, role: Role, options: ChannelOptions<unknown>): Region {
  const capacity = checkCapacity(options.capacity ?? DEFAULT_CAPACITY)
  const openTimeout = checkTimeout('openTimeout', options.openTimeout ?? 5000)
  const ends = END_OFFSETS[role]
  for (let attempt = 0; ; attempt++) {
    let region: Region
    let created = false
    try {
      region = Region.create(name, L.segmentSize(capacity), { mode: options.mode })
      created = true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      try {
        region = Region.open(name)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
        throw err
      }
    }
    try {
      if (!created) checkOwner(region, options.allowForeignOwner)
      if (created) {
        initSegment(region.buffer, capacity)
      } else if (!awaitHeader(region.buffer, openTimeout)) {
        // The creator made the name but never finished the header: it died
        // in between (finishing takes microseconds). Reclaim the name once.
        if (attempt > 0) throw new ShmChannelError('ERR_TIMEOUT', `channel ${name} was not initialised within ${openTimeout} ms`)
        region.unlinkIfSame()
        region.close()
        continue
      }
      const h = new Int32Array(region.buffer, 0, L.HEADER_SIZE / 4)
      const own = readEnd(h, ends.own)
      const peer = readEnd(h, ends.peer)
      // A consumer joins even after its producer closed or died: what was
      // published is still to be read. A producer does not join a channel
      // whose consumer is gone: nobody would read it.
      const joinable = peer.state === L.END_FREE || endLive(peer) || role === 'consumer'
      if (own.state === L.END_FREE && own.pid === 0 && joinable) {
        if (claimEnd(h, ends.own)) return region
        region.close()
        continue // another process took the end at this instant: look again
      }
      if (endLive(own)) {
        throw new ShmChannelError('ERR_END_TAKEN', `channel ${name} already has a live ${role} (pid ${own.pid})`)
      }
      // Used up: reclaim.
      region.unlinkIfSame()
      region.close()
    } catch (err) {
      region.close()
      if (created) region.unlinkIfSame()
      throw err
    }
  }
}

/** Polls until the creator's magic is in; false on timeout. Throws ERR_INVALID_SEGMENT for a foreign segment. */
function awaitHeader (buffer: SharedArrayBuffer, timeout: number): boolean {
  const deadline = performance.now() + timeout
  for (;;) {
    if (checkSegment(buffer) !== 0) return true
    if (performance.now() >= deadline) return false
    Atomics.wait(sleeper, 0, 0, 1)
  }
}

/** Shared plumbing of both ends: the attachment, liveness, close. */
class End {
  readonly name: string | undefined
  readonly header: Int32Array
  readonly #region: Region | undefined
  readonly #own: number
  readonly #peer: number
  readonly #role: Role
  readonly #cancelThreadMark: () => void
  closed = false

  constructor (role: Role, name: string | undefined, region: Region | undefined, buffer: SharedArrayBuffer) {
    this.#role = role
    this.name = name
    this.#region = region
    this.header = new Int32Array(buffer, 0, L.HEADER_SIZE / 4)
    this.#own = END_OFFSETS[role].own
    this.#peer = END_OFFSETS[role].peer
    this.#cancelThreadMark = markEndOnThreadExit(this, buffer, this.#own)
  }

  /** The peer has closed its end. One load from a line that rarely changes. */
  peerClosed (): boolean {
    return Atomics.load(this.header, L.word(this.#peer) + L.word(L.END_STATE)) === L.END_CLOSED
  }

  /** Throws ERR_PEER_DEAD if the peer's process is gone without closing. */
  checkPeer (): void {
    const peer = readEnd(this.header, this.#peer)
    if (peer.state === L.END_OPEN && !endLive(peer)) {
      const other = this.#role === 'producer' ? 'consumer' : 'producer'
      const who = peer.pid === process.pid ? 'a worker thread of this process that held it ended without closing it' : `its process (pid ${peer.pid}) died`
      throw new ShmChannelError('ERR_PEER_DEAD', `the ${other} of channel ${this.name ?? '(buffer)'} is gone: ${who}`)
    }
  }

  assertOpen (): void {
    if (this.closed) throw new ShmChannelError('ERR_CHANNEL_CLOSED', `this ${this.#role} is closed`)
  }

  /**
   * Marks the end closed, lets `notify` wake the peer, then lets go of the
   * mapping; the last end out removes the name.
   */
  close (notify: () => void): void {
    closeEnd(this.header, this.#own)
    this.#cancelThreadMark()
    this.closed = true
    notify()
    const region = this.#region
    if (region === undefined) return
    // A peer that never attached may still come for what was sent: leave the
    // name to it (it unlinks when it closes; a later open reclaims it if not).
    const peer = readEnd(this.header, this.#peer)
    try {
      if (peer.state === L.END_CLOSED || (peer.state === L.END_OPEN && !endLive(peer))) region.unlinkIfSame()
    } catch (err) {
      // /dev/shm is sticky: another user's name is theirs to remove (their next open reclaims it).
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'EPERM' && code !== 'EACCES') throw err
    } finally {
      region.close()
    }
  }
}

function validateName (name: unknown): string {
  if (typeof name !== 'string') throw invalidType('name', 'a string', name)
  return name
}

function checkBuffer (buffer: unknown): SharedArrayBuffer {
  if (!(buffer instanceof SharedArrayBuffer)) throw invalidType('buffer', 'a SharedArrayBuffer', buffer)
  return buffer
}

const RESOLVED = Promise.resolve()

interface PendingSend {
  payload: Uint8Array | string
  /** Bytes of a fragmented payload already written; -1 until the first fragment. */
  offset: number
  resolve: () => void
  reject: (err: unknown) => void
  deadline: number
  timeout: number
  signal: AbortSignal | undefined
}

/**
 * The sending end. `send` waits for room (backpressure), `trySend` never
 * waits, `sendSync` blocks the thread. Messages larger than a quarter of the
 * ring travel in fragments.
 */
export class Producer<T = unknown> {
  readonly #end: End
  readonly #ring: RingProducer
  readonly #codec: Codec<T>
  readonly #settings: Settings
  readonly #queue: PendingSend[] = []
  #pumping = false
  #publishScheduled = false
  #corked = false
  readonly #closer = new AbortController()
  /** Payload size the waiter needs room for; set before each wait. */
  #needed = 0
  readonly #spec: WaitSpec

  private constructor (end: End, buffer: SharedArrayBuffer, options: ChannelOptions<T>) {
    this.#end = end
    this.#ring = new RingProducer(buffer)
    this.#codec = resolveCodec(options.codec)
    this.#settings = settings(options)
    this.#spec = {
      header: end.header,
      parkedFlag: RingProducer.PARKED_FLAG,
      waitWord: RingProducer.WAIT_WORD,
      strategy: this.#settings.wait,
      spinMicros: this.#settings.spinMicros,
      peerCheckInterval: this.#settings.peerCheckInterval,
      ready: () => this.#end.closed || this.#end.peerClosed() || this.#ring.hasRoomFor(this.#needed),
      checkPeer: () => { this.#end.checkPeer() }
    }
  }

  /** Opens the producer end of channel `name`, creating the channel if needed. */
  static open<T = unknown> (name: string, options: ChannelOptions<T> = {}): Producer<T> {
    validateName(name)
    settings(options)
    resolveCodec(options.codec)
    const region = attach(name, 'producer', options)
    try {
      return new Producer<T>(new End('producer', region.name, region, region.buffer), region.buffer, options)
    } catch (err) {
      region.close()
      throw err
    }
  }

  /** The producer end of a channel in a SharedArrayBuffer from `createChannelBuffer`. */
  static fromBuffer<T = unknown> (buffer: SharedArrayBuffer, options: ChannelOptions<T> = {}): Producer<T> {
    checkBuffer(buffer)
    settings(options)
    resolveCodec(options.codec)
    if (checkSegment(buffer) === 0) throw new ShmChannelError('ERR_INVALID_SEGMENT', 'invalid segment: header is not initialised')
    const h = new Int32Array(buffer, 0, L.HEADER_SIZE / 4)
    if (!claimEnd(h, L.PRODUCER_END_OFFSET)) throw new ShmChannelError('ERR_END_TAKEN', 'this channel already has a producer')
    return new Producer<T>(new End('producer', undefined, undefined, buffer), buffer, options)
  }

  /** The channel's name, for channels opened by name. */
  get name (): string | undefined { return this.#end.name }
  get closed (): boolean { return this.#end.closed }
  /** Ring size in bytes. */
  get capacity (): number { return this.#ring.capacity }

  #checkWritable (): void {
    this.#end.assertOpen()
    if (this.#end.peerClosed()) throw new ShmChannelError('ERR_CHANNEL_CLOSED', 'the consumer closed the channel')
  }

  #encode (value: T): Uint8Array | string {
    const payload = this.#codec.encode(value)
    if (typeof payload === 'string') {
      // Short strings go straight into the ring as UTF-8; long ones become bytes once.
      return payload.length * 3 <= this.#ring.maxRecordPayload ? payload : Buffer.from(payload, 'utf8')
    }
    if (!(payload instanceof Uint8Array)) throw new TypeError(`codec ${this.#codec.name} returned neither a string nor a Uint8Array`)
    return payload
  }

  /** Writes a whole message now if it fits; a fragmented one only if all of it fits. */
  #tryWrite (payload: Uint8Array | string): boolean {
    const ring = this.#ring
    if (typeof payload === 'string') {
      let view = ring.claim(payload.length * 3)
      if (view === null) {
        const exact = Buffer.byteLength(payload, 'utf8')
        if (exact === payload.length * 3 || (view = ring.claim(exact)) === null) return false
      }
      ring.commit(view.write(payload, 'utf8'))
      return true
    }
    if (payload.length <= ring.maxRecordPayload) return ring.tryWrite(payload)
    const footprint = ring.footprint(payload.length)
    if (footprint > ring.capacity || footprint > ring.freeBytes) return false
    ring.writeFragments(payload, 0)
    return true
  }

  #schedulePublish (): void {
    if (this.#publishScheduled) return
    this.#publishScheduled = true
    queueMicrotask(() => {
      this.#publishScheduled = false
      if (!this.#end.closed) this.#publish()
    })
  }

  /**
   * Holds back publishing: messages written from now on become visible to the
   * consumer together at uncork() (or as soon as the ring fills). For bursts
   * of trySend/commit where one publish for many messages is worth more than
   * the latency of each.
   */
  cork (): void {
    this.#corked = true
  }

  /** Publishes what cork() held back and returns to publishing each message. */
  uncork (): void {
    this.#corked = false
    if (!this.#end.closed) this.#ring.publish()
  }

  #publish (): void {
    if (!this.#corked) this.#ring.publish()
  }

  /**
   * Zero-copy send: returns a view of `length` bytes of the ring to fill in
   * place, or null when there is no room now. Follow with commit() or abort().
   * The codec is not involved: the consumer gets the bytes. At most a quarter
   * of the ring minus 8 bytes.
   */
  claim (length: number): Buffer | null {
    this.#checkWritable()
    if (this.#queue.length > 0) return null // keep order behind pending sends
    checkInteger('length', length, 0, this.#ring.maxRecordPayload)
    return this.#ring.claim(length)
  }

  /** Sends the claimed view's first `length` bytes (default: all claimed), and publishes unless corked. */
  commit (length?: number): void {
    this.#end.assertOpen()
    this.#ring.commit(length)
    this.#publish()
  }

  /** Drops the open claim; the consumer never sees it. */
  abort (): void {
    this.#ring.abort()
  }

  /**
   * Sends without waiting: true if the message is in the ring (and published),
   * false if there is no room now. A message that can never fit whole at once
   * (a fragmented message whose records and worst-case padding exceed the
   * ring: from about three quarters of its capacity) throws
   * ERR_MESSAGE_TOO_LARGE: use send().
   */
  trySend (value: T): boolean {
    this.#checkWritable()
    if (this.#queue.length > 0) return false // keep order behind pending sends
    const payload = this.#encode(value)
    if (!this.#tryWrite(payload)) {
      if (typeof payload !== 'string' && this.#ring.footprint(payload.length) > this.#ring.capacity) {
        throw new ShmChannelError('ERR_MESSAGE_TOO_LARGE', `a ${payload.length}-byte message cannot be sent whole without waiting; use send() or sendSync()`)
      }
      this.#ring.publish()
      return false
    }
    this.#publish()
    return true
  }

  /**
   * Sends, waiting for room while the ring is full. Resolves once the message
   * is written. Sends made in one tick are published together. `timeout` and
   * `signal` apply until the message starts going out; a fragmented message
   * that has started is finished.
   */
  send (value: T, options: WaitOptions = {}): Promise<void> {
    let payload: Uint8Array | string
    let timeout: number
    try {
      this.#checkWritable()
      // Checked even when the message goes at once: a bad timeout must not fail only under load.
      timeout = checkTimeout('timeout', options.timeout)
      payload = this.#encode(value)
      if (this.#queue.length === 0 && (typeof payload === 'string' || payload.length <= this.#ring.maxRecordPayload) && this.#tryWrite(payload)) {
        this.#schedulePublish()
        return RESOLVED
      }
    } catch (err) {
      return Promise.reject(err)
    }
    if (options.signal?.aborted === true) return Promise.reject(new AbortError({ cause: options.signal.reason }))
    return new Promise((resolve, reject) => {
      const entry: PendingSend = { payload, offset: -1, resolve, reject, timeout, deadline: performance.now() + timeout, signal: options.signal }
      this.#queue.push(entry)
      if (this.#queue.length > 1) this.#expireWhileQueued(entry)
      if (!this.#pumping) void this.#pump()
    })
  }

  /**
   * A send queued behind another one is not written before its turn, but its
   * timeout and signal run from the call: when either fires while it is still
   * queued, it leaves the queue and rejects. Once it is the head, #pump's own
   * wait watches both (the head is never removed from here).
   */
  #expireWhileQueued (entry: PendingSend): void {
    const timed = entry.timeout !== Infinity
    if (!timed && entry.signal === undefined) return
    const expire = (err: Error): void => {
      const index = this.#queue.indexOf(entry)
      if (index <= 0) return
      this.#queue.splice(index, 1)
      entry.reject(err)
    }
    const timer = timed ? setTimeout(() => { expire(new ShmChannelError('ERR_TIMEOUT', `send timed out after ${entry.timeout} ms`)) }, entry.timeout) : undefined
    const onAbort = (): void => { expire(new AbortError({ cause: entry.signal?.reason })) }
    entry.signal?.addEventListener('abort', onAbort, { once: true })
    const { resolve, reject } = entry
    const done = (): void => {
      clearTimeout(timer)
      entry.signal?.removeEventListener('abort', onAbort)
    }
    entry.resolve = () => { done(); resolve() }
    entry.reject = (err) => { done(); reject(err) }
  }

  /** Writes the queue head as far as possible; true when it is fully written. */
  #advance (head: PendingSend): boolean {
    const payload = head.payload
    if (typeof payload === 'string' || payload.length <= this.#ring.maxRecordPayload) {
      this.#needed = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length
      return this.#tryWrite(payload)
    }
    head.offset = this.#ring.writeFragments(payload, Math.max(head.offset, 0))
    this.#needed = Math.min(this.#ring.maxRecordPayload, payload.length - head.offset + L.FRAGMENT_TOTAL_SIZE)
    return head.offset === payload.length
  }

  async #pump (): Promise<void> {
    this.#pumping = true
    const queue = this.#queue
    try {
      while (queue.length > 0) {
        const head = queue[0]
        if (this.#end.closed) throw new ShmChannelError('ERR_CHANNEL_CLOSED', 'this producer is closed')
        if (this.#end.peerClosed()) throw new ShmChannelError('ERR_CHANNEL_CLOSED', 'the consumer closed the channel')
        if (this.#advance(head)) {
          queue.shift()
          head.resolve()
          continue
        }
        // Full: let the consumer see what there is, then wait for room.
        this.#ring.publish()
        this.#ring.noteFull()
        const started = head.offset > 0
        const link = started || head.signal === undefined ? undefined : linkSignals(this.#closer.signal, head.signal)
        const left = started ? Infinity : Math.max(0, head.deadline - performance.now())
        try {
          await waitAsync(this.#spec, left, link?.signal ?? this.#closer.signal)
        } catch (err) {
          if (this.#end.closed) throw new ShmChannelError('ERR_CHANNEL_CLOSED', 'this producer is closed')
          if ((err as ShmChannelError).code === 'ERR_TIMEOUT') err = new ShmChannelError('ERR_TIMEOUT', `send timed out after ${head.timeout} ms`)
          if ((err as ShmChannelError).code === 'ERR_PEER_DEAD') throw err
          queue.shift()
          head.reject(err)
        } finally {
          link?.unlink()
        }
      }
      this.#ring.publish()
    } catch (err) {
      for (const pending of queue.splice(0)) pending.reject(err)
    } finally {
      this.#pumping = false
    }
  }

  /** Sends, blocking the thread while the ring is full. For worker threads and scripts that may block. */
  sendSync (value: T, options: { timeout?: number } = {}): void {
    this.#checkWritable()
    if (this.#queue.length > 0) throw new ShmChannelError('ERR_BUSY', 'asynchronous sends are pending on this producer')
    const timeout = checkTimeout('timeout', options.timeout)
    const payload = this.#encode(value)
    const deadline = performance.now() + timeout
    const head: PendingSend = { payload, offset: -1, resolve () {}, reject () {}, timeout, deadline, signal: undefined }
    while (!this.#advance(head)) {
      this.#ring.publish()
      this.#ring.noteFull()
      const started = head.offset > 0
      try {
        waitSync(this.#spec, started ? Infinity : Math.max(0, deadline - performance.now()))
      } catch (err) {
        if ((err as ShmChannelError).code === 'ERR_TIMEOUT') throw new ShmChannelError('ERR_TIMEOUT', `sendSync timed out after ${timeout} ms`)
        throw err
      }
      this.#checkWritable()
    }
    this.#ring.publish()
  }

  /**
   * Closes this end. What was sent stays readable: the consumer drains it,
   * then sees the end. Sends still waiting for room fail with ERR_CHANNEL_CLOSED.
   */
  close (): void {
    if (this.#end.closed) return
    if (this.#ring.pending) this.#ring.publish()
    this.#end.close(() => {
      // The consumer may be asleep on an empty ring: tell it about the close.
      // Its parked flag is read after our state store, as in RingProducer.publish.
      if (Atomics.load(this.#end.header, RingConsumer.PARKED_FLAG) !== 0) this.#ring.wakeConsumer()
    })
    this.#closer.abort()
    for (const pending of this.#queue.splice(0)) pending.reject(new ShmChannelError('ERR_CHANNEL_CLOSED', 'this producer is closed'))
  }
}

/** Returned by tryReceive when no message is waiting. */
const NOTHING = Symbol('nothing')
const END = Symbol('end')

/**
 * The receiving end. `receive` waits without blocking the event loop,
 * `tryReceive` never waits, `receiveSync` blocks the thread, and
 * `for await (const message of consumer)` reads until the producer closes.
 */
export class Consumer<T = unknown> implements AsyncIterable<T> {
  readonly #end: End
  readonly #ring: RingConsumer
  readonly #codec: Codec<T>
  readonly #settings: Settings
  readonly #releaseBatch: number
  readonly #closer = new AbortController()
  #receiving: Promise<unknown> | undefined
  readonly #spec: WaitSpec

  private constructor (end: End, buffer: SharedArrayBuffer, options: ConsumerOptions<T>) {
    this.#end = end
    const max = checkMaxMessageSize(options.maxMessageSize)
    this.#ring = new RingConsumer(buffer, max)
    this.#codec = resolveCodec(options.codec)
    this.#settings = settings(options)
    this.#releaseBatch = this.#ring.capacity / 4
    this.#spec = {
      header: end.header,
      parkedFlag: RingConsumer.PARKED_FLAG,
      waitWord: RingConsumer.WAIT_WORD,
      strategy: this.#settings.wait,
      spinMicros: this.#settings.spinMicros,
      peerCheckInterval: this.#settings.peerCheckInterval,
      ready: () => this.#end.closed || this.#ring.available || this.#end.peerClosed(),
      checkPeer: () => { this.#end.checkPeer() }
    }
  }

  /** Opens the consumer end of channel `name`, creating the channel if needed. */
  static open<T = unknown> (name: string, options: ConsumerOptions<T> = {}): Consumer<T> {
    validateName(name)
    settings(options)
    resolveCodec(options.codec)
    checkMaxMessageSize(options.maxMessageSize)
    const region = attach(name, 'consumer', options)
    try {
      return new Consumer<T>(new End('consumer', region.name, region, region.buffer), region.buffer, options)
    } catch (err) {
      region.close()
      throw err
    }
  }

  /** The consumer end of a channel in a SharedArrayBuffer from `createChannelBuffer`. */
  static fromBuffer<T = unknown> (buffer: SharedArrayBuffer, options: ConsumerOptions<T> = {}): Consumer<T> {
    checkBuffer(buffer)
    settings(options)
    resolveCodec(options.codec)
    checkMaxMessageSize(options.maxMessageSize)
    if (checkSegment(buffer) === 0) throw new ShmChannelError('ERR_INVALID_SEGMENT', 'invalid segment: header is not initialised')
    const h = new Int32Array(buffer, 0, L.HEADER_SIZE / 4)
    if (!claimEnd(h, L.CONSUMER_END_OFFSET)) throw new ShmChannelError('ERR_END_TAKEN', 'this channel already has a consumer')
    return new Consumer<T>(new End('consumer', undefined, undefined, buffer), buffer, options)
  }

  get name (): string | undefined { return this.#end.name }
  get closed (): boolean { return this.#end.closed }
  get capacity (): number { return this.#ring.capacity }

  /** The next message, NOTHING when none is waiting, END once the producer closed and all was read. */
  #next (): T | typeof NOTHING | typeof END {
    this.#end.assertOpen()
    const ring = this.#ring
    let found = ring.nextRange()
    if (found === NONE) {
      ring.release()
      if (!this.#end.peerClosed()) return NOTHING
      // Closed: anything published before the close is still to be read.
      found = ring.nextRange()
      if (found === NONE) return END
    }
    const codec = this.#codec
    let value: T
    try {
      if (found === ASSEMBLED) {
        value = codec.decode(ring.assembled)
      } else if (codec.decodeRange !== undefined) {
        value = codec.decodeRange(ring.bytes, ring.lastStart, ring.lastStart + ring.lastLength)
      } else {
        value = codec.decode(ring.bytes.subarray(ring.lastStart, ring.lastStart + ring.lastLength))
      }
    } catch (err) {
      throw new ShmChannelError('ERR_DECODE', `codec ${codec.name} could not decode a ${ring.lastLength}-byte message: ${(err as Error).message}`, { cause: err })
    } finally {
      // Batch the hand-back of space; release() also runs whenever the ring runs dry.
      if (ring.unreleased >= this.#releaseBatch) ring.release()
    }
    return value
  }

  /**
   * Zero-copy receive: the next message's bytes as a view into shared memory,
   * or undefined if none is waiting. The codec is not involved. The view stays
   * valid until release(); the space it holds is not reused before that.
   * (A message that came in fragments is a private copy instead.)
   * Throws ERR_CHANNEL_CLOSED once the producer closed and all was read.
   */
  read (): Buffer | undefined {
    this.#end.assertOpen()
    const ring = this.#ring
    let found = ring.nextRange()
    if (found === NONE && this.#end.peerClosed()) {
      found = ring.nextRange()
      if (found === NONE) throw ended()
    }
    if (found === NONE) return undefined
    if (found === ASSEMBLED) return ring.assembled
    return ring.bytes.subarray(ring.lastStart, ring.lastStart + ring.lastLength)
  }

  /** Hands the space of every message read so far back to the producer. Views from read() are invalid after this. */
  release (): void {
    this.#end.assertOpen()
    this.#ring.release()
  }

  /**
   * Zero-allocation batch read: calls `onMessage(bytes, start, end)` for each
   * message waiting now (at most `max`), the message being bytes[start, end).
   * `bytes` is the ring itself (for a message that came in fragments, a
   * private buffer), valid only during the call: copy what you keep. Then
   * hands the space back, as release() does (views from read() end too).
   * Returns the number of messages; 0 when no whole message is waiting. The
   * codec is not involved. If onMessage throws, the messages up to and
   * including that one count as read and the error propagates.
   * Throws ERR_CHANNEL_CLOSED once the producer closed and all was read.
   */
  readEach (onMessage: (bytes: Buffer, start: number, end: number) => void, max = Infinity): number {
    this.#end.assertOpen()
    if (typeof onMessage !== 'function') throw invalidType('onMessage', 'a function', onMessage)
    if (max !== Infinity) checkInteger('max', max, 1, Number.MAX_SAFE_INTEGER)
    const ring = this.#ring
    let n = 0
    try {
      while (n < max) {
        let found = ring.nextRange()
        if (found === NONE) {
          if (n > 0 || !this.#end.peerClosed()) break
          // Closed: anything published before the close is still to be read.
          found = ring.nextRange()
          if (found === NONE) throw ended()
        }
        n++
        if (found === ASSEMBLED) {
          const whole = ring.assembled
          onMessage(whole, 0, whole.length)
        } else {
          const start = ring.lastStart
          onMessage(ring.bytes, start, start + ring.lastLength)
        }
      }
    } finally {
      ring.release()
    }
    return n
  }

  /**
   * Waits (without blocking the event loop) until a message can be read, or
   * the producer closed. For read() loops: `while (await consumer.readable())`.
   * Resolves false once the producer closed and everything was read.
   */
  async readable (options: WaitOptions = {}): Promise<boolean> {
    this.#end.assertOpen()
    const timeout = checkTimeout('timeout', options.timeout)
    if (this.#ring.available) return true
    this.#ring.release()
    if (!this.#end.peerClosed()) {
      const link = options.signal === undefined ? undefined : linkSignals(this.#closer.signal, options.signal)
      try {
        await waitAsync(this.#spec, timeout, link?.signal ?? this.#closer.signal)
      } catch (err) {
        if (this.#end.closed) throw new ShmChannelError('ERR_CHANNEL_CLOSED', 'this consumer is closed')
        throw err
      } finally {
        link?.unlink()
      }
    }
    return this.#ring.available
  }

  /** A message if one is waiting, else undefined. Never waits. */
  tryReceive (): T | undefined {
    const next = this.#next()
    if (next === END) throw ended()
    return next === NOTHING ? undefined : next
  }

  /** The next message, blocking the thread until one comes. Throws ERR_CHANNEL_CLOSED once the producer closed and everything was read. */
  receiveSync (options: { timeout?: number } = {}): T {
    const timeout = checkTimeout('timeout', options.timeout)
    let deadline = -1
    for (;;) {
      const next = this.#next()
      if (next === END) throw ended()
      if (next !== NOTHING) return next
      // The clock is read only once there is something to wait for.
      if (deadline === -1) deadline = performance.now() + timeout
      waitSync(this.#spec, Math.max(0, deadline - performance.now()))
    }
  }

  /** The next message, waiting without blocking the event loop. Rejects with ERR_CHANNEL_CLOSED once the producer closed and everything was read. */
  receive (options: WaitOptions = {}): Promise<T> {
    if (this.#receiving === undefined) {
      // Fast path: a message is already there.
      try {
        if (options.timeout !== undefined) checkTimeout('timeout', options.timeout)
        const next = this.#next()
        if (next === END) return Promise.reject(ended())
        if (next !== NOTHING) return Promise.resolve(next)
      } catch (err) {
        return Promise.reject(err)
      }
    }
    const previous = this.#receiving
    let p: Promise<T>
    let turn: Promise<unknown>
    if (previous === undefined) {
      p = this.#receiveSlow(options)
      turn = p
    } else {
      [p, turn] = this.#receiveAfter(previous, options)
    }
    const tracked: Promise<unknown> = turn.then(() => {}, () => {})
    this.#receiving = tracked
    void tracked.then(() => { if (this.#receiving === tracked) this.#receiving = undefined })
    return p
  }

  /**
   * A receive behind another one waits for its turn, but its timeout and
   * signal run from the call: if either fires first it rejects at once and
   * never takes a message. Returns the receive, and its turn, which ends no
   * sooner than the previous one's, so receives take messages in call order.
   */
  #receiveAfter (previous: Promise<unknown>, options: WaitOptions): [Promise<T>, Promise<unknown>] {
    let turn: Promise<unknown> = previous
    const p = new Promise<T>((resolve, reject) => {
      const timeout = checkTimeout('timeout', options.timeout)
      const deadline = performance.now() + timeout
      const signal = options.signal
      let expired = false
      let timer: ReturnType<typeof setTimeout> | undefined
      const onAbort = (): void => { expire(new AbortError({ cause: signal?.reason })) }
      const cleanup = (): void => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
      }
      const expire = (err: Error): void => {
        expired = true
        cleanup()
        reject(err)
      }
      const start = async (): Promise<void> => {
        if (expired) return
        cleanup()
        try {
          resolve(await this.#receiveSlow(options, deadline))
        } catch (err) {
          reject(err)
        }
      }
      turn = previous.then(start, start)
      if (signal?.aborted === true) return onAbort()
      signal?.addEventListener('abort', onAbort, { once: true })
      if (timeout !== Infinity) timer = setTimeout(() => { expire(new ShmChannelError('ERR_TIMEOUT', `receive timed out after ${timeout} ms`)) }, timeout)
    })
    return [p, turn]
  }

  async #receiveSlow (options: WaitOptions, deadline?: number): Promise<T> {
    const timeout = checkTimeout('timeout', options.timeout)
    deadline ??= performance.now() + timeout
    const link = options.signal === undefined ? undefined : linkSignals(this.#closer.signal, options.signal)
    const signal = link?.signal ?? this.#closer.signal
    try {
      for (;;) {
        const next = this.#next()
        if (next === END) throw ended()
        if (next !== NOTHING) return next
        try {
          await waitAsync(this.#spec, Math.max(0, deadline - performance.now()), signal)
        } catch (err) {
          if (this.#end.closed) throw new ShmChannelError('ERR_CHANNEL_CLOSED', 'this consumer is closed')
          if ((err as ShmChannelError).code === 'ERR_TIMEOUT') throw new ShmChannelError('ERR_TIMEOUT', `receive timed out after ${timeout} ms`)
          throw err
        }
      }
    } finally {
      link?.unlink()
    }
  }

  /** Messages until the producer closes the channel (or this end is closed). */
  async * [Symbol.asyncIterator] (): AsyncIterator<T> {
    for (;;) {
      let value: T
      try {
        value = await this.receive()
      } catch (err) {
        if ((err as ShmChannelError).code === 'ERR_CHANNEL_CLOSED') return
        throw err
      }
      yield value
    }
  }

  /** Closes this end: the producer's sends fail with ERR_CHANNEL_CLOSED from now on. */
  close (): void {
    if (this.#end.closed) return
    this.#ring.release()
    this.#end.close(() => {
      if (Atomics.load(this.#end.header, RingProducer.PARKED_FLAG) !== 0) this.#ring.wakeProducer()
    })
    this.#closer.abort()
  }
}

function ended (): ShmChannelError {
  return new ShmChannelError('ERR_CHANNEL_CLOSED', 'the producer closed the channel and every message was read')
}
