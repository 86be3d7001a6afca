/**
 * Shared by the native-layer tests: names that cannot collide with another
 * run, forked peers from test/fixtures/, and the check that nothing is left
 * behind in /dev/shm.
 */
import { fork, type ChildProcess, type ForkOptions } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'

import { Region } from '../lib/index'

/** Every shared memory name this test process makes starts with this (no slash). */
export const SHM_PREFIX = `shmch-test-${process.pid}-`

let counter = 0

/** A fresh shared memory name (with its slash), unlinked when `t` ends if it still exists. */
export function shmName (t: Test): string {
  const name = `/${SHM_PREFIX}${++counter}`
  t.teardown(() => unlinkIfPresent(name))
  return name
}

/** A fresh empty directory, removed with everything in it when `t` ends. */
export function tempDir (t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), SHM_PREFIX))
  t.teardown(() => { fs.rmSync(dir, { recursive: true, force: true }) })
  return dir
}

/** Closes `region` when `t` ends (closing twice is allowed, so tests may also close it themselves). */
export function closeAtEnd<R extends Region> (t: Test, region: R): R {
  t.teardown(() => { region.close() })
  return region
}

export function unlinkIfPresent (name: string): void {
  try {
    Region.unlink(name)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
}

/** Entries of /dev/shm made by this test process and still there. */
export function shmLeftovers (): string[] {
  return fs.readdirSync('/dev/shm').filter((entry) => entry.startsWith(SHM_PREFIX))
}

/** The last test of every file: each test unlinks its names, so none may remain. */
export function leavesNothingInDevShm (tap: Test): void {
  tap.test('leaves nothing behind in /dev/shm', (t) => {
    t.same(shmLeftovers(), [], `no /dev/shm/${SHM_PREFIX}* entries`)
    t.end()
  })
}

/** Lines of /proc/self/maps that map `needle` (a path, e.g. "/dev/shm/<name>"). */
export function mappingsOf (needle: string): number {
  return fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((line) => line.includes(needle)).length
}

/**
 * Fork options for a fixture that runs as another user (`uid`/`gid`, e.g.
 * 65534 "nobody"): tap's own `execArgv` and `NODE_OPTIONS` minus its
 * process-tracking loader, which writes to `.tap/` when the process exits and
 * that user may not. The TypeScript loader stays.
 */
export function forkAsUser (uid: number, gid: number): ForkOptions {
  const keep = (arg: string): boolean => !arg.includes('@tapjs/processinfo')
  return {
    uid,
    gid,
    execArgv: process.execArgv.filter(keep),
    env: { ...process.env, NODE_OPTIONS: (process.env.NODE_OPTIONS ?? '').split(' ').filter(keep).join(' ') }
  }
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
 * A forked process running one of test/fixtures/*.ts. The fixture answers
 * `call(method, ...args)` (see fixtures/rpc.ts) and may `emit` events along
 * the way; both arrive here in order. stderr is collected for failure reports.
 */
export class Peer {
  readonly child: ChildProcess
  /** Settles when the process ends, with its exit code or the signal that ended it. */
  readonly exited: Promise<Exit>
  #stderr = ''
  #exit: Exit | undefined
  #nextId = 0
  readonly #calls = new Map<number, { resolve: (value: unknown) => void, reject: (err: Error) => void }>()
  readonly #events: Envelope[] = []
  readonly #eventWaiters: Array<{ type: string, resolve: (value: unknown) => void, reject: (err: Error) => void }> = []

  /**
   * Forks `test/fixtures/<fixture>` with this process's `execArgv`, so the
   * TypeScript fixture runs under tap's loader. The process is killed when
   * `t` ends if it is still running.
   */
  constructor (t: Test, fixture: string, args: string[] = [], options: ForkOptions = {}) {
    this.child = fork(path.join(__dirname, 'fixtures', fixture), args, {
      execArgv: process.execArgv,
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      ...options
    })
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { this.#stderr += chunk })
    this.child.on('message', (message: Envelope) => { this.#onMessage(message) })
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.#exit = { code, signal }
        this.#failPending()
        resolve(this.#exit)
      })
    })
    t.teardown(async () => {
      if (this.#exit === undefined) {
        this.child.kill('SIGKILL')
        await this.exited
      }
    })
  }

  /** Runs `method` in the fixture; rejects with the fixture's error (code, errno, syscall kept). */
  async call<T = unknown> (method: string, ...args: unknown[]): Promise<T> {
    if (this.#exit !== undefined) throw this.#gone(`call ${method}`)
    const id = ++this.#nextId
    return await new Promise<T>((resolve, reject) => {
      this.#calls.set(id, { resolve: resolve as (value: unknown) => void, reject })
      this.child.send({ id, method, args })
    })
  }

  /** The next event of `type` emitted by the fixture (including one that came earlier and was not taken yet). */
  async event<T = unknown> (type: string): Promise<T> {
    const index = this.#events.findIndex((e) => e.type === type)
    if (index >= 0) return this.#events.splice(index, 1)[0].value as T
    if (this.#exit !== undefined) throw this.#gone(`event ${type}`)
    return await new Promise<T>((resolve, reject) => {
      this.#eventWaiters.push({ type, resolve: resolve as (value: unknown) => void, reject })
    })
  }

  /** Lets the fixture finish (it exits once its IPC channel closes) and returns how it ended. */
  async end (): Promise<Exit> {
    if (this.child.connected) this.child.disconnect()
    return await this.exited
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

  #failPending (): void {
    for (const [id, call] of this.#calls) {
      this.#calls.delete(id)
      call.reject(this.#gone('a call'))
    }
    for (const waiter of this.#eventWaiters.splice(0)) waiter.reject(this.#gone(`event ${waiter.type}`))
  }

  #gone (what: string): Error {
    const how = this.#exit?.signal ?? `code ${String(this.#exit?.code)}`
    return new Error(`fixture ended (${how}) before ${what}; stderr:\n${this.#stderr}`)
  }
}

/**
 * Calls `wake` every few milliseconds until it reports a waiter woken
 * (returns that count), or `settled()` says the waiter finished without one
 * (returns 0). A peer that reported it is "parked" may not be inside the
 * kernel yet, so a single wake could come too early.
 */
export async function wakeUntilWoken (wake: () => number, settled: () => boolean, limitMs = 10_000): Promise<number> {
  const deadline = Date.now() + limitMs
  while (!settled() && Date.now() < deadline) {
    const woken = wake()
    if (woken > 0) return woken
    await sleep(2)
  }
  return 0
}

/** Tracks whether a promise has settled, for `wakeUntilWoken`. */
export function settledFlag (promise: Promise<unknown>): () => boolean {
  let settled = false
  promise.then(() => { settled = true }, () => { settled = true })
  return () => settled
}
