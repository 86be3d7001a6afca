/**
 * Shared by test/rpc.test.ts and test/duplex.test.ts: unique service names,
 * the /dev/shm check, and `RpcPeer`, a forked process running one of
 * test/fixtures/rpc-*.ts that answers `call(method, ...args)` and emits
 * events (fixture side: test/fixtures/rpc-harness.ts).
 */
import { fork, type ChildProcess, type ForkOptions } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import type { Test } from 'tap'

import { Region } from '../../lib/index'

/** Every name these tests make starts with this (no slash). */
export const RPC_PREFIX = `shmch-test-${process.pid}-rpc-`

let counter = 0

/** A fresh service (or duplex) name. */
export function serviceName (): string {
  return `${RPC_PREFIX}${++counter}`
}

/** Entries of /dev/shm made by this test process (or its fixtures, under names it gave them) and still there. */
export function shmLeftovers (prefix = RPC_PREFIX): string[] {
  return fs.readdirSync('/dev/shm').filter((entry) => entry.startsWith(prefix)).sort()
}

/** The listener `name` and the channels of its connections (`name.*`), those still in /dev/shm. */
export function serviceLeftovers (name: string): string[] {
  return fs.readdirSync('/dev/shm').filter((entry) => entry === name || entry.startsWith(`${name}.`)).sort()
}

/** The last test of a file: nothing may remain; what a failed test left is removed after being reported. */
export function leavesNothingInDevShm (tap: Test): void {
  tap.test(`leaves no /dev/shm/${RPC_PREFIX}* entries behind`, async (t) => {
    // Peers that were killed are cleaned up after by the survivors, which
    // may take a liveness check interval: give them a moment.
    const deadline = Date.now() + 5000
    while (shmLeftovers().length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
    t.same(shmLeftovers(), [])
    for (const entry of shmLeftovers()) {
      try { Region.unlink(entry) } catch {}
    }
  })
}

/** Resolves when `predicate()` holds, polling; rejects after `ms`. */
export async function until (predicate: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** Settles like `promise`, or rejects if it has not settled within `ms`. */
export async function within<T> (ms: number, promise: Promise<T>, what = 'the operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`${what} did not settle within ${ms} ms`)) }, ms)
  })
  try {
    return await Promise.race([promise, limit])
  } finally {
    clearTimeout(timer)
  }
}

/** How `promise` rejected (or throws if it resolved). */
export async function rejection (promise: Promise<unknown>): Promise<Error & { code?: string, remoteCode?: unknown, remoteName?: string }> {
  try {
    await promise
  } catch (err) {
    return err as Error & { code?: string }
  }
  throw new Error('expected a rejection, but the promise resolved')
}

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

interface Envelope {
  type: string
  id?: number
  value?: unknown
  error?: Record<string, unknown>
}

/**
 * A forked process running test/fixtures/<fixture> under tap's TypeScript
 * loader (it gets this process's execArgv), with advanced IPC
 * serialization. SIGKILLed when `t` ends if still running.
 */
export class RpcPeer {
  readonly child: ChildProcess
  readonly exited: Promise<Exit>
  #stderr = ''
  #exit: Exit | undefined
  #nextId = 0
  readonly #calls = new Map<number, { resolve: (value: unknown) => void, reject: (err: Error) => void }>()
  readonly #events: Envelope[] = []
  readonly #eventWaiters: Array<{ type: string, resolve: (value: unknown) => void }> = []

  /**
   * Forks the fixture. When `t` ends a fixture still running is let go
   * gracefully (it closes what it holds once IPC closes) and SIGKILLed if it
   * has not exited within a few seconds.
   */
  constructor (t: Test, fixture: string, args: string[] = [], options: ForkOptions = {}) {
    this.child = fork(path.join(__dirname, '..', 'fixtures', fixture), args, {
      execArgv: process.execArgv,
      ...options,
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'pipe', 'ipc']
    })
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { this.#stderr += chunk })
    this.child.on('message', (message: Envelope) => { this.#onMessage(message) })
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.#exit = { code, signal }
        for (const [id, call] of this.#calls) {
          this.#calls.delete(id)
          call.reject(this.#gone('a call returned'))
        }
        resolve(this.#exit)
      })
    })
    t.teardown(async () => {
      if (this.#exit !== undefined) return
      if (this.child.connected) this.child.disconnect()
      const timer = setTimeout(() => { this.child.kill('SIGKILL') }, 5000)
      await this.exited
      clearTimeout(timer)
    })
  }

  get pid (): number {
    return this.child.pid ?? -1
  }

  async call<T = unknown> (method: string, ...args: unknown[]): Promise<T> {
    if (this.#exit !== undefined) throw this.#gone(`call ${method}`)
    const id = ++this.#nextId
    return await new Promise<T>((resolve, reject) => {
      this.#calls.set(id, { resolve: resolve as (value: unknown) => void, reject })
      this.child.send({ id, method, args })
    })
  }

  /** The next event of `type` (one that came earlier and was not taken yet counts). */
  async event<T = unknown> (type: string): Promise<T> {
    const index = this.#events.findIndex((e) => e.type === type)
    if (index >= 0) return this.#events.splice(index, 1)[0].value as T
    if (this.#exit !== undefined) throw this.#gone(`event ${type}`)
    return await new Promise<T>((resolve) => {
      this.#eventWaiters.push({ type, resolve: resolve as (value: unknown) => void })
    })
  }

  async kill (signal: NodeJS.Signals = 'SIGKILL'): Promise<Exit> {
    if (this.#exit === undefined) this.child.kill(signal)
    return await this.exited
  }

  /** Lets the fixture finish (it closes what it holds and exits once IPC closes). */
  async end (): Promise<Exit> {
    if (this.child.connected) this.child.disconnect()
    return await this.exited
  }

  get stderr (): string {
    return this.#stderr
  }

  #onMessage (message: Envelope): void {
    if (message.type === 'result') {
      const call = this.#calls.get(message.id ?? -1)
      if (call === undefined) return
      this.#calls.delete(message.id ?? -1)
      if (message.error === undefined) call.resolve(message.value)
      else call.reject(Object.assign(new Error(String(message.error.message)), message.error))
      return
    }
    const index = this.#eventWaiters.findIndex((w) => w.type === message.type)
    if (index >= 0) this.#eventWaiters.splice(index, 1)[0].resolve(message.value)
    else this.#events.push(message)
  }

  #gone (what: string): Error {
    const how = this.#exit?.signal ?? `code ${String(this.#exit?.code)}`
    return Object.assign(new Error(`fixture ended (${how}) before ${what}; stderr:\n${this.#stderr}`), { code: 'FIXTURE_GONE' })
  }
}
