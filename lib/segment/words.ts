/**
 * How every segment is addressed: 32-bit little-endian words, 64-bit
 * counters as two words (low, then high), and 128-byte lines.
 *
 * A line is two 64-byte cache lines, so the adjacent-line prefetcher cannot
 * couple two of them: a field that one side writes and the other reads on
 * every message gets a line of its own.
 */

/** Bytes between two fields that different sides write. */
export const LINE = 128

/** Index of the 32-bit word at `byteOffset`, for an Int32Array over the segment. */
export function word (byteOffset: number): number {
  return byteOffset >>> 2
}

/**
 * Stores an integer below 2^53 in words `index` (low) and `index + 1` (high)
 * with plain stores: for single-writer values that the writer publishes by a
 * later atomic store, or that readers only report (`>>> 0` is the low word;
 * `%` would be a floating-point remainder).
 */
export function storeU64 (h: Int32Array, index: number, value: number): void {
  const low = value >>> 0
  h[index] = low
  h[index + 1] = (value - low) / 0x100000000
}

/** Reads what storeU64 wrote. Not atomic as a whole: a reader racing the writer may see one word old. */
export function loadU64 (h: Int32Array, index: number): number {
  return (h[index] >>> 0) + (h[index + 1] >>> 0) * 0x100000000
}

/** Writes an integer below 2^53 as a little-endian u64 at `offset` of `bytes`. */
export function writeU64 (bytes: Buffer, offset: number, value: number): void {
  const low = value >>> 0
  bytes.writeUInt32LE(low, offset)
  bytes.writeUInt32LE((value - low) / 0x100000000, offset + 4)
}

/** Reads a little-endian u64 at `offset` of `bytes` as a number (exact below 2^53). */
export function readU64 (bytes: Buffer, offset: number): number {
  return bytes.readUInt32LE(offset) + bytes.readUInt32LE(offset + 4) * 0x100000000
}

/**
 * storeU64 with each half stored sequentially consistent, low then high:
 * neither becomes visible before the stores that precede it, as plain
 * stores may on a weakly ordered CPU. For fields several writers take turns
 * at (an end slot's start time).
 */
export function storeU64Atomic (h: Int32Array, index: number, value: number): void {
  const low = value >>> 0
  Atomics.store(h, index, low)
  Atomics.store(h, index + 1, (value - low) / 0x100000000)
}

/** loadU64 with atomic loads, which the compiler may not merge with others of the same words. Still not atomic as a whole. */
export function loadU64Atomic (h: Int32Array, index: number): number {
  return (Atomics.load(h, index) >>> 0) + (Atomics.load(h, index + 1) >>> 0) * 0x100000000
}
