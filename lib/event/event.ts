/**
 * A named event: any process may notify it, any process may wait for the
 * next notification. No payload, no queue: notifications that come while
 * nobody waits are counted, and waiters learn only that one came.
 *
 * Why no notification is lost for a waiter. A wait first loads the
 * notification count; it is over once the count differs. It parks through
 * lib/segment/wait.ts (the waiters count goes up before the count is loaded
 * again for the kernel's compare), and notify adds to the count, then loads
 * the waiters count and wakes every sleeper if it is not 0. All four
 * accesses are sequentially consistent: either notify sees the waiter, or
 * the waiter's re-check sees the new count.
 */
import { ShmChannelError } from '../errors'
import { checkBoolean, checkTimeout } from '../options'
import { wake } from '../platform/futex'
import { checkName, type Region } from '../platform/region'
import { createOrAttach, unlinkQuietly, type SegmentKind } from '../segment/attach'
import { invalidSegment, type SegmentIdentity } from '../segment/identity'
import { linkSignals } from '../segment/signals'
import { waitAsync, waitSync, type WaitSpec } from '../segment/wait'
import { word } from '../segment/words'
import * as L from './layout'

export const EVENT: SegmentIdentity = {
  kind: 'event',
  magic: L.MAGIC,
  major: L.VERSION_MAJOR,
  minor: L.VERSION_MINOR,
  headerSize: L.HEADER_SIZE
}

const HOLDERS = word(L.HOLDERS_OFFSET)
const NOTIFICATIONS = word(L.NOTIFICATIONS_OFFSET)
const WAITERS = word(L.WAITERS_OFFSET)

export interface EventOptions {
  /** Permission bits when this call creates the event. Default 0o600. */
  mode?: number
  /** How long to wait for a creator to finish the header, in milliseconds. Default 5000. */
  openTimeout?: number
  /** Join an event whose shared memory object another user owns. Default false: ERR_FOREIGN_OWNER. */
  allowForeignOwner?: boolean
}

export interface EventWaitOptions {
  /** Milliseconds; default no limit. ERR_TIMEOUT when it passes. */
  timeout?: number
  signal?: AbortSignal
}

/**
 * The event as a segment kind: joining counts a holder; an event whose
 * holders all closed is stale (its name is being removed): make a new one.
 */
const EVENT_KIND: SegmentKind = {
  ...EVENT,
  init (buffer) {
    new Int32Array(buffer, 0, L.HEADER_SIZE / 4)[HOLDERS] = 1
  },
  check (buffer) {
    const holders = new Int32Array(buffer, 0, L.HEADER_SIZE / 4)[HOLDERS]
    if (holders < 0) throw invalidSegment(EVENT, `holders count ${holders} is negative`)
  },
  join (buffer) {
    const h = new Int32Array(buffer, 0, L.HEADER_SIZE / 4)
    const holders = Atomics.load(h, HOLDERS)
    if (holders <= 0) return 'stale'
    // Compare-and-swap: a last holder closing at this instant takes it to 0, and then this join must not revive it.
    return Atomics.compareExchange(h, HOLDERS, holders, holders + 1) === holders ? 'joined' : 'retry'
  }
}

/** Events dropped without close(): the holder count goes down then, so the name is not left behind. */
const forgotten = new FinalizationRegistry<() => void>((release) => { release() })

/**
 * A cross-process event under a name. `notify()` wakes every process
 * waiting on it; `wait()`, `waitSync()` and `for await` wait for the next
 * notification without using CPU.
 */
export class Event implements AsyncIterable<number> {
  readonly #region: Region
  readonly #h: Int32Array
  readonly #name: string
  readonly #closer = new AbortController()
  #closed = false

  private constructor (region: Region, name: string) {
    this.#region = region
    this.#name = name
    this.#h = new Int32Array(region.buffer, 0, L.HEADER_SIZE / 4)
    forgotten.register(this, () => { release(region, this.#h) }, this)
  }

  /** Opens event `name`, creating it if there is none. The last holder to close removes the name. */
  static open (name: string, options: EventOptions = {}): Event {
    checkName(name)
    const openTimeout = checkTimeout('openTimeout', options.openTimeout ?? 5000)
    checkBoolean('allowForeignOwner', options.allowForeignOwner)
    const { region } = createOrAttach(name, EVENT_KIND, {
      size: L.HEADER_SIZE,
      mode: options.mode,
      openTimeout,
      allowForeignOwner: options.allowForeignOwner
    })
    return new Event(region, region.name ?? name)
  }

  get name (): string { return this.#name }
  get closed (): boolean { return this.#closed }

  /** Notifications so far, modulo 2^32 (for diagnostics: a waiter compares it, never its value). */
  get notifications (): number {
    this.#assertOpen()
    return Atomics.load(this.#h, NOTIFICATIONS) >>> 0
  }

  /** Wakes every process (and thread) waiting on the event. Returns how many were asleep in the kernel. */
  notify (): number {
    this.#assertOpen()
    Atomics.add(this.#h, NOTIFICATIONS, 1)
    // Loaded after the add (see the module comment): a waiter that parked before it is woken.
    if (Atomics.load(this.#h, WAITERS) === 0) return 0
    return wake(this.#h, NOTIFICATIONS)
  }

  /** Resolves at the next notification after the call. Rejects with ERR_TIMEOUT, AbortError, or ERR_CHANNEL_CLOSED on close(). */
  async wait (options: EventWaitOptions = {}): Promise<void> {
    this.#assertOpen()
    await this.#waitFrom(Atomics.load(this.#h, NOTIFICATIONS), options)
  }

  /** Blocks the thread until the next notification after the call. Throws ERR_TIMEOUT. */
  waitSync (options: { timeout?: number } = {}): void {
    this.#assertOpen()
    const timeout = checkTimeout('timeout', options.timeout)
    const seen = Atomics.load(this.#h, NOTIFICATIONS)
    waitSync(this.#spec(seen), timeout)
  }

  /**
   * One value per wake-up until close(): the notification count. Several
   * notifications between two steps are one step (they coalesce, as a
   * condition variable's do); none that comes after a step is missed.
   */
  async * [Symbol.asyncIterator] (): AsyncGenerator<number, void, undefined> {
    if (this.#closed) return
    let seen = Atomics.load(this.#h, NOTIFICATIONS)
    for (;;) {
      try {
        await this.#waitFrom(seen, {})
      } catch (err) {
        if (this.#closed) return
        throw err
      }
      seen = Atomics.load(this.#h, NOTIFICATIONS)
      yield seen >>> 0
    }
  }

  /** Lets go of the event (pending waits reject with ERR_CHANNEL_CLOSED, iterators end). Idempotent. */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    forgotten.unregister(this)
    this.#closer.abort(new ShmChannelError('ERR_CHANNEL_CLOSED', `event ${this.#name} was closed`))
    release(this.#region, this.#h)
  }

  [Symbol.dispose] (): void { this.close() }

  async #waitFrom (seen: number, options: EventWaitOptions): Promise<void> {
    const timeout = checkTimeout('timeout', options.timeout)
    const user = options.signal
    const { signal, unlink } = user === undefined ? { signal: this.#closer.signal, unlink: () => {} } : linkSignals(this.#closer.signal, user)
    try {
      await waitAsync(this.#spec(seen), timeout, signal)
    } catch (err) {
      if (this.#closer.signal.aborted) throw this.#closer.signal.reason
      throw err
    } finally {
      unlink()
    }
  }

  #spec (seen: number): WaitSpec {
    const h = this.#h
    return {
      header: h,
      parkedFlag: WAITERS,
      parkedCounts: true,
      waitWord: NOTIFICATIONS,
      strategy: 'block',
      spinMicros: 0,
      peerCheckInterval: Infinity,
      ready: () => Atomics.load(h, NOTIFICATIONS) !== seen,
      checkPeer: () => {}
    }
  }

  #assertOpen (): void {
    if (this.#closed) throw new ShmChannelError('ERR_CHANNEL_CLOSED', `event ${this.#name} is closed`)
  }
}

/** Counts this holder out; the last one removes the name (only if it still names this event). */
function release (region: Region, h: Int32Array): void {
  try {
    if (Atomics.sub(h, HOLDERS, 1) === 1) unlinkQuietly(region)
  } finally {
    region.close()
  }
}
