/**
 * The publisher of a topic: writes each message once into a ring that
 * every subscriber reads in place. Under 'block' it waits for the slowest
 * live subscriber; under 'overwrite' it never waits.
 */
import { resolveCodec, type Codec } from '../codecs'
import { ShmChannelError, invalidReturn } from '../errors'
import { checkTimeout } from '../options'
import { wake } from '../platform/futex'
import { checkName, type Region } from '../platform/region'
import { closeEnd, readEnd, END_OPEN, END_STATE } from '../segment/ends'
import { linkSignals } from '../segment/signals'
import { checkWaitSettings, waitAsync, waitSync, type WaitSettingsOptions, type WaitSpec } from '../segment/wait'
import { word } from '../segment/words'
import * as L from './layout'
import { TAIL, TopicRing, TopicWriter } from './ring'
import { checkTopic, freeSubscriber, openTopic, unlinkIfLast, type TopicPolicy, type TopicSegmentOptions } from './segment'
import { Turns } from '../segment/turns'

export interface TopicOptions<T> extends TopicSegmentOptions, WaitSettingsOptions {
  /** How values become bytes: 'json' (default), 'structured', 'utf8', 'bytes', 'msgpack', or your own codec. */
  codec?: Codec<T> | 'json' | 'structured' | 'utf8' | 'bytes' | 'msgpack'
}

export interface PublishOptions {
  /** Milliseconds to wait for the slowest subscriber ('block'); default no limit. ERR_TIMEOUT when it passes. */
  timeout?: number
  signal?: AbortSignal
}

const SUBSCRIBERS_PARKED = word(L.SUBSCRIBERS_PARKED_OFFSET)
const PUBLISHER_PARKED = word(L.PUBLISHER_PARKED_OFFSET)
const RELEASES = word(L.RELEASES_OFFSET)

const forgotten = new FinalizationRegistry<() => void>((close) => { close() })

export class Publisher<T = unknown> {
  readonly #region: Region
  readonly #ring: TopicRing
  readonly #writer: TopicWriter
  readonly #codec: Codec<T>
  readonly #spec: WaitSpec
  readonly #closer = new AbortController()
  readonly #name: string
  readonly #policy: TopicPolicy
  #need = 0
  readonly #turns = new Turns()
  #closed = false
  #corked = false
  /** The room check's look at the cursors, made once. */
  readonly #cursors = (): number => this.#slowest()
  /** Held-back bytes that publish anyway while corked. */
  readonly #corkLimit: number

  private constructor (region: Region, name: string, options: TopicOptions<T>) {
    this.#region = region
    this.#name = name
    const geometry = checkTopic(region.buffer)
    this.#policy = geometry.policy
    this.#ring = new TopicRing(region.buffer, geometry)
    this.#writer = new TopicWriter(this.#ring)
    this.#corkLimit = this.#ring.capacity / 8
    this.#codec = resolveCodec(options.codec)
    const settings = checkWaitSettings(options)
    this.#spec = {
      header: this.#ring.h,
      parkedFlag: PUBLISHER_PARKED,
      waitWord: RELEASES,
      strategy: settings.wait,
      spinMicros: settings.spinMicros,
      peerCheckInterval: settings.peerCheckInterval,
      ready: () => this.#closed || this.#writer.hasRoom(this.#need, this.#cursors),
      // Between sleeps: subscribers that died stop gating (their entries are freed for newcomers).
      checkPeer: () => { this.#sweep() }
    }
    const h = this.#ring.h
    const max = this.#ring.maxSubscribers
    forgotten.register(this, () => { release(region, h, max) }, this)
  }

  /** Opens topic `name` as its publisher, creating it if there is none. ERR_END_TAKEN if a live publisher holds it. */
  static open<T = unknown> (name: string, options: TopicOptions<T> = {}): Publisher<T> {
    checkName(name)
    checkWaitSettings(options)
    resolveCodec(options.codec)
    const { region } = openTopic(name, 'publisher', options)
    try {
      return new Publisher<T>(region, region.name ?? name, options)
    } catch (err) {
      release(region, new Int32Array(region.buffer), 1)
      throw err
    }
  }

  get name (): string { return this.#name }
  get closed (): boolean { return this.#closed }
  /** The topic's policy, as its creator set it. */
  get policy (): TopicPolicy { return this.#policy }
  get capacity (): number { return this.#ring.capacity }

  /** Publishes `value` now if it may ('overwrite': always); false if the slowest subscriber has no room for it ('block'). */
  tryPublish (value: T): boolean {
    this.#assertOpen()
    if (this.#turns.waiting > 0) return false
    return this.#tryWrite(this.#encode(value))
  }

  /** Publishes `value`, waiting for the slowest live subscriber under 'block'. Order of calls is kept. */
  async publish (value: T, options: PublishOptions = {}): Promise<void> {
    this.#assertOpen()
    const payload = this.#encode(value)
    if (this.#turns.waiting === 0 && this.#tryWrite(payload)) return
    const timeout = checkTimeout('timeout', options.timeout)
    await this.#turns.take(async () => { await this.#waitAndWrite(payload, timeout, options.signal) })
  }

  /** Publishes `value`, blocking the thread while the slowest live subscriber has no room (under 'block'). */
  publishSync (value: T, options: { timeout?: number } = {}): void {
    this.#assertOpen()
    const payload = this.#encode(value)
    if (this.#turns.waiting === 0 && this.#tryWrite(payload)) return
    if (this.#turns.waiting > 0) throw new ShmChannelError('ERR_BUSY', 'publishSync while asynchronous publishes wait for room')
    const timeout = checkTimeout('timeout', options.timeout)
    const deadline = performance.now() + timeout
    for (;;) {
      this.#need = this.#writer.need(payload.length)
      waitSync(this.#spec, Math.max(0, deadline - performance.now()))
      this.#assertOpen()
      if (this.#tryWrite(payload)) return
    }
  }

  /**
   * Holds back publishing: messages published from now on become visible
   * to subscribers together at uncork(), or as soon as an eighth of the
   * ring is held back or a publish finds no room. For bursts of tryPublish
   * where one publish (one store subscribers see, at most one wake) for many
   * messages is worth more than the latency of each.
   */
  cork (): void {
    this.#assertOpen()
    this.#corked = true
  }

  /** Publishes what cork() held back and returns to publishing each message. */
  uncork (): void {
    this.#corked = false
    if (!this.#closed) this.#publish()
  }

  /** Closes the publisher (idempotent): subscribers read what was published, then their streams end. */
  close (): void {
    if (this.#closed) return
    this.#publish()
    this.#closed = true
    forgotten.unregister(this)
    this.#closer.abort(new ShmChannelError('ERR_CHANNEL_CLOSED', 'this publisher is closed'))
    release(this.#region, this.#ring.h, this.#ring.maxSubscribers)
  }

  [Symbol.dispose] (): void { this.close() }

  async #waitAndWrite (payload: Uint8Array, timeout: number, user: AbortSignal | undefined): Promise<void> {
    const deadline = performance.now() + timeout
    const { signal, unlink } = user === undefined ? { signal: this.#closer.signal, unlink: () => {} } : linkSignals(this.#closer.signal, user)
    try {
      for (;;) {
        this.#assertOpen()
        if (this.#tryWrite(payload)) return
        this.#need = this.#writer.need(payload.length)
        await waitAsync(this.#spec, Math.max(0, deadline - performance.now()), signal)
      }
    } catch (err) {
      if (this.#closer.signal.aborted) throw this.#closer.signal.reason
      throw err
    } finally {
      unlink()
    }
  }

  #encode (value: T): Uint8Array {
    const encoded = this.#codec.encode(value)
    let payload: Uint8Array
    if (typeof encoded === 'string') payload = Buffer.from(encoded, 'utf8')
    // Copied into the ring as it is: no Buffer view made per message.
    else if (encoded instanceof Uint8Array) payload = encoded
    else throw invalidReturn(`codec ${this.#codec.name}'s encode`, 'a string or a Uint8Array', encoded)
    if (payload.length > this.#ring.maxPayload) {
      throw new ShmChannelError('ERR_MESSAGE_TOO_LARGE', `a message of ${payload.length} bytes is larger than this topic takes (${this.#ring.maxPayload}: a quarter of its capacity, less 16)`)
    }
    return payload
  }

  #tryWrite (payload: Uint8Array): boolean {
    const writer = this.#writer
    if (!this.#ring.overwrite && !writer.hasRoom(writer.need(payload.length), this.#cursors)) {
      // Subscribers waited for must see what is held back, or none would ever make room.
      this.#publish()
      return false
    }
    writer.write(payload)
    if (!this.#corked || writer.unpublished >= this.#corkLimit) this.#publish()
    return true
  }

  #publish (): void {
    if (!this.#writer.publish()) return
    // Loaded after the tail's store: a subscriber that parked before it is
    // woken. Taken down with the wake (subscribers' wakerClears): publishes
    // that follow before the sleepers run make no system call.
    const h = this.#ring.h
    if (Atomics.load(h, SUBSCRIBERS_PARKED) !== 0 && Atomics.exchange(h, SUBSCRIBERS_PARKED, 0) !== 0) wake(h, TAIL)
  }

  /**
   * The cursor of the slowest open subscriber, as a position; the tail when
   * there is none. A cursor more than a ring behind is not one the writer
   * waits for (a subscriber that has not placed itself yet, or lapped).
   */
  #slowest (): number {
    const h = this.#ring.h
    const tail = this.#writer.tail
    let behind = 0
    for (let i = 0; i < this.#ring.maxSubscribers; i++) {
      const entry = L.subscriberEntryOffset(i)
      if (Atomics.load(h, word(entry + END_STATE)) !== END_OPEN) continue
      const lag = (tail - Atomics.load(h, word(entry + L.CURSOR))) >>> 0
      if (lag <= this.#ring.capacity && lag > behind) behind = lag
    }
    return (tail - behind) >>> 0
  }

  #sweep (): void {
    for (let i = 0; i < this.#ring.maxSubscribers; i++) {
      const entry = L.subscriberEntryOffset(i)
      if (readEnd(this.#ring.h, entry).state === END_OPEN) freeSubscriber(this.#ring.h, i)
    }
  }

  #assertOpen (): void {
    if (this.#closed) throw new ShmChannelError('ERR_CHANNEL_CLOSED', 'this publisher is closed')
  }
}

function release (region: Region, h: Int32Array, maxSubscribers: number): void {
  try {
    closeEnd(h, L.PUBLISHER_END_OFFSET)
    // Subscribers asleep on the tail wake and see the close.
    wake(h, TAIL)
    unlinkIfLast(region, h, maxSubscribers)
  } finally {
    region.close()
  }
}
