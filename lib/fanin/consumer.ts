/**
 * The one consumer of a fan-in: reads every producer's records in the order
 * they were claimed, reassembles each producer's fragmented messages
 * (lib/fanin/reassembly.ts), and skips (and counts) claims whose producer
 * died before committing them.
 */
import { resolveCodec, type Codec } from '../codecs'
import { ShmChannelError, invalidType } from '../errors'
import { checkInteger, checkTimeout } from '../options'
import { checkMaxMessageSize } from '../channel/options'
import { wake } from '../platform/futex'
import { checkName, type Region } from '../platform/region'
import { closeEnd } from '../segment/ends'
import { linkSignals } from '../segment/signals'
import { checkWaitSettings, waitAsync, waitSync, type WaitSpec } from '../segment/wait'
import { word } from '../segment/words'
import * as L from './layout'
import type { FanInOptions } from './producer'
import { Reassembly } from './reassembly'
import { FanInReader, FanInRing } from './ring'
import { checkFanIn, openFanIn, unlinkIfLast } from './segment'

export interface FanInConsumerOptions<T> extends FanInOptions<T> {
  /**
   * Largest message this consumer accepts (reassembles), in bytes. Default
   * 64 MiB (DEFAULT_MAX_MESSAGE_SIZE, as a channel's consumer); Infinity for
   * no limit but the largest Buffer. A larger message is refused once with
   * ERR_MESSAGE_TOO_LARGE and the rest of it passed over.
   */
  maxMessageSize?: number
}

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
  readonly #reassembly: Reassembly
  readonly #maxMessageSize: number
  readonly #codec: Codec<T>
  readonly #spec: WaitSpec
  readonly #closer = new AbortController()
  readonly #name: string
  #receiving = false
  #closed = false
  #nextUnblock = 0
  readonly #peerCheckInterval: number

  private constructor (region: Region, name: string, options: FanInConsumerOptions<T>) {
    this.#region = region
    this.#name = name
    this.#ring = new FanInRing(region.buffer, checkFanIn(region.buffer))
    const reader = this.#reader = new FanInReader(this.#ring)
    this.#maxMessageSize = checkMaxMessageSize(options.maxMessageSize)
    this.#reassembly = new Reassembly(this.#ring.maxProducers, this.#maxMessageSize, () => { reader.countDropped() })
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
  static open<T = unknown> (name: string, options: FanInConsumerOptions<T> = {}): FanInConsumer<T> {
    checkName(name)
    checkWaitSettings(options)
    checkMaxMessageSize(options.maxMessageSize)
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
  /** Fragmented messages dropped so far because their producer died (or closed) before their last fragment. */
  get dropped (): number { return this.#reader.dropped }

  /** The next message if one is committed at the head, else undefined. Never waits. */
  tryReceive (): T | undefined {
    this.#assertOpen()
    const value = this.#take()
    return value === NONE ? undefined : value
  }

  /**
   * Zero-allocation batch read: calls `onMessage(bytes, start, end)` for each
   * message committed now (at most `max`), in claim order, the message
   * being bytes[start, end). `bytes` is the ring itself (for a message that
   * came in fragments, a private buffer holding it reassembled), valid only
   * during the call: copy what you keep. The room read is handed back to the
   * producers once, at the end. Returns the number of messages; 0 when none
   * is committed at the head (then receive() or receiveSync() waits for the
   * next). The codec is not involved. If onMessage throws, the messages up
   * to and including that one count as read and the error propagates; so
   * does ERR_MESSAGE_TOO_LARGE for a message over maxMessageSize.
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
        if (reader.type !== L.TYPE_DATA) {
          const message = this.#fragment(start)
          if (message === null) continue
          n++
          onMessage(message, 0, message.length)
          continue
        }
        this.#whole(start)
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

  /** Decodes and releases the head message (reassembled first if it comes in fragments); NONE if none is whole yet. */
  #take (): T | typeof NONE {
    const reader = this.#reader
    for (;;) {
      let start = reader.peek()
      if (start === -1) {
        // Nothing to read: give producers the room read so far before anything waits.
        if (reader.flush()) this.#wakeProducers()
        if (!this.#mayUnblock()) return NONE
        start = reader.peek()
        if (start === -1) return NONE
      }
      if (reader.type !== L.TYPE_DATA) {
        const message = this.#fragment(start)
        if (message !== null) return this.#decode(message, 0, message.length)
        continue
      }
      this.#whole(start)
      try {
        return this.#decode(this.#ring.bytes, start, reader.end)
      } finally {
        if (reader.release()) this.#wakeProducers()
      }
    }
  }

  /** Decodes bytes[start, end); ERR_DECODE if the codec throws. */
  #decode (bytes: Buffer, start: number, end: number): T {
    try {
      return this.#codec.decodeRange !== undefined ? this.#codec.decodeRange(bytes, start, end) : this.#codec.decode(bytes.subarray(start, end))
    } catch (err) {
      throw new ShmChannelError('ERR_DECODE', `codec ${this.#codec.name} could not decode a message: ${(err as Error).message}`, { cause: err })
    }
  }

  /**
   * Before a whole message (DATA record) at `start` is used: a message its
   * producer index left unfinished is dropped; one over maxMessageSize is
   * released and refused (ERR_MESSAGE_TOO_LARGE).
   */
  #whole (start: number): void {
    const reader = this.#reader
    this.#reassembly.whole(reader.producer)
    const length = reader.end - start
    if (length > this.#maxMessageSize) {
      if (reader.release()) this.#wakeProducers()
      throw new ShmChannelError('ERR_MESSAGE_TOO_LARGE', `message of ${length} bytes exceeds maxMessageSize ${this.#maxMessageSize}`)
    }
  }

  /**
   * Copies the fragment at `start` into its producer's message and releases
   * its record at once (a message larger than the ring could not finish
   * otherwise). Returns the message once its last fragment is in.
   */
  #fragment (start: number): Buffer | null {
    const reader = this.#reader
    let message: Buffer | null
    try {
      message = this.#reassembly.fragment(reader.producer, reader.type, this.#ring.bytes, start, reader.end)
      // Counted before the release, whose flush stores the count.
      if (message !== null) reader.countMessage()
    } finally {
      if (reader.release(false)) this.#wakeProducers()
    }
    return message
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
    this.#reassembly.sweep(this.#ring.h, this.#reader.head)
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
