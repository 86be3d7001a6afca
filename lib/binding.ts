/**
 * The one place the native addon is loaded: a prebuild from `prebuilds/`
 * matching this Node's ABI, or the source build in `build/`.
 * Everything the addon exports is typed here and nowhere else.
 */
import path from 'node:path'

/** Opaque handle of one mapping, for `release`. */
export interface MappingHandle { readonly __mapping: unique symbol }

/** Native wait codes; `CANCELLED` only from the asynchronous waiter. */
export const WAIT_OK = 0
export const WAIT_NOT_EQUAL = 1
export const WAIT_TIMED_OUT = 2
export const WAIT_CANCELLED = 3

export interface NativeWaiter {
  /** Starts one wait; `onResult(id, code)` follows on the event loop. */
  wait (id: number, buffer: SharedArrayBuffer, byteOffset: number, expected: number, timeoutMs: number): void
  /** Ends wait `id` soon with WAIT_CANCELLED (or its result, if it already had one). */
  cancel (id: number): void
  /** Stops the waiter's thread; idempotent. */
  close (): void
}

export interface Binding {
  shmOpen (name: string, oflag: number, mode: number): number
  shmUnlink (name: string): void
  allocate (fd: number, size: number, label: string): void
  map (fd: number, size: number, writable: boolean, label: string): [SharedArrayBuffer, MappingHandle]
  release (handle: MappingHandle): void
  wait (buffer: SharedArrayBuffer, byteOffset: number, expected: number, timeoutMs: number): number
  wake (buffer: SharedArrayBuffer, byteOffset: number, count: number): number
  Waiter: new (onResult: (id: number, code: number) => void) => NativeWaiter
  /** Stores `value` at the word when this thread's Node environment ends (a worker's exit or terminate()), unless cancelled. */
  markOnThreadExit (buffer: SharedArrayBuffer, byteOffset: number, value: number): number
  cancelMarkOnThreadExit (id: number): void
  /** Hash of the native sources this binary was built from (scripts/source-hash.js). */
  sourceHash: string
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const load = require('node-gyp-build') as (dir: string) => unknown

/** Directory holding binding.gyp, build/ and prebuilds/ (this file runs from lib/ or dist/). */
export const packageRoot = path.join(__dirname, '..')

export const binding = load(packageRoot) as Binding
