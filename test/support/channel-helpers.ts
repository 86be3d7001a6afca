/**
 * Shared by the channel tests (test/channel/, test/slow/)
 * and their fixtures (test/fixtures/channel-*.ts):
 *
 * - a worker thread running one end of a channel;
 * - codecs both processes know by name (values crossing the IPC channel
 *   cannot carry functions);
 * - test messages of seeded sizes (the generator of test/support/prng.ts)
 *   that carry their sequence number and a checksum, and the verifier that
 *   tells lost, duplicated, reordered and torn messages apart.
 *
 * This module is loaded by fixtures too, so it imports tap for types only.
 */
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import type { Test } from 'tap'

import type { Codec, Producer } from '../../lib/index'
import { Prng } from './prng'

// ---------------------------------------------------------------------------
// Worker threads

export interface WorkerJob {
  buffer: SharedArrayBuffer
  role: 'producer' | 'consumer'
  spec: StreamSpec
  /** sendSync/receiveSync in the worker, or send/receive. */
  blocking: boolean
  /** Producer: close after the last message. */
  close?: boolean
}

/**
 * Runs test/fixtures/channel-worker.ts in a worker thread (tap's TypeScript
 * loader reaches workers through the inherited execArgv) and resolves with
 * the report it posts; rejects with its error. Terminated when `t` ends.
 */
export async function runChannelWorker<R> (t: Test, job: WorkerJob): Promise<R> {
  const worker = new Worker(path.join(__dirname, '..', 'fixtures', 'channel-worker.ts'), { workerData: job })
  t.teardown(async () => { await worker.terminate() })
  return await new Promise<R>((resolve, reject) => {
    worker.once('message', (message: { report?: R, error?: { message: string, code?: string } }) => {
      if (message.error !== undefined) reject(Object.assign(new Error(message.error.message), { code: message.error.code }))
      else resolve(message.report as R)
    })
    worker.once('error', reject)
    worker.once('exit', (code) => { reject(new Error(`the worker exited with code ${code} before reporting`)) })
  })
}

// ---------------------------------------------------------------------------
// Codecs known to both processes by name

export interface Point { x: number, y: number, label: string }

/** A hand-written codec object: a point as two float64s and a UTF-8 label. */
export const pointCodec: Codec<Point> = {
  name: 'point',
  encode (p) {
    const label = Buffer.from(p.label, 'utf8')
    const out = Buffer.allocUnsafe(16 + label.length)
    out.writeDoubleLE(p.x, 0)
    out.writeDoubleLE(p.y, 8)
    label.copy(out, 16)
    return out
  },
  decode (bytes) {
    return { x: bytes.readDoubleLE(0), y: bytes.readDoubleLE(8), label: bytes.toString('utf8', 16) }
  }
}

/** Strings, but decode refuses any text starting with "poison". */
export const pickyCodec: Codec<string> = {
  name: 'picky',
  encode (value) { return value },
  decode (bytes) {
    const text = bytes.toString('utf8')
    if (text.startsWith('poison')) throw new Error(`refusing ${JSON.stringify(text)}`)
    return text
  }
}

const testCodecs: Record<string, Codec<any>> = { point: pointCodec, picky: pickyCodec }

/** A codec option as it crosses IPC: a built-in name, or the name of one of the codecs above. */
export function codecOption (name: string | undefined): Codec<any> | string | undefined {
  return name !== undefined && name in testCodecs ? testCodecs[name] : name
}

// ---------------------------------------------------------------------------
// Seeded test messages

/** A 32-bit hash of (seed, n): the seed of message n's body bytes, so they follow from its number alone. */
function mix (seed: number, n: number): number {
  let x = (Math.imul(n, 0x9e3779b1) ^ seed) >>> 0
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b)
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35)
  return (x ^ (x >>> 16)) >>> 0
}

/** Bytes of a test message before its body: sequence number (u32) and checksum of the body (u32). */
export const MESSAGE_HEADER = 8

export interface SizeSpec {
  /** Smallest message, at least MESSAGE_HEADER. */
  min: number
  /** Largest common message. */
  max: number
  /** One message in `rareEvery` is drawn from min..rareMax instead (0: never). */
  rareEvery?: number
  rareMax?: number
}

/** Message sizes of the stress runs: mostly 8..256 bytes, one in 64 up to 4 KiB. */
export const STRESS_SIZES: SizeSpec = { min: MESSAGE_HEADER, max: 256, rareEvery: 64, rareMax: 4096 }

/**
 * The sizes of a run's messages, drawn in order from the seeded generator of
 * test/support/prng.ts: sender and receiver each hold one and agree on the
 * size of every message number.
 */
export class MessageSizes {
  readonly #prng: Prng
  readonly #spec: SizeSpec
  #drawn = 0
  #last = 0

  constructor (seed: number, spec: SizeSpec) {
    this.#prng = new Prng(seed)
    this.#spec = spec
  }

  /** The size of message `seq`; undefined for a number before the last one asked (those sizes are gone). */
  of (seq: number): number | undefined {
    if (seq < this.#drawn - 1) return undefined
    while (this.#drawn <= seq) {
      const spec = this.#spec
      const rare = spec.rareEvery !== undefined && spec.rareEvery > 0 && this.#prng.int(spec.rareEvery) === 0
      this.#last = this.#prng.range(spec.min, rare ? (spec.rareMax ?? spec.max) : spec.max)
      this.#drawn++
    }
    return this.#last
  }
}

/** FNV-1a over bytes[start, end). */
export function fnv1a (bytes: Uint8Array, start = 0, end = bytes.length): number {
  let h = 0x811c9dc5
  for (let i = start; i < end; i++) h = Math.imul(h ^ bytes[i], 0x01000193)
  return h >>> 0
}

/**
 * Writes message `seq` of `size` bytes into `out` (at least `size` long):
 * its number, the checksum of its body, and a body of bytes that follow
 * from (seed, seq). Returns the message as a view of `out`.
 */
export function writeMessage (out: Buffer, seed: number, seq: number, size: number): Buffer {
  const message = out.subarray(0, size)
  let x = mix(seed ^ 0x5bd1e995, seq) | 1
  for (let i = MESSAGE_HEADER; i < size; i++) {
    // xorshift32: cheap, and different for every message.
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5
    message[i] = x & 0xff
  }
  message.writeUInt32LE(seq >>> 0, 0)
  message.writeUInt32LE(fnv1a(message, MESSAGE_HEADER), 4)
  return message
}

/** A fresh message, for tests that keep what they send. */
export function makeMessage (seed: number, seq: number, size: number): Buffer {
  return Buffer.from(writeMessage(Buffer.allocUnsafe(Math.max(size, MESSAGE_HEADER)), seed, seq, size))
}

export interface StreamReport {
  /** Messages that arrived. */
  received: number
  /** Arrived whole, with the expected number, size and checksum. */
  intact: number
  /** Numbers skipped (messages never seen). */
  lost: number
  /** A number seen again. */
  duplicated: number
  /** A number lower than one already seen, that was not seen before. */
  reordered: number
  /** Wrong size or checksum, or body bytes not the ones sent. */
  torn: number
  bytes: number
  /** The first few problems, described. */
  problems: string[]
}

/**
 * Checks a stream of test messages as they arrive. Sizes are checked
 * against the seeded size of each number when `spec` is given.
 */
export class StreamVerifier {
  readonly #seed: number
  readonly #sizes: MessageSizes | undefined
  #next = 0
  readonly #report: StreamReport = { received: 0, intact: 0, lost: 0, duplicated: 0, reordered: 0, torn: 0, bytes: 0, problems: [] }
  /** Numbers that were skipped and may still arrive late. */
  readonly #missing = new Set<number>()

  constructor (seed: number, spec?: SizeSpec) {
    this.#seed = seed
    this.#sizes = spec === undefined ? undefined : new MessageSizes(seed, spec)
  }

  check (message: Uint8Array): void {
    const r = this.#report
    r.received++
    r.bytes += message.length
    if (message.length < MESSAGE_HEADER) {
      this.#problem('torn', `a ${message.length}-byte message is shorter than its header`)
      return
    }
    const seq = (message[0] | (message[1] << 8) | (message[2] << 16) | (message[3] << 24)) >>> 0
    const sum = (message[4] | (message[5] << 8) | (message[6] << 16) | (message[7] << 24)) >>> 0
    if (seq === this.#next) {
      this.#next++
    } else if (seq > this.#next) {
      for (let s = this.#next; s < seq && this.#missing.size < 100_000; s++) this.#missing.add(s)
      r.lost += seq - this.#next
      this.#problem(null, `expected message ${this.#next}, got ${seq}`)
      this.#next = seq + 1
    } else if (this.#missing.delete(seq)) {
      r.lost--
      r.reordered++
      this.#problem(null, `message ${seq} arrived after ${this.#next - 1}`)
    } else {
      r.duplicated++
      this.#problem(null, `message ${seq} arrived again`)
    }
    const size = this.#sizes?.of(seq)
    if (size !== undefined) {
      if (message.length !== size) {
        this.#problem('torn', `message ${seq} has ${message.length} bytes, sent ${size}`)
        return
      }
    }
    if (fnv1a(message, MESSAGE_HEADER) !== sum) {
      this.#problem('torn', `message ${seq} (${message.length} bytes) fails its checksum`)
      return
    }
    let x = mix(this.#seed ^ 0x5bd1e995, seq) | 1
    for (let i = MESSAGE_HEADER; i < message.length; i++) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5
      if (message[i] !== (x & 0xff)) {
        this.#problem('torn', `message ${seq} differs from what was sent at byte ${i}`)
        return
      }
    }
    r.intact++
  }

  /** Message numbers seen so far (the next one expected). */
  get next (): number {
    return this.#next
  }

  get report (): StreamReport {
    return { ...this.#report, problems: [...this.#report.problems] }
  }

  #problem (kind: 'torn' | null, text: string): void {
    if (kind === 'torn') this.#report.torn++
    if (this.#report.problems.length < 10) this.#report.problems.push(text)
  }
}

/** The report of a stream of `count` messages that all arrived as sent. */
export function perfectReport (count: number, bytes: number): Omit<StreamReport, 'problems'> & { problems: [] } {
  return { received: count, intact: count, lost: 0, duplicated: 0, reordered: 0, torn: 0, bytes, problems: [] }
}

// ---------------------------------------------------------------------------
// Streams of test messages over a channel (used in both processes and threads)

export interface StreamSpec {
  seed: number
  count: number
  sizes: SizeSpec
}

export interface ProduceOptions {
  /** 'send' (default): trySend, falling back to await send() when full. 'sendSync': trySend, falling back to sendSync(). */
  how?: 'send' | 'sendSync'
  /** Allocate every message afresh instead of reusing one buffer (garbage, as a careless producer makes). */
  fresh?: boolean
  /** Called with the number sent every `every` messages. */
  every?: number
  onProgress?: (sent: number) => void
  /** Close the producer after the last message. */
  close?: boolean
}

export interface ProduceReport {
  count: number
  bytes: number
  /** Times trySend found the ring full and the producer had to wait. */
  timesFull: number
}

interface StreamProducer {
  trySend: (value: Uint8Array) => boolean
  send: (value: Uint8Array) => Promise<void>
  sendSync: (value: Uint8Array) => void
  close: () => void
}

interface StreamConsumer {
  tryReceive: () => Uint8Array | undefined
  receive: (options?: { timeout?: number }) => Promise<Uint8Array>
  receiveSync: (options?: { timeout?: number }) => Uint8Array
}

/** trySend, and false for a message too large to go without waiting (trySend throws ERR_MESSAGE_TOO_LARGE for those). */
function trySend (producer: StreamProducer, message: Uint8Array): boolean {
  try {
    return producer.trySend(message)
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_MESSAGE_TOO_LARGE') return false
    throw err
  }
}

/**
 * The crash and restart fixtures' producer loop: test messages from `first`
 * on, forever (until the process is killed). A third of the small ones are
 * written in place (claim, fill, commit), so kills land between claim and
 * commit too; the rest go by sendSync, some fragmented. `published(n)` runs
 * after each message is published (sendSync and commit publish before they
 * return) with the number after it: what a SIGKILL cannot take back. Now and
 * then a pause of up to 3 ms, so kills land while the producer is idle,
 * waiting or writing.
 */
export function produceUntilKilled (producer: Producer<Uint8Array>, seed: number, spec: SizeSpec, first: number, pauseSeed: number, published: (next: number) => void): never {
  const sizes = new MessageSizes(seed, spec)
  const out = Buffer.allocUnsafe(Math.max(spec.max, spec.rareMax ?? 0))
  const random = new Prng(pauseSeed)
  const sleeper = new Int32Array(new SharedArrayBuffer(4))
  for (let seq = first; ; seq++) {
    const size = sizes.of(seq) as number
    const view = size <= producer.capacity / 4 - 8 && random.chance(0.33) ? producer.claim(size) : null
    if (view !== null) {
      writeMessage(view, seed, seq, size)
      producer.commit()
    } else {
      producer.sendSync(writeMessage(out, seed, seq, size))
    }
    published(seq + 1)
    if (random.chance(0.02)) Atomics.wait(sleeper, 0, 0, random.int(3))
  }
}

/** Sends messages 0..count-1 of `spec`, batching with trySend and waiting (send or sendSync) only when the ring is full. */
export async function produceStream (producer: StreamProducer, spec: StreamSpec, options: ProduceOptions = {}): Promise<ProduceReport> {
  const largest = Math.max(spec.sizes.max, spec.sizes.rareMax ?? 0)
  const scratch = Buffer.allocUnsafe(largest)
  const sizes = new MessageSizes(spec.seed, spec.sizes)
  const every = options.every ?? 0
  let bytes = 0
  let timesFull = 0
  for (let seq = 0; seq < spec.count; seq++) {
    const size = sizes.of(seq) as number
    const message = options.fresh === true ? makeMessage(spec.seed, seq, size) : writeMessage(scratch, spec.seed, seq, size)
    bytes += size
    if (!trySend(producer, message)) {
      timesFull++
      if (options.how === 'sendSync') producer.sendSync(message)
      else await producer.send(message)
    }
    if (every > 0 && (seq + 1) % every === 0) options.onProgress?.(seq + 1)
  }
  if (options.close === true) producer.close()
  return { count: spec.count, bytes, timesFull }
}

export interface ConsumeOptions {
  /** 'receive' (default): tryReceive, falling back to await receive(). 'receiveSync': tryReceive, falling back to receiveSync(). */
  how?: 'receive' | 'receiveSync'
  /** Pause `pauseMs` after every `pauseEvery` messages: a slow reader. */
  pauseEvery?: number
  pauseMs?: number
  /** Give up waiting for a message after this many milliseconds (default 60 s). */
  timeout?: number
}

/** Receives `spec.count` messages and reports what arrived, checked message by message. */
export async function consumeStream (consumer: StreamConsumer, spec: StreamSpec, options: ConsumeOptions = {}): Promise<StreamReport> {
  const verifier = new StreamVerifier(spec.seed, spec.sizes)
  const timeout = options.timeout ?? 60_000
  const pauseEvery = options.pauseEvery ?? 0
  for (let n = 0; n < spec.count; n++) {
    let message = consumer.tryReceive()
    if (message === undefined) {
      message = options.how === 'receiveSync' ? consumer.receiveSync({ timeout }) : await consumer.receive({ timeout })
    }
    verifier.check(message)
    if (pauseEvery > 0 && (n + 1) % pauseEvery === 0) await new Promise((resolve) => setTimeout(resolve, options.pauseMs ?? 1))
  }
  return verifier.report
}
