/**
 * A subscriber of a topic: reads every message published after it joined
 * (or from the oldest still retained), in place, with its own cursor.
 */
import { resolveCodec, type Codec } from '../codecs'
import { ShmChannelError, invalidType, invalidValue } from '../errors'
import { checkInteger, checkTimeout } from '../options'
import { wake } from '../platform/futex'
import { checkName, type Region } from '../platform/region'
import { closeEnd, endDead, readEnd, END_CLOSED, END_STATE } from '../segment/ends'
import { linkSignals } from '../segment/signals'
import { checkWaitSettings, waitAsync, waitSync, type WaitSpec } from '../segment/wait'
import { word } from '../segment/words'
import * as L from './layout'
import type { TopicOptions } from './publisher'
import { LAPPED, NOTHING, TAIL, TopicReader, TopicRing, type OnMessage } from './ring'
import { checkTopic, openTopic, unlinkIfLast } from './segment'

export interface SubscriberOptions<T> extends TopicOptions<T> {
  /** Where a subscriber starts: 'newest' (default: the next message published) or 'oldest' (the oldest message still in the ring). */
  from?: 'newest' | 'oldest'
}

export interface ReceiveOptions {
  /** Milliseconds to wait for a message; default no limit. ERR_TIMEOUT when it passes. */
  timeout?: number
  signal?: AbortSignal
}

/** What a lapped subscriber's read throws: `lost` messages were overwritten before it read them; the next read continues from the oldest retained. */
export class LappedError extends ShmChannelError {
  readonly lost: number
  constructor (lost: number) {
    super('ERR_LAPPED', `the publisher overwrote ${lost} messages this subscriber had not read; it continues from the oldest retained`)
    this.name = 'LappedError'
    this.lost = lost
  }
}

const SUBSCRIBERS_PARKED = word(L.SUBSCRIBERS_PARKED_OFFSET)
const PUBLISHER_PARKED = word(L.PUBLISHER_PARKED_OFFSET)
const RELEASES = word(L.RELEASES_OFFSET)
const PUBLISHER_STATE = word(L.PUBLISHER_END_OFFSET + END_STATE)

const forgotten = new FinalizationRegistry<() => void>((close) => { close() })

export class Subscriber<T = unknown> implements AsyncIterable<T> {
  readonly #region: Region
  readonly #ring: TopicRing
  readonly #reader: TopicReader
  readonly #spec: WaitSpec
  readonly #closer = new AbortController()
  readonly #name: string
  readonly #index: number
  readonly #decode: (start: number, end: number) => unknown
  readonly #out = { value: undefined as unknown }
  #receiving = false
  #closed = false
  /** Messages lost at a lap readEach found after it had handed some out: thrown by the next read. */
  #lapLost = 0
  #nextPeerCheck = 0
  readonly #peerCheckInterval: number

  private constructor (region: Region, index: number, name: string, options: SubscriberOptions<T>) {
    this.#region = region
    this.#name = name
    this.#index = index
    this.#ring = new TopicRing(region.buffer, checkTopic(region.buffer))
    this.#reader = new TopicReader(this.#ring, index, options.from ?? 'newest')
    const codec = resolveCodec(options.codec)
    const bytes = this.#ring.bytes
    this.#decode = codec.decodeRange !== undefined
      ? (start, end) => (codec.decodeRange as NonNullable<Codec<T>['decodeRange']>)(bytes, start, end)
      : (start, end) => codec.decode(bytes.subarray(start, end))
    const settings = checkWaitSettings(options)
    this.#peerCheckInterval = settings.peerCheckInterval
    this.#spec = {
      header: this.#ring.h,
      parkedFlag: SUBSCRIBERS_PARKED,
      wakerClears: true,
      waitWord: TAIL,
      strategy: settings.wait,
      spinMicros: settings.spinMicros,
      peerCheckInterval: settings.peerCheckInterval,
      ready: () => this.#closed || this.#reader.ready() || this.#publisherClosed(),
      checkPeer: () => { this.#checkPublisher() }
    }
    const h = this.#ring.h
    const max = this.#ring.maxSubscribers
    forgotten.register(this, () => { release(region, h, index, max) }, this)
  }

  /** Joins topic `name` as a subscriber, creating the topic if there is none. ERR_TOO_MANY_ENDS if `maxSubscribers` live ones hold it. */
  static open<T = unknown> (name: string, options: SubscriberOptions<T> = {}): Subscriber<T> {
    checkName(name)
    checkWaitSettings(options)
    resolveCodec(options.codec)
    if (options.from !== undefined && options.from !== 'newest' && options.from !== 'oldest') {
      throw invalidValue('from', `must be 'newest' or 'oldest', got ${JSON.stringify(options.from)}`)
    }
    const { region, index } = openTopic(name, 'subscriber', options)
    try {
      return new Subscriber<T>(region, index, region.name ?? name, options)
    } catch (err) {
      release(region, new Int32Array(region.buffer), index, 1)
      throw err
    }
  }

  get name (): string { return this.#name }
  get closed (): boolean { return this.#closed }
  /** Messages this subscriber lost to the 'overwrite' policy so far. */
  get lost (): number { return this.#reader.lost }
  /** Bytes published that this subscriber has not read yet. */
  get lag (): number { return (Atomics.load(this.#ring.h, TAIL) - this.#reader.cursor) >>> 0 }

  /**
   * The next message if one is published, else undefined. Throws
   * ERR_LAPPED (a LappedError with `lost`) once after the publisher
   * overwrote messages this subscriber had not read; ERR_CHANNEL_CLOSED or
   * ERR_PEER_DEAD once everything published was read and the publisher closed or died.
   */
  tryReceive (): T | undefined {
    this.#assertOpen()
    if (this.#take()) return this.#out.value as T
    this.#checkEnded()
    return undefined
  }

  /** The next message, waiting for one. Rejects as tryReceive throws, and with ERR_TIMEOUT. */
  async receive (options: ReceiveOptions = {}): Promise<T> {
    this.#assertOpen()
    if (this.#receiving) throw new ShmChannelError('ERR_BUSY', 'a receive is already waiting on this subscriber')
    const timeout = checkTimeout('timeout', options.timeout)
    const deadline = performance.now() + timeout
    this.#receiving = true
    const user = options.signal
    const { signal, unlink } = user === undefined ? { signal: this.#closer.signal, unlink: () => {} } : linkSignals(this.#closer.signal, user)
    try {
      for (;;) {
        if (this.#take()) return this.#out.value as T
        this.#checkEnded()
        await waitAsync(this.#spec, Math.max(0, deadline - performance.now()), signal)
        this.#assertOpen()
      }
    } catch (err) {
      if (this.#closer.signal.aborted) throw this.#closer.signal.reason
      throw err
    } finally {
      unlink()
      this.#receiving = false
    }
  }

  /** The next message, blocking the thread until one comes. */
  receiveSync (options: { timeout?: number } = {}): T {
    this.#assertOpen()
    // The common case first: a message is there, no clock read, no option check.
    if (!this.#receiving && this.#take()) return this.#out.value as T
    if (this.#receiving) throw new ShmChannelError('ERR_BUSY', 'a receive is already waiting on this subscriber')
    const timeout = checkTimeout('timeout', options.timeout)
    const deadline = performance.now() + timeout
    for (;;) {
      if (this.#take()) return this.#out.value as T
      this.#checkEnded()
      waitSync(this.#spec, Math.max(0, deadline - performance.now()))
      this.#assertOpen()
    }
  }

  /**
   * Zero-copy batch read: calls `onMessage(bytes, start, end)` for each
   * message published now (at most `max`), the message being
   * bytes[start, end). Under 'block', `bytes` is the ring itself (but for
   * the records just after the subscriber joined or was lapped, before the
   * publisher counts it: see TopicReader); under 'overwrite' (where the
   * publisher never waits) it is a private copy checked to be whole before
   * any of its messages is handed out, so a message being overwritten never
   * reaches `onMessage`. Either way valid only during the call: copy what
   * you keep. The position is stored for the publisher once, at the end.
   * Returns the number of messages; 0 when none is waiting (then receive()
   * or receiveSync() waits for the next). The codec is not involved. If onMessage throws, the messages up to and
   * including that one count as read and the error propagates. Throws as
   * tryReceive: a LappedError after a lap (a lap found once some messages
   * were handed out ends the batch, and the next read throws it),
   * ERR_CHANNEL_CLOSED or ERR_PEER_DEAD once everything published was read
   * and the publisher closed or died.
   */
  readEach (onMessage: OnMessage, max = Infinity): number {
    this.#assertOpen()
    if (typeof onMessage !== 'function') throw invalidType('onMessage', 'a function', onMessage)
    if (max !== Infinity) checkInteger('max', max, 1, Number.MAX_SAFE_INTEGER)
    this.#throwLap()
    const reader = this.#reader
    let n = 0
    try {
      for (;;) {
        n += reader.readEach(onMessage, max - n)
        if (!reader.stoppedAtLap) break
        const lost = reader.lastLost
        if (lost === 0) continue
        if (n === 0) throw new LappedError(lost)
        this.#lapLost = lost
        break
      }
    } finally {
      reader.flush()
      this.#released()
    }
    if (n === 0) this.#checkEnded()
    return n
  }

  /**
   * Every message until the publisher closes (then the loop ends) or dies
   * (ERR_PEER_DEAD, after everything it published). Laps do not end the
   * loop: read `subscriber.lost`.
   */
  async * [Symbol.asyncIterator] (): AsyncGenerator<T, void, undefined> {
    for (;;) {
      if (this.#closed) return
      let value: T
      try {
        value = await this.receive()
      } catch (err) {
        const code = (err as ShmChannelError).code
        if (code === 'ERR_LAPPED') continue
        if (this.#closed || code === 'ERR_CHANNEL_CLOSED') return
        throw err
      }
      yield value
    }
  }

  /** Leaves the topic (idempotent): this subscriber stops gating the publisher at once, and its entry is free for another. */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    forgotten.unregister(this)
    this.#closer.abort(new ShmChannelError('ERR_CHANNEL_CLOSED', 'this subscriber is closed'))
    release(this.#region, this.#ring.h, this.#index, this.#ring.maxSubscribers)
  }

  [Symbol.dispose] (): void { this.close() }

  /** Reads the next message into #out; true if there was one. Throws a LappedError after a lap. */
  #take (): boolean {
    this.#throwLap()
    const result = this.#reader.read(this.#decode, this.#out)
    if (result === NOTHING) {
      // Caught up: the cursor goes out before anything waits (the publisher may wait for it).
      this.#reader.flush()
      this.#released()
      return false
    }
    this.#released()
    if (result === LAPPED) {
      const lost = this.#reader.lastLost
      if (lost > 0) throw new LappedError(lost)
      return this.#take()
    }
    return true
  }

  #throwLap (): void {
    const lost = this.#lapLost
    if (lost === 0) return
    this.#lapLost = 0
    throw new LappedError(lost)
  }

  /**
   * A publisher parked (under 'block') may wait for this cursor: store it,
   * then wake the publisher, once (the subscriber that takes the flag down
   * wakes it). Loaded after every read, and after the cursor's store when
   * caught up: a publisher that parked before that store is woken, and one
   * that parks after it sees the cursor in its re-check.
   */
  #released (): void {
    const h = this.#ring.h
    if (Atomics.load(h, PUBLISHER_PARKED) === 0) return
    this.#reader.flush()
    if (Atomics.exchange(h, PUBLISHER_PARKED, 0) !== 0) {
      Atomics.add(h, RELEASES, 1)
      wake(h, RELEASES)
    }
  }

  #publisherClosed (): boolean {
    return Atomics.load(this.#ring.h, PUBLISHER_STATE) === END_CLOSED
  }

  /**
   * With nothing left to read: the stream ends if the publisher closed, or
   * died (that looks at /proc: once per peerCheckInterval, here and between
   * the slices of a wait).
   */
  #checkEnded (): void {
    if (this.#publisherClosed() && !this.#reader.ready()) throw new ShmChannelError('ERR_CHANNEL_CLOSED', `the publisher of topic ${this.#name} closed it`)
    const t = Date.now()
    if (t < this.#nextPeerCheck) return
    this.#nextPeerCheck = t + this.#peerCheckInterval
    this.#checkPublisher()
  }

  #checkPublisher (): void {
    const publisher = readEnd(this.#ring.h, L.PUBLISHER_END_OFFSET)
    if (endDead(publisher) && !this.#reader.ready()) {
      throw new ShmChannelError('ERR_PEER_DEAD', `the publisher of topic ${this.#name} is gone: its process (pid ${publisher.pid}) died`)
    }
  }

  #assertOpen (): void {
    if (this.#closed) throw new ShmChannelError('ERR_CHANNEL_CLOSED', 'this subscriber is closed')
  }
}

function release (region: Region, h: Int32Array, index: number, maxSubscribers: number): void {
  try {
    closeEnd(h, L.subscriberEntryOffset(index))
    // A publisher waiting for this subscriber looks again.
    Atomics.add(h, RELEASES, 1)
    wake(h, RELEASES)
    unlinkIfLast(region, h, maxSubscribers)
  } finally {
    region.close()
  }
}
