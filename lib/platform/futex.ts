/**
 * Wait and wake on a 32-bit word of shared memory, across processes.
 *
 * The signatures follow `Atomics.wait`/`Atomics.notify`, which only reach
 * threads of the same process: these go through the kernel (a Linux futex
 * without FUTEX_PRIVATE_FLAG), so a `wake` in one process ends a `wait` in
 * any other process that maps the same memory. Like every futex, a wait may
 * end without a matching wake: callers re-check the word and wait again.
 */
import { WAIT_CANCELLED, WAIT_NOT_EQUAL, WAIT_OK, WAIT_TIMED_OUT, binding, type NativeWaiter } from '../binding'
import { AbortError, invalidType, outOfRange } from '../errors'
import { checkTimeout } from '../options'

export type WaitResult = 'ok' | 'not-equal' | 'timed-out'

/** The addon's wait codes (it exports their values) as results. */
const RESULTS: Record<number, WaitResult> = { [WAIT_OK]: 'ok', [WAIT_NOT_EQUAL]: 'not-equal', [WAIT_TIMED_OUT]: 'timed-out' }

function wordOffset (view: unknown, index: unknown): number {
  if (!(view instanceof Int32Array) || !(view.buffer instanceof SharedArrayBuffer)) {
    throw invalidType('view', 'an Int32Array over a SharedArrayBuffer', view)
  }
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= view.length) {
    throw outOfRange('index', `an integer from 0 to ${view.length - 1}`, index)
  }
  return view.byteOffset + index * 4
}

/**
 * Blocks the calling thread while `view[index] === value`, until a `wake` from
 * any process or `timeout` milliseconds (default: no limit). Interrupted
 * system calls are retried against a monotonic deadline.
 */
export function wait (view: Int32Array, index: number, value: number, timeout?: number): WaitResult {
  const offset = wordOffset(view, index)
  const ms = checkTimeout('timeout', timeout)
  return RESULTS[binding.wait(view.buffer as SharedArrayBuffer, offset, value >>> 0, ms)]
}

/** Wakes up to `count` waiters (default: all) on `view[index]`, in any process. Returns how many woke. */
export function wake (view: Int32Array, index: number, count: number = Infinity): number {
  const offset = wordOffset(view, index)
  if (typeof count !== 'number' || Number.isNaN(count) || count < 0) throw outOfRange('count', 'a non-negative number', count)
  return binding.wake(view.buffer as SharedArrayBuffer, offset, Math.min(Math.floor(count), 0x7fffffff))
}

export interface WaitAsyncOptions {
  /** Milliseconds; default no limit. */
  timeout?: number
  /** Ends the wait with an `AbortError`. */
  signal?: AbortSignal
}

/**
 * Like `wait`, without blocking the event loop: a native thread sleeps in the
 * kernel (no CPU while it waits) and the promise settles on the loop. While it
 * is pending it keeps the process alive, as a pending socket read does.
 */
export function waitAsync (view: Int32Array, index: number, value: number, options: WaitAsyncOptions = {}): Promise<WaitResult> {
  const offset = wordOffset(view, index)
  const ms = checkTimeout('timeout', options.timeout)
  const signal = options.signal
  if (signal?.aborted === true) return Promise.reject(new AbortError({ cause: signal.reason }))
  const waiter = PooledWaiter.take()
  return waiter.wait(view.buffer as SharedArrayBuffer, offset, value >>> 0, ms, signal)
}

/**
 * A native waiter and its thread, kept in a small pool between waits so a
 * wait does not pay for a thread start. Idle waiters hold no reference on the
 * event loop.
 */
class PooledWaiter {
  static #idle: PooledWaiter[] = []
  static readonly #maxIdle = 16
  static #ids = 0

  readonly #native: NativeWaiter
  #id = 0
  #settle: ((code: number) => void) | undefined

  private constructor () {
    this.#native = new binding.Waiter((id, code) => { this.#onResult(id, code) })
  }

  static take (): PooledWaiter {
    return PooledWaiter.#idle.pop() ?? new PooledWaiter()
  }

  wait (buffer: SharedArrayBuffer, offset: number, value: number, ms: number, signal: AbortSignal | undefined): Promise<WaitResult> {
    return new Promise((resolve, reject) => {
      const id = ++PooledWaiter.#ids
      const onAbort = (): void => { this.#native.cancel(id) }
      this.#id = id
      this.#settle = (code) => {
        signal?.removeEventListener('abort', onAbort)
        this.#id = 0
        this.#settle = undefined
        this.#recycle()
        if (code === WAIT_CANCELLED) reject(new AbortError({ cause: signal?.reason }))
        else resolve(RESULTS[code])
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#native.wait(id, buffer, offset, value, ms)
    })
  }

  #onResult (id: number, code: number): void {
    // A result for a wait other than the current one is stale: drop it.
    if (id === this.#id) this.#settle?.(code)
  }

  #recycle (): void {
    if (PooledWaiter.#idle.length < PooledWaiter.#maxIdle) PooledWaiter.#idle.push(this)
    else this.#native.close()
  }
}
