/**
 * Driving other processes from a test, and awaiting what they do: forked
 * peers running test/fixtures/ (answering `call(method, ...args)`, see
 * fixtures/harness.ts), a fixture run as another user, and the outcome of
 * a call (its rejection, within a bound).
 *
 * Loaded by fixtures too, so it imports tap for types only.
 */
import type { ForkOptions } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'

import { FixtureProcess, type FixtureOptions } from './fixture-process'

export type { Exit } from './fixture-process'

/**
 * A forked process running test/fixtures/<fixture> (by default
 * channel-peer.ts) with advanced serialization over IPC. SIGKILLed when `t`
 * ends if still running.
 */
export class ChannelPeer extends FixtureProcess {
  constructor (t: Test, fixture = 'channel-peer.ts', args: string[] = [], options: FixtureOptions = {}) {
    super(t, fixture, args, options)
  }
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

/**
 * A forked process running one of test/fixtures/*.ts that answers
 * `call(method, ...args)` (see fixtures/harness.ts) and may emit events, with
 * JSON over IPC (Node's default). SIGKILLed when `t` ends if still running.
 */
export class Peer extends FixtureProcess {
  constructor (t: Test, fixture: string, args: string[] = [], options: ForkOptions = {}) {
    super(t, fixture, args, { serialization: 'json', ...options })
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

/** Resolves to how `promise` rejected (or throws if it resolved), for assertions that need the error and its timing. */
export async function rejection (promise: Promise<unknown>): Promise<Error & { code?: string, remoteCode?: unknown, remoteName?: string }> {
  try {
    await promise
  } catch (err) {
    return err as Error & { code?: string }
  }
  throw new Error('expected a rejection, but the promise resolved')
}

/** The error a synchronous call throws (or throws if it returns). */
export function thrown (fn: () => unknown): Error & { code?: string } {
  try {
    fn()
  } catch (err) {
    return err as Error & { code?: string }
  }
  throw new Error('expected the call to throw, but it returned')
}

/** Resolves when `predicate()` holds, polling; rejects after `ms`. */
export async function until (predicate: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
