/**
 * A short synchronous sleep, for the few polls that have nothing to wait on:
 * a creator finishing a header it has just made, or sizing an object it has
 * just created (microseconds, in practice). Atomics.wait on a word nobody
 * wakes sleeps without spinning and works on the main thread of Node.
 */
const nobodyWakes = new Int32Array(new SharedArrayBuffer(4))

/** Blocks this thread for `ms` milliseconds. */
export function sleepSync (ms: number): void {
  Atomics.wait(nobodyWakes, 0, 0, ms)
}
