/**
 * The C side of the interop tests: builds c/ (the library and
 * c/tools/peer.c) with the machine's `make` and `cc` into a temporary
 * directory, once per test file, and runs shmc-peer as a real process whose
 * stdout lines ("open", "full", "done ...", "result ERR_...") the test
 * waits for. No compiler is a failure, said loudly: CI must build the C library.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Test } from 'tap'

import { FixtureProcess } from '../support/fixture-process'
import { untilParked } from '../support/shm'

const root = path.join(__dirname, '..', '..')

/** Builds c/ for this test file; returns the directory holding shmc-peer, libshmc.a and c-sidecar. */
export function buildC (t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shmc-build-'))
  t.teardown(() => { fs.rmSync(dir, { recursive: true, force: true }) })
  try {
    execFileSync('make', ['-s', '-C', path.join(root, 'c'), `BUILD=${dir}`], { stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer }
    const why = e.code === 'ENOENT' ? 'make is not installed' : String(e.stderr ?? e.message)
    throw new Error(`building the C library failed (the interop tests need make and cc): ${why}`)
  }
  return dir
}

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

/** A running shmc-peer: its lines as they come, and its exit. */
export class CPeer {
  readonly child: ChildProcess
  readonly exited: Promise<Exit>
  readonly #lines: string[] = []
  #waiters: Array<() => void> = []
  #stderr = ''
  #partial = ''

  constructor (t: Test, build: string, args: string[]) {
    this.child = spawn(path.join(build, 'shmc-peer'), args, { stdio: ['ignore', 'pipe', 'pipe'] })
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      const parts = (this.#partial + chunk).split('\n')
      this.#partial = parts.pop() ?? ''
      this.#lines.push(...parts)
      for (const waiter of this.#waiters.splice(0)) waiter()
    })
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { this.#stderr += chunk })
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        for (const waiter of this.#waiters.splice(0)) waiter()
        resolve({ code, signal })
      })
    })
    t.teardown(() => { if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL') })
  }

  get pid (): number {
    return this.child.pid ?? -1
  }

  /** Resolves with the first line starting with `prefix` (and the rest of it); rejects if the process ends first. */
  async line (prefix: string): Promise<string> {
    for (;;) {
      const found = this.#lines.find((l) => l === prefix || l.startsWith(prefix + ' '))
      if (found !== undefined) return found.slice(prefix.length).trim()
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`shmc-peer ended (${this.child.exitCode ?? this.child.signalCode}) before "${prefix}"; it said: ${this.#lines.join(' | ')} ${this.#stderr}`)
      }
      await new Promise<void>((resolve) => { this.#waiters.push(resolve) })
    }
  }

  /** What shmc-peer printed as "done": messages, bytes, ms, times full, wake-ups sent to the consumer and to the producer. */
  async done (): Promise<{ count: number, bytes: number, ms: number, timesFull: number, consumerWakeups: number, producerWakeups: number }> {
    const [count, bytes, ms, timesFull, consumerWakeups, producerWakeups] = (await this.line('done')).split(' ').map(Number)
    return { count, bytes, ms, timesFull, consumerWakeups, producerWakeups }
  }

  async kill (): Promise<Exit> {
    this.child.kill('SIGKILL')
    return await this.exited
  }
}

export type CDone = Awaited<ReturnType<CPeer['done']>>

/** What the Node end (test/fixtures/c-node-end.ts) reports of a stream. */
export interface NodeResult { result: string, count: number, bytes: number, ms: number, problem?: string, timesFull?: number }

export interface StreamSpec {
  seed: number
  count: number
  capacity: number
  wait: 'adaptive' | 'spin' | 'block'
  /**
   * Start this side first and wait until it sleeps (its parked flag is up)
   * before the other opens: a consumer sleeping on an empty ring, or a
   * producer on a ring it filled. The other side then has to wake it.
   */
  parkedFirst?: 'producer' | 'consumer'
}

/** A C producer sends the seeded stream and a Node consumer (another process) checks it; the C end creates the channel unless the consumer is to park first. */
export async function streamCToNode (t: Test, build: string, name: string, spec: StreamSpec): Promise<{ c: CDone, node: NodeResult }> {
  const node = new FixtureProcess(t, 'c-node-end.ts')
  const startProducer = (): CPeer => new CPeer(t, build, ['produce', name, String(spec.seed), String(spec.count), String(spec.capacity), spec.wait])
  let producer: CPeer
  let received: Promise<NodeResult>
  if (spec.parkedFirst === 'consumer') {
    received = node.call<NodeResult>('consume', { name, ...spec })
    await node.event('open')
    await untilParked(name, 'consumer')
    producer = startProducer()
  } else {
    producer = startProducer()
    await producer.line('open')
    if (spec.parkedFirst === 'producer') await untilParked(name, 'producer')
    received = node.call<NodeResult>('consume', { name, ...spec })
  }
  const c = await producer.done()
  const result = await received
  t.same(await producer.exited, { code: 0, signal: null }, 'the C producer exits 0')
  return { c, node: result }
}

/** A Node producer sends the seeded stream and a C consumer checks it, then reports how its next read ended; the Node end creates the channel unless the consumer is to park first. */
export async function streamNodeToC (t: Test, build: string, name: string, spec: StreamSpec): Promise<{ c: CDone, node: NodeResult, end: string }> {
  const node = new FixtureProcess(t, 'c-node-end.ts')
  const startConsumer = (): CPeer => new CPeer(t, build, ['consume', name, String(spec.seed), String(spec.count), String(spec.capacity), spec.wait])
  let consumer: CPeer
  let sent: Promise<NodeResult>
  if (spec.parkedFirst === 'consumer') {
    consumer = startConsumer()
    await consumer.line('open')
    await untilParked(name, 'consumer')
    sent = node.call<NodeResult>('produce', { name, ...spec })
  } else {
    sent = node.call<NodeResult>('produce', { name, ...spec })
    await node.event('open')
    if (spec.parkedFirst === 'producer') await untilParked(name, 'producer')
    consumer = startConsumer()
  }
  const c = await consumer.done()
  const end = await consumer.line('result')
  const result = await sent
  t.same(await consumer.exited, { code: 0, signal: null }, 'the C consumer exits 0')
  return { c, node: result, end }
}

export function mbPerSecond (bytes: number, ms: number): string {
  return (bytes / 1e6 / (ms / 1e3)).toFixed(0)
}
