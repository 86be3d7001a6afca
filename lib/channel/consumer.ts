/**
 * The receiving end of a channel. `receive` waits without blocking the
 * event loop, `tryReceive` never waits, `receiveSync` blocks the thread;
 * read/release and readEach read in place.
 */
import { AbortError, ShmChannelError, invalidType } from '../errors'
import { resolveCodec, type Codec } from '../codecs'
import { checkName } from '../platform/region'
import { checkInteger, checkTimeout } from '../options'
import { linkSignals } from '../segment/signals'
import { waitAsync, waitSync, type WaitSettings, type WaitSpec } from '../segment/wait'
import { adopt, bufferEnd, openEnd, type End } from './end'
import { checkMaxMessageSize, settings, type ConsumerOptions, type WaitOptions } from './options'
import { publishDeferredSends } from './producer'
import { ASSEMBLED, NONE, RingConsumer, RingProducer } from './ring'
import { checkBuffer } from './segment'

/** What #next returns when no message is waiting (NOTHING), and once the producer closed and all was read (END). */
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
  readonly #settings: WaitSettings
  readonly #releaseBatch: number
  readonly #closer = new AbortController()
  #receiving: Promise<unknown> | undefined
  /**
   * Receives that have not taken their message (or failed) yet. Counted down
   * in the code that settles each one, before its caller's continuation
   * runs, so the receive that follows a slow one takes the fast path when a
   * message is waiting (#receiving is cleared only some microtasks later).
   */
  #pending = 0
  readonly #spec: WaitSpec

  private constructor (end: End, options: ConsumerOptions<T>) {
    this.#end = end
    const max = checkMaxMessageSize(options.maxMessageSize)
    this.#ring = new RingConsumer(end.buffer, max)
    if (end.arrival.takenOver) this.#ring.resumeAfterTakeover()
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
    checkName(name)
    settings(options)
    resolveCodec(options.codec)
    checkMaxMessageSize(options.maxMessageSize)
    const end = openEnd(name, 'consumer', options)
    return adopt(end, () => new Consumer<T>(end, options))
  }

  /** The consumer end of a channel in a SharedArrayBuffer from `createChannelBuffer`. */
  static fromBuffer<T = unknown> (buffer: SharedArrayBuffer, options: ConsumerOptions<T> = {}): Consumer<T> {
    checkBuffer(buffer)
    settings(options)
    resolveCodec(options.codec)
    checkMaxMessageSize(options.maxMessageSize)
    const end = bufferEnd(buffer, 'consumer', options)
    return adopt(end, () => new Consumer<T>(end, options))
  }

  get name (): string | undefined { return this.#end.name }
  get closed (): boolean { return this.#end.closed }
  get capacity (): number { return this.#ring.capacity }
  /**
   * When this consumer took over from a dead one: how many messages that one
   * had read but not released. They are the first this consumer receives
   * (delivered again: at-least-once). 0 for a consumer that did not take over.
   */
  get redelivered (): number { return this.#end.arrival.redelivered }
  /** True when this consumer took over the end of a consumer that died without closing. */
  get tookOver (): boolean { return this.#end.arrival.takenOver }

  /** The next message, NOTHING when none is waiting, END once the producer closed and all was read. */
  #next (): T | typeof NOTHING | typeof END {
    this.#end.assertOpen()
    const ring = this.#ring
    // Batch the hand-back of space of the messages already returned, never
    // the one about to be: it stays unreleased until the next call, so a
    // consumer that takes over from this one, dead, delivers it again.
    if (ring.unreleased >= this.#releaseBatch) ring.release()
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
      publishDeferredSends()
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
      publishDeferredSends()
      waitSync(this.#spec, Math.max(0, deadline - performance.now()))
    }
  }

  /** The next message, waiting without blocking the event loop. Rejects with ERR_CHANNEL_CLOSED once the producer closed and everything was read. */
  receive (options: WaitOptions = {}): Promise<T> {
    if (this.#pending === 0) {
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
    const previous = this.#pending === 0 ? undefined : this.#receiving
    this.#pending++
    let counted = true
    const done = (): void => {
      if (!counted) return
      counted = false
      this.#pending--
    }
    let p: Promise<T>
    let turn: Promise<unknown>
    if (previous === undefined) {
      p = this.#receiveSlow(options, done)
      turn = p
    } else {
      [p, turn] = this.#receiveAfter(previous, options, done)
    }
    // However this receive ends, it stops counting (done is idempotent).
    void turn.then(done, done)
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
  #receiveAfter (previous: Promise<unknown>, options: WaitOptions, done: () => void): [Promise<T>, Promise<unknown>] {
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
        done()
        cleanup()
        reject(err)
      }
      const start = async (): Promise<void> => {
        if (expired) return
        cleanup()
        try {
          resolve(await this.#receiveSlow(options, done, deadline))
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

  /** Waits for and takes a message; calls `done` once it has (or has failed), before its promise settles. */
  async #receiveSlow (options: WaitOptions, done: () => void, deadline?: number): Promise<T> {
    let link: ReturnType<typeof linkSignals> | undefined
    try {
      const timeout = checkTimeout('timeout', options.timeout)
      deadline ??= performance.now() + timeout
      link = options.signal === undefined ? undefined : linkSignals(this.#closer.signal, options.signal)
      const signal = link?.signal ?? this.#closer.signal
      for (;;) {
        const next = this.#next()
        if (next === END) throw ended()
        if (next !== NOTHING) return next
        publishDeferredSends()
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
      done()
    }
  }

  /**
   * Messages until the producer closes the channel (or this end is closed).
   * A hand-written iterator, not an async generator: while messages are
   * waiting, each next() reads one straight from the ring and returns an
   * already-settled promise, so a `for await` loop drains the ring without a
   * wait, a timer or a system call; only an empty ring goes through receive().
   * It ends (done) on ERR_CHANNEL_CLOSED; after it ends or throws, next()
   * stays done, as a generator's does.
   */
  [Symbol.asyncIterator] (): AsyncIterator<T> {
    let finished = false
    const done = (): IteratorReturnResult<undefined> => {
      finished = true
      return { done: true, value: undefined }
    }
    const fail = (err: unknown): IteratorReturnResult<undefined> => {
      if ((err as ShmChannelError).code === 'ERR_CHANNEL_CLOSED') return done()
      finished = true
      throw err
    }
    return {
      next: (): Promise<IteratorResult<T>> => {
        if (finished) return Promise.resolve({ done: true, value: undefined })
        // A receive() still pending goes first: messages keep call order.
        if (this.#pending === 0) {
          try {
            const next = this.#next()
            if (next === END) return Promise.resolve(done())
            if (next !== NOTHING) return Promise.resolve({ done: false, value: next })
          } catch (err) {
            try {
              return Promise.resolve(fail(err))
            } catch (thrown) {
              return Promise.reject(thrown)
            }
          }
        }
        return this.receive().then((value) => ({ done: false, value }), fail)
      },
      return: (): Promise<IteratorResult<T>> => Promise.resolve(done())
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

  /** `using consumer = Consumer.open(...)`: close() at the end of the scope. */
  [Symbol.dispose] (): void {
    this.close()
  }
}

function ended (): ShmChannelError {
  return new ShmChannelError('ERR_CHANNEL_CLOSED', 'the producer closed the channel and every message was read')
}
