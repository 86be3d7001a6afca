/**
 * The one consumer of a fan-in: reads every producer's records in the order
 * they were claimed, skipping (and counting) claims whose producer died
 * before committing them.
 */
import { resolveCodec, type Codec } from '../codecs'
import { ShmChannelError, invalidType } from '../errors'
import { checkInteger, checkTimeout } from '../options'
import { wake } from '../platform/futex'
import { checkName, type Region } from '../platform/region'
import { closeEnd } from '../segment/ends'
import { linkSignals } from '../segment/signals'
import { checkWaitSettings, waitAsync, waitSync, type WaitSpec } from '../segment/wait'
import { word } from '../segment/words'
import * as L from './layout'
import type { FanInOptions } from './producer'
import { FanInReader, FanInRing } from './ring'
import { checkFanIn, openFanIn, unlinkIfLast } from './segment'

export interface FanInReceiveOptions {
  /** Milliseconds to wait for a message; default no limit. ERR_TIMEOUT when it passes. */
  timeout?: number
  signal?: AbortSignal
}

const PRODUCERS_PARKED = word(L.PRODUCERS_PARKED_OFFSET)
const HEAD = word(L.HEAD_OFFSET)

/** What #take returns when no message is committed at the head. */
const NONE = Symbol('none')

const forgotten = new FinalizationRegistry<() => void>((close) => { close() })

export class FanInConsumer<T = unknown> implements AsyncIterable<T> {
  readonly #region: Region
  readonly #ring: FanInRing
  readonly #reader: FanInReader
  readonly #codec: Codec<T>
  readonly #spec: WaitSpec
  readonly #closer = new AbortController()
  readonly #name: string
  #receiving = false
  #closed = false
  #nextUnblock = 0
  readonly #peerCheckInterval: number

  private constructor (region: Region, name: string, options: FanInOptions<T>) {
    this.#region = region
    this.#name = name
    this.#ring = new FanInRing(region.buffer, checkFanIn(region.buffer))
    this.#reader = new FanInReader(this.#ring)
    this.#codec = resolveCodec(options.codec)
    const settings = checkWaitSettings(options)
    this.#peerCheckInterval = settings.peerCheckInterval
    const h = this.#ring.h
    this.#spec = {
      header: h,
      parkedFlag: word(L.CONSUMER_PARKED_OFFSET),
      waitWord: this.#reader.waitWord,
      strategy: settings.wait,
      spinMicros: settings.spinMicros,
      peerCheckInterval: settings.peerCheckInterval,
      ready: () => this.#closed || this.#reader.ready(),
      // Between sleeps: a claim whose producer died is skipped, and dead producers' entries are freed.
      checkPeer: () => { this.#unblock() }
    }
    forgotten.register(this, () => { release(region, h, this.#ring.maxProducers) }, this)
  }

  /** Opens fan-in `name` as its consumer, creating it if there is none. ERR_END_TAKEN if a live consumer holds it. */
  static open<T = unknown> (name: string, options: FanInOptions<T> = {}): FanInConsumer<T> {
    checkName(name)
    checkWaitSettings(options)
    resolveCodec(options.codec)
    const { region } = openFanIn(name, 'consumer', options)
    try {
      return new FanInConsumer<T>(region, region.name ?? name, options)
    } catch (err) {
      release(region, new Int32Array(region.buffer), 1)
      throw err
    }
  }

  get name (): string { return this.#name }
  get closed (): boolean { return this.#closed }
  get capacity (): number { return this.#ring.capacity }
  /** Claims skipped so far because their producer died between claim and commit. */
  get skipped (): number { return this.#reader.skipped }

  /** The next message if one is committed at the head, else undefined. Never waits. */
  tryReceive (): T | undefined {
    this.#assertOpen()
    const value = this.#take()
    return value === NONE ? undefined : value
  }

  /**
   * Zero-allocation batch read: calls `onMessage(bytes, start, end)` for each
   * message committed now (at most `max`), in claim order, the message
   * being bytes[start, end). `bytes` is the ring itself, valid only during
   * the call: copy what you keep. The room read is handed back to the
   * producers once, at the end. Returns the number of messages; 0 when none
   * is committed at the head (then receive() or receiveSync() waits for the
   * next). The codec is not involved. If onMessage throws, the messages up
   * to and including that one count as read and the error propagates.
   */
  readEach (onMessage: (bytes: Buffer, start: number, end: number) => void, max = Infinity): number {
    this.#assertOpen()
    if (typeof onMessage !== 'function') throw invalidType('onMessage', 'a function', onMessage)
    if (max !== Infinity) checkInteger('max', max, 1, Number.MAX_SAFE_INTEGER)
    const reader = this.#reader
    const bytes = this.#ring.bytes
    let n = 0
    let moved = false
    try {
      while (n < max) {
        let start = reader.peek()
        if (start === -1) {
          if (n > 0 || !this.#mayUnblock()) break
          start = reader.peek()
          if (start === -1) break
        }
        n++
        try {
          onMessage(bytes, start, reader.end)
        } finally {
          if (reader.release()) moved = true
        }
      }
    } finally {
      if (reader.flush() || moved) this.#wakeProducers()
    }
    return n
  }

  /** The next message, waiting for one. */
  async receive (options: FanInReceiveOptions = {}): Promise<T> {
    this.#assertOpen()
    if (this.#receiving) throw new ShmChannelError('ERR_BUSY', 'a receive is already waiting on this consumer')
    const timeout = checkTimeout('timeout', options.timeout)
    const deadline = performance.now() + timeout
    this.#receiving = true
    const user = options.signal
    const { signal, unlink } = user === undefined ? { signal: this.#closer.signal, unlink: () => {} } : linkSignals(this.#closer.signal, user)
    try {
      for (;;) {
        const value = this.#take()
        if (value !== NONE) return value
        this.#spec.waitWord = this.#reader.waitWord
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
    if (this.#receiving) throw new ShmChannelError('ERR_BUSY', 'a receive is already waiting on this consumer')
    const timeout = checkTimeout('timeout', options.timeout)
    const deadline = performance.now() + timeout
    for (;;) {
      const value = this.#take()
      if (value !== NONE) return value
      this.#spec.waitWord = this.#reader.waitWord
      waitSync(this.#spec, Math.max(0, deadline - performance.now()))
      this.#assertOpen()
    }
  }

  /** Every message until close(). */
  async * [Symbol.asyncIterator] (): AsyncGenerator<T, void, undefined> {
    for (;;) {
      if (this.#closed) return
      let value: T
      try {
        value = await this.receive()
      } catch (err) {
        if (this.#closed) return
        throw err
      }
      yield value
    }
  }

  /** Closes the consumer (idempotent): producers' sends fail with ERR_CHANNEL_CLOSED, a pending receive rejects with it. */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    forgotten.unregister(this)
    this.#closer.abort(new ShmChannelError('ERR_CHANNEL_CLOSED', 'this consumer is closed'))
    this.#reader.flush()
    release(this.#region, this.#ring.h, this.#ring.maxProducers)
  }

  [Symbol.dispose] (): void { this.close() }

  /** Decodes and releases the head message; NONE if none is committed. */
  #take (): T | typeof NONE {
    const reader = this.#reader
    let start = reader.peek()
    if (start === -1) {
      // Nothing to read: give producers the room read so far before anything waits.
      if (reader.flush()) this.#wakeProducers()
      if (!this.#mayUnblock()) return NONE
      start = reader.peek()
      if (start === -1) return NONE
    }
    const end = reader.end
    const bytes = this.#ring.bytes
    let value: T
    try {
      value = this.#codec.decodeRange !== undefined ? this.#codec.decodeRange(bytes, start, end) : this.#codec.decode(bytes.subarray(start, end))
    } catch (err) {
      if (reader.release()) this.#wakeProducers()
      throw new ShmChannelError('ERR_DECODE', `codec ${this.#codec.name} could not decode a message: ${(err as Error).message}`, { cause: err })
    }
    if (reader.release()) this.#wakeProducers()
    return value
  }

  /**
   * A claim whose producer died is looked for once per peerCheckInterval
   * (liveness reads /proc): calls that never wait skip it too. True if it was looked for now.
   */
  #mayUnblock (): boolean {
    const now = Date.now()
    if (now < this.#nextUnblock) return false
    this.#nextUnblock = now + this.#peerCheckInterval
    this.#unblock()
    return true
  }

  #wakeProducers (): void {
    // Loaded after the head's store (FanInReader#flush): a producer that
    // parked before it is woken. Taken down with the wake (producers'
    // wakerClears): one system call per round of parking.
    const h = this.#ring.h
    if (Atomics.load(h, PRODUCERS_PARKED) !== 0 && Atomics.exchange(h, PRODUCERS_PARKED, 0) !== 0) wake(h, HEAD)
  }

  #unblock (): void {
    if (this.#reader.flush()) this.#wakeProducers()
    if (this.#reader.resolveStuck() === 'skipped') this.#wakeProducers()
    this.#reader.sweep()
    this.#spec.waitWord = this.#reader.waitWord
  }

  #assertOpen (): void {
    if (this.#closed) throw new ShmChannelError('ERR_CHANNEL_CLOSED', 'this consumer is closed')
  }
}

function release (region: Region, h: Int32Array, maxProducers: number): void {
  try {
    closeEnd(h, L.CONSUMER_END_OFFSET)
    unlinkIfLast(region, h, maxProducers)
  } finally {
    region.close()
  }
}
