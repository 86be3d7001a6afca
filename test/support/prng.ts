/**
 * Deterministic randomness and self-checking messages, for tests that must
 * fail the same way every time they fail.
 *
 * - `Prng`: mulberry32, a 32-bit seeded generator. Every random test prints
 *   its seed on failure; `seedsFromEnv` lets that one seed be re-run.
 * - Sequence messages: the bytes of message number `seq` of length `n` are a
 *   pure function of (seq, n). From 12 bytes up a message says who it is:
 *
 *     +0  u32  sequence number
 *     +4  u32  length of the whole message
 *     +8  u32  checksum (FNV-1a of bytes 12.. , mixed with seq and length)
 *     +12      pattern bytes, a xorshift32 stream seeded by seq
 *
 *   Shorter messages are the first n bytes of the pattern alone, so they can
 *   only be checked against the sequence number the reader expects.
 *
 * No imports from tap: fixtures running in other processes may use this too.
 */

export class Prng {
  readonly seed: number
  #state: number

  constructor (seed: number) {
    this.seed = seed >>> 0
    this.#state = this.seed
  }

  /** A uniformly distributed u32. */
  u32 (): number {
    // mulberry32 (Tommy Ettinger): full 2^32 period, good enough for tests.
    let t = (this.#state = (this.#state + 0x6d2b79f5) | 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }

  /** A float in [0, 1). */
  float (): number {
    return this.u32() / 0x100000000
  }

  /** An integer in [0, n). */
  int (n: number): number {
    return Math.floor(this.float() * n)
  }

  /** An integer in [min, max], both included. */
  range (min: number, max: number): number {
    return min + this.int(max - min + 1)
  }

  /** True with probability p. */
  chance (p: number): boolean {
    return this.float() < p
  }

  pick<T> (items: readonly T[]): T {
    return items[this.int(items.length)]
  }

  /** One of `choices`, each as likely as its weight. */
  weighted<T> (choices: ReadonlyArray<readonly [number, T]>): T {
    let total = 0
    for (const [weight] of choices) total += weight
    let x = this.float() * total
    for (const [weight, value] of choices) {
      if (x < weight) return value
      x -= weight
    }
    return choices[choices.length - 1][1]
  }

  /** Fills `bytes` with random bytes and returns it. */
  fill<B extends Uint8Array> (bytes: B): B {
    for (let i = 0; i < bytes.length; i++) bytes[i] = this.u32() & 0xff
    return bytes
  }
}

/**
 * The seeds a randomised test runs with: `defaults`, or only the seed in
 * environment variable `variable` when it is set (decimal or 0x-hex), to
 * replay the one a failure printed.
 */
export function seedsFromEnv (variable: string, defaults: readonly number[]): number[] {
  const value = process.env[variable]
  if (value === undefined || value === '') return [...defaults]
  const seed = Number(value)
  if (!Number.isInteger(seed)) throw new Error(`${variable}=${value} is not an integer seed`)
  return [seed >>> 0]
}

/** Size of the self-describing head of a sequence message. */
export const SEQUENCE_HEADER_SIZE = 12

/** Writes the pattern bytes of message `seq` into `out` from its byte `from` on. */
function pattern (seq: number, out: Uint8Array, from: number): void {
  // xorshift32, seeded from seq by a multiplicative hash (never 0).
  let x = (Math.imul(seq ^ 0x5bd1e995, 0x9e3779b1) | 1) >>> 0
  for (let i = 0; i < out.length; i += 4) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    if (i + 3 < from) continue
    for (let k = 0; k < 4 && i + k < out.length; k++) {
      if (i + k >= from) out[i + k] = (x >>> (8 * k)) & 0xff
    }
  }
}

function checksum (bytes: Uint8Array, from: number, seq: number, length: number): number {
  let h = 0x811c9dc5
  for (let i = from; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193)
  h = Math.imul(h ^ seq, 0x01000193)
  h = Math.imul(h ^ length, 0x01000193)
  return h >>> 0
}

/** Message number `seq`, `length` bytes long (see the module comment). */
export function sequenceMessage (seq: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length)
  if (length < SEQUENCE_HEADER_SIZE) {
    pattern(seq, out, 0)
    return out
  }
  pattern(seq, out, SEQUENCE_HEADER_SIZE)
  out.writeUInt32LE(seq >>> 0, 0)
  out.writeUInt32LE(length >>> 0, 4)
  out.writeUInt32LE(checksum(out, SEQUENCE_HEADER_SIZE, seq >>> 0, length >>> 0), 8)
  return out
}

/**
 * What is wrong with `data` as message number `seq`, or null if nothing is.
 * Messages of 12 bytes or more are checked against their own head (length,
 * checksum) and then byte by byte; shorter ones byte by byte only.
 */
export function checkSequenceMessage (data: Uint8Array, seq: number): string | null {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.length)
  if (bytes.length >= SEQUENCE_HEADER_SIZE) {
    const got = bytes.readUInt32LE(0)
    if (got !== seq >>> 0) return `expected message #${seq >>> 0}, got #${got} (${bytes.length} bytes)`
    const length = bytes.readUInt32LE(4)
    if (length !== bytes.length) return `message #${got} says it has ${length} bytes, but ${bytes.length} arrived`
    const sum = checksum(bytes, SEQUENCE_HEADER_SIZE, got, length)
    if (sum !== bytes.readUInt32LE(8)) return `message #${got} (${length} bytes) fails its checksum`
  }
  const expected = sequenceMessage(seq, bytes.length)
  const at = firstDifference(bytes, expected)
  return at === -1 ? null : `message #${seq >>> 0} (${bytes.length} bytes) differs from its pattern at byte ${at}`
}

/** Index of the first byte where `a` and `b` differ (a length difference counts), or -1. */
export function firstDifference (a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  if (Buffer.compare(Buffer.from(a.buffer, a.byteOffset, n), Buffer.from(b.buffer, b.byteOffset, n)) !== 0) {
    for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i
  }
  return a.length === b.length ? -1 : n
}

/**
 * Checks a stream of sequence messages in order: each must be the next number,
 * whole. `check` returns what is wrong (or null) and moves on to the next.
 */
export class SequenceVerifier {
  /** Number of the message expected next. */
  next: number
  /** Messages that passed. */
  passed = 0

  constructor (first = 0) {
    this.next = first
  }

  check (data: Uint8Array): string | null {
    const problem = checkSequenceMessage(data, this.next)
    this.next = (this.next + 1) >>> 0
    if (problem === null) this.passed++
    return problem
  }
}
