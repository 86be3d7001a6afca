/**
 * A producer of a fan-in: one of up to `maxProducers` processes (or
 * threads) writing into one ring that one consumer reads. `send` waits for
 * room, `trySend` never waits, `sendSync` blocks the thread; claim/commit
 * write in place. Each producer's messages arrive in the order it sent them.
 * A message larger than one record (a quarter of the ring, less 8 bytes)
 * goes as fragments, each claimed and committed as a record of its own as
 * room frees: send and sendSync take any size, trySend and claim one record.
 */
import { resolveCodec, type Codec } from '../codecs'
import { ShmChannelError, invalidReturn } from '../errors'
import { checkInteger, checkTimeout } from '../options'
import { wake } from '../platform/futex'
import { checkName, type Region } from '../platform/region'
import { closeEnd, endDead, readEnd, END_CLOSED, END_STATE } from '../segment/ends'
import { linkSignals } from '../segment/signals'
import { checkWaitSettings, waitAsync, waitSync, type WaitSettingsOptions, type WaitSpec } from '../segment/wait'
import { word, writeU64 } from '../segment/words'
import * as L from './layout'
import { FanInRing, FanInWriter } from './ring'
import { checkFanIn, openFanIn, unlinkIfLast, type FanInSegmentOptions } from './segment'
import { Turns } from '../segment/turns'

export interface FanInOptions<T> extends FanInSegmentOptions, WaitSettingsOptions {
  /** How values become bytes: 'json' (default), 'structured', 'utf8', 'bytes', or your own codec. */
  codec?: Codec<T> | 'json' | 'structured' | 'utf8' | 'bytes' | 'msgpack'
}

export interface FanInSendOptions {
  /** Milliseconds to wait for room; default no limit. ERR_TIMEOUT when it passes. */
  timeout?: number
  signal?: AbortSignal
}

const CONSUMER_STATE = word(L.CONSUMER_END_OFFSET + END_STATE)
const CONSUMER_PARKED = word(L.CONSUMER_PARKED_OFFSET)
const PRODUCERS_PARKED = word(L.PRODUCERS_PARKED_OFFSET)
const HEAD = word(L.HEAD_OFFSET)

/** Producers dropped without close(): their entry is closed then. */
const forgotten = new FinalizationRegistry<() => void>((close) => { close() })

/** How far a message has gone: bytes of a fragmented payload written so far (0 until its first fragment). */
interface Progress { offset: number }

/** The progress of every message of one record, which #write never changes: no object made per send. */
const WHOLE: Progress = Object.freeze({ offset: 0 })

export class FanInProducer<T = unknown> {
  readonly #region: Region
  readonly #ring: FanInRing
  readonly #writer: FanInWriter
  readonly #codec: Codec<T>
  readonly #spec: WaitSpec
  readonly #closer = new AbortController()
  readonly #name: string
  #needed = 0
  /** Sends waiting for room, in order: a later send never overtakes them. */
  readonly #turns = new Turns()
  /** The open claim (claim() until commit() or discard()): its start, and the bytes claimed; start -1 if none. */
  #claimStart = -1
  #claimed = 0
  #closed = false

  private constructor (region: Region, index: number, name: string, options: FanInOptions<T>) {
    this.#region = region
    this.#name = name
    this.#ring = new FanInRing(region.buffer, checkFanIn(region.buffer))
    this.#writer = new FanInWriter(this.#ring, index)
    this.#codec = resolveCodec(options.codec)
    const settings = checkWaitSettings(options)
    const h = this.#ring.h
    this.#spec = {
      header: h,
      parkedFlag: PRODUCERS_PARKED,
      wakerClears: true,
      waitWord: word(L.HEAD_OFFSET),
      strategy: settings.wait,
      spinMicros: settings.spinMicros,
      peerCheckInterval: settings.peerCheckInterval,
      ready: () => this.#closed || this.#consumerClosed() || this.#hasRoom(),
      checkPeer: () => { this.#checkConsumer() }
    }
    const entry = L.producerEntryOffset(index)
    forgotten.register(this, () => { release(region, h, entry, this.#ring.maxProducers) }, this)
  }

  /**
   * Opens fan-in `name` as one of its producers, creating it if there is
   * none. ERR_TOO_MANY_ENDS when all `maxProducers` entries are held by live producers.
   */
  static open<T = unknown> (name: string, options: FanInOptions<T> = {}): FanInProducer<T> {
    checkName(name)
    checkWaitSettings(options)
    resolveCodec(options.codec)
    const { region, index } = openFanIn(name, 'producer', options)
    try {
      return new FanInProducer<T>(region, index, region.name ?? name, options)
    } catch (err) {
      release(region, new Int32Array(region.buffer), L.producerEntryOffset(index), 1)
      throw err
    }
  }

  get name (): string { return this.#name }
  get closed (): boolean { return this.#closed }
  /** This producer's index in the fan-in's producer table (what the inspector shows). */
  get index (): number { return this.#writer.index }

  /**
   * Writes `value` now if there is room; false if not (nothing written).
   * One record at most: a message larger than a quarter of the ring less 8
   * bytes throws ERR_MESSAGE_TOO_LARGE (use send() or sendSync()), since
   * other producers may take the room between its fragments.
   */
  trySend (value: T): boolean {
    this.#checkWritable()
    this.#checkNoClaim()
    if (this.#turns.waiting > 0) return false
    const payload = this.#encode(value)
    if (payload.length > this.#ring.maxPayload) {
      throw new ShmChannelError('ERR_MESSAGE_TOO_LARGE', `a message of ${payload.length} bytes goes in fragments (over ${this.#ring.maxPayload}: a quarter of this fan-in's capacity, less 8), which trySend does not write: use send() or sendSync()`)
    }
    return this.#tryWrite(payload)
  }

  /**
   * Writes `value`, waiting for room. Messages of one producer arrive in the
   * order of their send calls. `timeout` and `signal` apply until the
   * message starts going out: a fragmented message that has started is
   * finished (only close() or the consumer's end stops it).
   */
  async send (value: T, options: FanInSendOptions = {}): Promise<void> {
    this.#checkWritable()
    this.#checkNoClaim()
    const payload = this.#encode(value)
    const progress = payload.length > this.#ring.maxPayload ? { offset: 0 } : WHOLE
    if (this.#turns.waiting === 0 && this.#write(payload, progress)) return
    const timeout = checkTimeout('timeout', options.timeout)
    await this.#turns.take(async () => { await this.#waitAndWrite(payload, progress, timeout, options.signal) })
  }

  /** Writes `value`, blocking the thread until there is room (`timeout` as in send()). */
  sendSync (value: T, options: { timeout?: number } = {}): void {
    this.#checkWritable()
    this.#checkNoClaim()
    const payload = this.#encode(value)
    if (this.#turns.waiting > 0) throw new ShmChannelError('ERR_BUSY', 'sendSync while asynchronous sends wait for room')
    const progress = payload.length > this.#ring.maxPayload ? { offset: 0 } : WHOLE
    if (this.#write(payload, progress)) return
    const timeout = checkTimeout('timeout', options.timeout)
    const deadline = performance.now() + timeout
    for (;;) {
      waitSync(this.#spec, progress.offset > 0 ? Infinity : Math.max(0, deadline - performance.now()))
      this.#checkWritable()
      if (this.#write(payload, progress)) return
    }
  }

  /**
   * Zero-copy send: claims room for a message of `length` bytes in the ring
   * and returns a view of it to fill in place, or null when there is no
   * room now (or sends are waiting for room: they go first). Follow with
   * commit() or discard(). The codec is not involved: the consumer gets the
   * bytes. The consumer reads in claim order, so it waits at an open claim,
   * whatever other producers commit after it: commit soon. If this process
   * dies before it commits, the consumer skips the claim and counts it. One
   * record: at most a quarter of the ring less 8 bytes; a larger `length`
   * throws ERR_MESSAGE_TOO_LARGE (send() and sendSync() take larger
   * messages, in fragments).
   */
  claim (length: number): Buffer | null {
    this.#checkWritable()
    this.#checkNoClaim()
    checkInteger('length', length, 0, Number.MAX_SAFE_INTEGER)
    if (length > this.#ring.maxPayload) {
      throw new ShmChannelError('ERR_MESSAGE_TOO_LARGE', `claim() writes one record, at most ${this.#ring.maxPayload} bytes (a quarter of this fan-in's capacity, less 8), not ${length}: send larger messages with send() or sendSync()`)
    }
    if (this.#turns.waiting > 0) return null
    const writer = this.#writer
    const start = writer.claim(length)
    if (start === -1) return null
    this.#claimStart = start
    this.#claimed = length
    const at = writer.payloadOffset(start, length)
    return this.#ring.bytes.subarray(at, at + length)
  }

  /** Sends the claimed view's first `length` bytes (default: all claimed). The view must not be used after. */
  commit (length: number = this.#claimed): void {
    const start = this.#claimStart
    if (start === -1) throw new ShmChannelError('ERR_BUSY', 'no claim is open')
    checkInteger('length', length, 0, this.#claimed)
    this.#claimStart = -1
    this.#writer.commit(start, this.#claimed, length)
    this.#wakeConsumer(start)
  }

  /** Gives up the open claim (idempotent): the consumer passes over its room and never sees a message. */
  discard (): void {
    const start = this.#claimStart
    if (start === -1) return
    this.#claimStart = -1
    this.#writer.discard(start, this.#claimed)
    this.#wakeConsumer(start)
  }

  /** Closes this producer's entry (idempotent), giving up an open claim. Sends still waiting reject with ERR_CHANNEL_CLOSED. */
  close (): void {
    if (this.#closed) return
    this.discard()
    this.#closed = true
    forgotten.unregister(this)
    this.#closer.abort(new ShmChannelError('ERR_CHANNEL_CLOSED', 'this producer is closed'))
    // Wake our own waits (they share the head's futex word with other producers' waits, which just look again).
    wake(this.#ring.h, word(L.HEAD_OFFSET))
    release(this.#region, this.#ring.h, L.producerEntryOffset(this.#writer.index), this.#ring.maxProducers)
  }

  [Symbol.dispose] (): void { this.close() }

  async #waitAndWrite (payload: Uint8Array, progress: Progress, timeout: number, user: AbortSignal | undefined): Promise<void> {
    const deadline = performance.now() + timeout
    const { signal, unlink } = user === undefined ? { signal: this.#closer.signal, unlink: () => {} } : linkSignals(this.#closer.signal, user)
    try {
      for (;;) {
        this.#checkWritable()
        if (this.#write(payload, progress)) return
        // A message under way is finished: its fragments are in the ring already.
        if (progress.offset > 0) await waitAsync(this.#spec, Infinity, this.#closer.signal)
        else await waitAsync(this.#spec, Math.max(0, deadline - performance.now()), signal)
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
    return payload
  }

  /**
   * Writes what there is room for now: a message of one record whole, or
   * the next fragments of a larger one from `progress`. True once all of it
   * is written; otherwise sets what the wait for room looks for.
   */
  #write (payload: Uint8Array, progress: Progress): boolean {
    if (payload.length <= this.#ring.maxPayload) {
      if (this.#tryWrite(payload)) return true
      this.#needed = payload.length
      return false
    }
    progress.offset = this.#writeFragments(payload, progress.offset)
    if (progress.offset === payload.length) return true
    this.#needed = Math.min(this.#ring.maxPayload, payload.length - progress.offset + (progress.offset === 0 ? L.FRAGMENT_TOTAL_SIZE : 0))
    return false
  }

  /**
   * Writes fragments of `payload` (larger than one record) from `offset` as
   * long as there is room, each claimed and committed on its own (others'
   * records may come between them). The first starts with the total length
   * (u64). Returns the new offset: payload.length once the last is committed.
   */
  #writeFragments (payload: Uint8Array, offset: number): number {
    const writer = this.#writer
    const bytes = this.#ring.bytes
    const max = this.#ring.maxPayload
    const total = payload.length
    while (offset < total) {
      const prefix = offset === 0 ? L.FRAGMENT_TOTAL_SIZE : 0
      const chunk = Math.min(max - prefix, total - offset)
      const length = prefix + chunk
      const start = writer.claim(length)
      if (start === -1) break
      const at = writer.payloadOffset(start, length)
      if (prefix !== 0) writeU64(bytes, at, total)
      bytes.set(payload.subarray(offset, offset + chunk), at + prefix)
      offset += chunk
      // The message is larger than one record: its first fragment is never its last.
      writer.commitFragment(start, length, prefix !== 0 ? L.TYPE_FIRST : offset === total ? L.TYPE_LAST : L.TYPE_MIDDLE)
      this.#wakeConsumer(start)
    }
    return offset
  }

  #tryWrite (payload: Uint8Array): boolean {
    const writer = this.#writer
    const start = writer.claim(payload.length)
    if (start === -1) return false
    this.#ring.bytes.set(payload, writer.payloadOffset(start, payload.length))
    writer.commit(start, payload.length, payload.length)
    this.#wakeConsumer(start)
    return true
  }

  /**
   * After the commit of the claim at `start`: wakes the consumer if it
   * parked on it. A parked consumer has stored its head (flush) before its
   * flag, and sleeps on the record at its head: only the commit there ends
   * its wait, so only that producer takes the flag down (one wake per
   * park, not one per commit while it sleeps). Loaded after the commit's
   * store (lib/segment/wait.ts): a consumer that parked before it is woken.
   */
  #wakeConsumer (start: number): void {
    const h = this.#ring.h
    if (Atomics.load(h, CONSUMER_PARKED) === 0 || (Atomics.load(h, HEAD) >>> 0) !== start) return
    if (Atomics.exchange(h, CONSUMER_PARKED, 0) !== 0) wake(h, this.#ring.recordWord(start), 1)
  }

  #hasRoom (): boolean {
    const need = L.alignRecord(this.#needed) * 2
    return this.#ring.capacity - this.#ring.used() >= Math.min(need, this.#ring.capacity)
  }

  #consumerClosed (): boolean {
    return Atomics.load(this.#ring.h, CONSUMER_STATE) === END_CLOSED
  }

  #checkWritable (): void {
    if (this.#closed) throw new ShmChannelError('ERR_CHANNEL_CLOSED', 'this producer is closed')
    if (this.#consumerClosed()) throw new ShmChannelError('ERR_CHANNEL_CLOSED', `the consumer of fan-in ${this.#name} closed it`)
  }

  #checkNoClaim (): void {
    if (this.#claimStart !== -1) throw new ShmChannelError('ERR_BUSY', 'a claim is open: commit or discard it first')
  }

  #checkConsumer (): void {
    const consumer = readEnd(this.#ring.h, L.CONSUMER_END_OFFSET)
    if (endDead(consumer)) throw new ShmChannelError('ERR_PEER_DEAD', `the consumer of fan-in ${this.#name} is gone: its process (pid ${consumer.pid}) died`)
  }
}

/**
 * Closes a producer entry and lets go of the mapping; the last end out
 * removes the name. A claim still open (a producer dropped without close()
 * between claim and commit) stays in the entry: the consumer skips it as a
 * dead producer's.
 */
function release (region: Region, h: Int32Array, entry: number, maxProducers: number): void {
  try {
    closeEnd(h, entry)
    unlinkIfLast(region, h, maxProducers)
  } finally {
    region.close()
  }
}
