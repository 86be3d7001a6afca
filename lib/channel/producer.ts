/**
 * The sending end of a channel. `send` waits for room (backpressure),
 * `trySend` never waits, `sendSync` blocks the thread; claim/commit write
 * in place.
 */
import { AbortError, ShmChannelError, invalidReturn } from '../errors'
import { resolveCodec, type Codec } from '../codecs'
import { checkName } from '../platform/region'
import { checkInteger, checkTimeout } from '../options'
import { linkSignals } from '../segment/signals'
import { waitAsync, waitSync, type WaitSettings, type WaitSpec } from '../segment/wait'
import { adopt, bufferEnd, openEnd, type End } from './end'
import * as L from './layout'
import { settings, type ChannelOptions, type WaitOptions } from './options'
import { RingConsumer, RingProducer } from './ring'
import { checkBuffer } from './segment'

const RESOLVED = Promise.resolve()

/**
 * Deferred publish of awaited sends (docs/performance.md, "Deferred
 * publish"): at most this many messages are held back while sends keep
 * coming, and the batch limit shrinks so that the first message of a batch
 * waits about PUBLISH_DELAY_MS at most.
 */
const MAX_DEFERRED = 64
const PUBLISH_DELAY_MS = 0.025
/** However the batch limit stands, a look at least this many milliseconds (by Date.now) after a batch began publishes. */
const MAX_DEFER_MS = 2

/**
 * Producers of this thread holding sends back. A wait of this thread on a
 * channel (receiveSync, or a receive that finds nothing) publishes them
 * first: a reply that the waiting end expects may depend on them.
 */
const deferring = new Set<{ publishDeferred: () => void }>()

/** Publishes what every producer of this thread holds back. Called before a consumer waits. */
export function publishDeferredSends (): void {
  if (deferring.size === 0) return
  for (const producer of [...deferring]) producer.publishDeferred()
}

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
  readonly #settings: WaitSettings
  readonly #queue: PendingSend[] = []
  #pumping = false
  #publishScheduled = false
  /** Messages written by send()'s fast path; the count at the publish task's last look, and at the last publish. */
  #sends = 0
  #looked = 0
  #sendsPublished = 0
  /** How many sends the publish task may hold back now, and when it last published (ms). */
  #deferLimit = 1
  #lastPublish = 0
  /** Date.now() when the batch now held back began. */
  #deferredSinceMs = 0
  /** publishDeferredSends' handle on this producer. */
  readonly #deferHandle = { publishDeferred: () => { this.#publishDeferred(this.#sends) } }
  #corked = false
  readonly #closer = new AbortController()
  /** Payload size the waiter needs room for; set before each wait. */
  #needed = 0
  readonly #spec: WaitSpec

  private constructor (end: End, options: ChannelOptions<T>) {
    this.#end = end
    this.#ring = new RingProducer(end.buffer)
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
    checkName(name)
    settings(options)
    resolveCodec(options.codec)
    const end = openEnd(name, 'producer', options)
    return adopt(end, () => new Producer<T>(end, options))
  }

  /** The producer end of a channel in a SharedArrayBuffer from `createChannelBuffer`. */
  static fromBuffer<T = unknown> (buffer: SharedArrayBuffer, options: ChannelOptions<T> = {}): Producer<T> {
    checkBuffer(buffer)
    settings(options)
    resolveCodec(options.codec)
    const end = bufferEnd(buffer, 'producer', options)
    return adopt(end, () => new Producer<T>(end, options))
  }

  /** The channel's name, for channels opened by name. */
  get name (): string | undefined { return this.#end.name }
  get closed (): boolean { return this.#end.closed }
  /** Ring size in bytes. */
  get capacity (): number { return this.#ring.capacity }
  /** True when this producer took over the end of a producer that died without closing. */
  get tookOver (): boolean { return this.#end.arrival.takenOver }

  #checkWritable (): void {
    this.#end.assertOpen()
    if (this.#end.peerClosed()) throw new ShmChannelError('ERR_CHANNEL_CLOSED', 'the consumer closed the channel')
    // A dead consumer, as onPeerDeath says; looked at once per peerCheckInterval (lib/channel/end.ts).
    this.#end.checkPeerSoon()
  }

  #encode (value: T): Uint8Array | string {
    const payload = this.#codec.encode(value)
    if (typeof payload === 'string') {
      // Short strings go straight into the ring as UTF-8; long ones become bytes once.
      return payload.length * 3 <= this.#ring.maxRecordPayload ? payload : Buffer.from(payload, 'utf8')
    }
    if (!(payload instanceof Uint8Array)) throw invalidReturn(`codec ${this.#codec.name}'s encode`, 'a string or a Uint8Array', payload)
    return payload
  }

  /** Writes a whole message now if it fits; a fragmented one only if all of it fits. */
  #tryWrite (payload: Uint8Array | string): boolean {
    const ring = this.#ring
    if (typeof payload === 'string') return ring.tryWriteString(payload)
    if (payload.length <= ring.maxRecordPayload) return ring.tryWrite(payload)
    const footprint = ring.footprint(payload.length)
    if (footprint > ring.capacity || footprint > ring.freeBytes) return false
    ring.writeFragments(payload, 0)
    return true
  }

  /**
   * The microtask that publishes what send() wrote: made once, not per tick,
   * and queued as a reaction to a settled promise, which measured cheaper
   * than queueMicrotask (that one wraps each callback for async hooks).
   *
   * With one `await send` per message each message is its own tick, and a
   * publish per message makes every message a cache miss on both sides (the
   * consumer polls the line the publish writes). So while new sends keep
   * coming, the task looks again one microtask later instead of publishing:
   * the sends of a tick are still published together, and a run of awaited
   * sends is published every #deferLimit messages (at most MAX_DEFERRED or
   * an eighth of the ring). It publishes as soon as a look finds no send since
   * the last one (the producer stopped, or awaits something else), when the
   * consumer is parked (it is woken at once), and before any wait for room.
   * An awake consumer is never woken by a system call.
   */
  readonly #publishTask = (): void => {
    if (this.#end.closed) {
      this.#publishScheduled = false
      return
    }
    const sends = this.#sends
    if (sends === this.#sendsPublished) {
      // Published meanwhile (trySend, a wait, publishDeferredSends).
      this.#publishScheduled = false
      return
    }
    const ring = this.#ring
    if (sends !== this.#looked && sends - this.#sendsPublished < this.#deferLimit && ring.unpublishedBytes < ring.capacity >>> 3 && !ring.consumerParked) {
      const nowMs = this.#end.lastCallMs
      if (this.#looked === this.#sendsPublished) {
        this.#deferredSinceMs = nowMs
        deferring.add(this.#deferHandle)
      }
      if (nowMs - this.#deferredSinceMs < MAX_DEFER_MS) {
        this.#looked = sends
        void RESOLVED.then(this.#publishTask)
        return
      }
    }
    this.#publishScheduled = false
    // The run of sends may be over: the next send reads the clock.
    this.#end.readClockNext()
    this.#publishDeferred(sends)
  }

  /**
   * Publishes the deferred sends and sets the next batch limit from the
   * clock, read here, once per publish: a batch whose first message waited
   * longer than PUBLISH_DELAY_MS makes the limit shrink in proportion (to 1,
   * no deferral, for sends further apart than that), a full batch that did
   * not makes it double.
   */
  #publishDeferred (sends: number): void {
    const batch = sends - this.#sendsPublished
    if (batch === 0) return
    if (this.#looked !== this.#sendsPublished) deferring.delete(this.#deferHandle)
    this.#looked = sends
    this.#sendsPublished = sends
    if (this.#end.closed) return
    this.#publish()
    const now = performance.now()
    const elapsed = now - this.#lastPublish
    this.#lastPublish = now
    if (elapsed > PUBLISH_DELAY_MS) {
      this.#deferLimit = Math.max(1, Math.floor(this.#deferLimit * PUBLISH_DELAY_MS / elapsed))
    } else if (batch >= this.#deferLimit && this.#deferLimit < MAX_DEFERRED) {
      this.#deferLimit *= 2
    }
  }

  #schedulePublish (): void {
    this.#sends++
    if (this.#publishScheduled) return
    this.#publishScheduled = true
    void RESOLVED.then(this.#publishTask)
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
  discard (): void {
    this.#ring.discard()
  }

  /** @deprecated Use discard(): the same, under a name that does not suggest an AbortSignal. */
  abort (): void {
    this.discard()
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
   * is written. Sends made in one tick are published together; a run of
   * awaited sends in batches (see #publishTask). `timeout` and
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
        publishDeferredSends()
        try {
          await waitAsync(this.#spec, left, link?.signal ?? this.#closer.signal)
        } catch (err) {
          if (this.#end.closed) throw new ShmChannelError('ERR_CHANNEL_CLOSED', 'this producer is closed')
          const code = (err as ShmChannelError).code
          if (code === 'ERR_PEER_DEAD') throw err
          queue.shift()
          head.reject(code === 'ERR_TIMEOUT' ? new ShmChannelError('ERR_TIMEOUT', `send timed out after ${head.timeout} ms`) : err)
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
      publishDeferredSends()
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
    deferring.delete(this.#deferHandle)
    if (this.#ring.pending) this.#ring.publish()
    this.#end.close(() => {
      // The consumer may be asleep on an empty ring: tell it about the close.
      // Its parked flag is read after our state store, as in RingProducer.publish.
      if (Atomics.load(this.#end.header, RingConsumer.PARKED_FLAG) !== 0) this.#ring.wakeConsumer()
    })
    this.#closer.abort()
    for (const pending of this.#queue.splice(0)) pending.reject(new ShmChannelError('ERR_CHANNEL_CLOSED', 'this producer is closed'))
  }

  /** `using producer = Producer.open(...)`: close() at the end of the scope. */
  [Symbol.dispose] (): void {
    this.close()
  }
}
