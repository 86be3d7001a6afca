// Shared by the transports of bench/compare.mjs: payloads, the receiving
// side's counter and checks, round-trip timing, credit windows.
import { Buffer } from 'node:buffer'

export const now = () => performance.now()

/**
 * Sixteen payloads of `size` bytes (kind 'bytes': Buffers, each on its own
 * ArrayBuffer so a structured clone copies only them) or characters (kind
 * 'string'), the j-th starting with byte j (or the character 'a' + j).
 * Message i carries payload i & 15, so the receiver can check order and loss
 * by the first byte without the sender touching the payload.
 */
export function makePayloads (size, kind = 'bytes') {
  const out = []
  for (let j = 0; j < 16; j++) {
    if (kind === 'string') {
      out.push(size === 0 ? '' : String.fromCharCode(97 + j) + 'x'.repeat(size - 1))
    } else {
      const b = Buffer.from(new ArrayBuffer(size))
      b.fill(7)
      if (size > 0) b[0] = j
      out.push(b)
    }
  }
  return out
}

/**
 * Sixteen small objects whose JSON is `size` bytes (at least 24), the j-th
 * with `i: j`: what an application sends when it sends objects.
 */
export function makeObjects (size) {
  const out = []
  for (let j = 0; j < 16; j++) {
    const base = { i: j, type: 'tick', pad: '' }
    const pad = Math.max(0, size - JSON.stringify(base).length)
    out.push({ ...base, pad: 'x'.repeat(pad) })
  }
  return out
}

/** First "byte" of a received message: a byte for binary payloads, char - 'a' for strings, `i` for objects. */
export function firstOf (m) {
  return typeof m === 'string' ? m.charCodeAt(0) - 97 : m instanceof Uint8Array ? m[0] : m.i
}

/**
 * The receiving end's bookkeeping for a throughput run: counts messages and
 * bytes, checks each message's length and first byte, and measures the rate
 * after a warm-up of 20 % of the run (timed from the first message), so JIT
 * warm-up and process start do not count.
 */
export class Receiver {
  constructor (size, seconds) {
    this.size = size
    this.warmMs = seconds * 1000 * 0.2
    this.mask = size >= 4096 ? 0 : 255 // how often to read the clock
    this.n = 0
    this.bad = 0
    this.bytes = 0
    this.tFirst = 0
    this.tWarm = 0
    this.nWarm = 0
  }

  /** One message of `length` whose first byte is `first`. */
  add (length, first) {
    const n = this.n
    if (length !== this.size || (length > 0 && first !== (n & 15))) this.bad++
    this.n = n + 1
    this.bytes += length
    if ((n & this.mask) === 0) this.tick()
  }

  tick () {
    const t = now()
    if (this.tFirst === 0) this.tFirst = t
    else if (this.tWarm === 0 && t - this.tFirst >= this.warmMs) {
      this.tWarm = t
      this.nWarm = this.n
    }
  }

  /** At the end of the stream. */
  result () {
    const t = now()
    const nWarm = this.tWarm === 0 ? 0 : this.nWarm
    const tWarm = this.tWarm === 0 ? this.tFirst : this.tWarm
    const seconds = (t - tWarm) / 1000
    const measured = this.n - nWarm
    return { n: this.n, bad: this.bad, bytes: this.bytes, measured, seconds, msgPerSec: measured / seconds, mbPerSec: measured * this.size / seconds / 1e6 }
  }
}

/** Round-trip bookkeeping: samples in µs after `warmup` untimed trips, up to `trips` or `maxSeconds`. */
export class Trips {
  constructor ({ trips, warmup, maxSeconds, size }) {
    this.trips = trips
    this.warmup = warmup
    this.size = size
    this.deadline = 0
    this.maxMs = maxSeconds * 1000
    this.samples = new Float64Array(trips)
    this.i = -warmup
    this.bad = 0
    this.t = 0
  }

  /** Before sending trip i; false when done. */
  start () {
    if (this.i === 0) this.deadline = now() + this.maxMs
    if (this.i >= this.trips || (this.i > 0 && (this.i & 63) === 0 && now() > this.deadline)) return false
    this.t = now()
    return true
  }

  /** The answer to the current trip came: its length and first byte. */
  done (length, first) {
    const dt = (now() - this.t) * 1000
    if (length !== this.size || (length > 0 && first !== (this.seq() & 15))) this.bad++
    if (this.i >= 0) this.samples[this.i] = dt
    this.i++
  }

  /** The payload index of the current trip. */
  seq () { return this.i + this.warmup }

  result () {
    const n = Math.max(0, this.i)
    return { n, bad: this.bad, samples: Array.from(this.samples.subarray(0, n)) }
  }
}

/** Sizes of a credit window: messages in flight at most, and how often the receiver acks. */
export function creditWindow (size) {
  const window = Math.max(4, Math.min(1024, Math.floor((8 << 20) / Math.max(size, 1))))
  return { window, ackEvery: Math.max(1, window >> 2) }
}

/** Blocks the thread for `ms` milliseconds (the slow consumer of the RSS test). */
const sleeper = new Int32Array(new SharedArrayBuffer(4))
export function sleepSync (ms) { Atomics.wait(sleeper, 0, 0, ms) }

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
