/**
 * A forked process running test/fixtures/<fixture>, driven over IPC: the
 * fixture answers `call(method, ...args)` (fixture side:
 * test/fixtures/harness.ts) and may emit events
 * along the way; both arrive here in order. It runs under tap's TypeScript
 * loader because it gets this process's `execArgv`. Test helpers build on
 * it: `Peer` and `ChannelPeer` (support/peers.ts),
 * `RpcPeer` (support/rpc-peer.ts).
 */
import { fork, type ChildProcess, type ForkOptions } from 'node:child_process'
import path from 'node:path'
import type { Test } from 'tap'

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

export interface FixtureOptions extends ForkOptions {
  /**
   * When the test ends with the fixture still running: false (default)
   * SIGKILLs it; true lets it go gracefully (it closes what it holds once
   * IPC closes) and SIGKILLs it only if it has not exited within 5 s.
   */
  gracefulTeardown?: boolean
}

interface Envelope {
  type: string
  id?: number
  value?: unknown
  error?: Record<string, unknown>
}

export class FixtureProcess {
  readonly child: ChildProcess
  /** Settles when the process ends, with its exit code or the signal that ended it. */
  readonly exited: Promise<Exit>
  #stderr = ''
  #exit: Exit | undefined
  #nextId = 0
  readonly #calls = new Map<number, { resolve: (value: unknown) => void, reject: (err: Error) => void }>()
  readonly #events: Envelope[] = []
  readonly #eventWaiters: Array<{ type: string, resolve: (value: unknown) => void, reject: (err: Error) => void }> = []

  /** IPC uses `serialization: 'advanced'` unless `options` says otherwise: Maps, Sets, BigInts, Buffers and typed arrays cross intact. */
  constructor (t: Test, fixture: string, args: string[] = [], options: FixtureOptions = {}) {
    const { gracefulTeardown = false, ...forkOptions } = options
    this.child = fork(path.join(__dirname, '..', 'fixtures', fixture), args, {
      execArgv: process.execArgv,
      serialization: 'advanced',
      ...forkOptions,
      stdio: ['ignore', 'inherit', 'pipe', 'ipc']
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
      if (this.#exit !== undefined) return
      if (!gracefulTeardown) {
        this.child.kill('SIGKILL')
        await this.exited
        return
      }
      if (this.child.connected) this.child.disconnect()
      const timer = setTimeout(() => { this.child.kill('SIGKILL') }, 5000)
      await this.exited
      clearTimeout(timer)
    })
  }

  get pid (): number {
    return this.child.pid ?? -1
  }

  /** What the fixture wrote to stderr so far. */
  get stderr (): string {
    return this.#stderr
  }

  /** Runs `method` in the fixture; rejects with the fixture's error (name, message, code, errno, syscall kept). */
  async call<T = unknown> (method: string, ...args: unknown[]): Promise<T> {
    if (this.#exit !== undefined) throw this.#gone(`call ${method}`)
    const id = ++this.#nextId
    return await new Promise<T>((resolve, reject) => {
      this.#calls.set(id, { resolve: resolve as (value: unknown) => void, reject })
      this.child.send({ id, method, args })
    })
  }

  /** The next event of `type` the fixture emitted (one that came earlier and was not taken yet counts). */
  async event<T = unknown> (type: string): Promise<T> {
    const index = this.#events.findIndex((e) => e.type === type)
    if (index >= 0) return this.#events.splice(index, 1)[0].value as T
    if (this.#exit !== undefined) throw this.#gone(`event ${type}`)
    return await new Promise<T>((resolve, reject) => {
      this.#eventWaiters.push({ type, resolve: resolve as (value: unknown) => void, reject })
    })
  }

  /** Kills the process with `signal` and waits for it to be gone. */
  async kill (signal: NodeJS.Signals = 'SIGKILL'): Promise<Exit> {
    if (this.#exit === undefined) this.child.kill(signal)
    return await this.exited
  }

  /** Lets the fixture finish (it closes what it holds and exits once IPC closes) and returns how it ended. */
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
      call.reject(this.#gone('a call returned'))
    }
    for (const waiter of this.#eventWaiters.splice(0)) waiter.reject(this.#gone(`event ${waiter.type}`))
  }

  #gone (what: string): Error {
    const how = this.#exit?.signal ?? `code ${String(this.#exit?.code)}`
    return Object.assign(new Error(`fixture ended (${how}) before ${what}; stderr:\n${this.#stderr}`), { code: 'FIXTURE_GONE' })
  }
}
