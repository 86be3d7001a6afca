/**
 * Shared by the native-layer tests: names that cannot collide with another
 * run, forked peers from test/fixtures/, and the check that nothing is left
 * behind in /dev/shm.
 */
import type { ForkOptions } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'

import { Region } from '../lib/index'
import { FixtureProcess } from './support/fixture-process'

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

export type { Exit } from './support/fixture-process'

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
