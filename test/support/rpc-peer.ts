/**
 * Shared by test/rpc/ and test/security.test.ts: unique service names,
 * the /dev/shm check, and `RpcPeer`, a forked process running one of
 * test/fixtures/rpc-*.ts that answers `call(method, ...args)` and emits
 * events (fixture side: test/fixtures/harness.ts).
 */
import fs from 'node:fs'
import type { Test } from 'tap'

import { Region } from '../../lib/index'
import { FixtureProcess, type FixtureOptions } from './fixture-process'

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

export { rejection, until, within } from './peers'

export type { Exit } from './fixture-process'

/**
 * A forked process running one of test/fixtures/rpc-*.ts. When `t` ends a
 * fixture still running is let go gracefully (it closes what it holds once
 * IPC closes) and SIGKILLed if it has not exited within a few seconds.
 */
export class RpcPeer extends FixtureProcess {
  constructor (t: Test, fixture: string, args: string[] = [], options: FixtureOptions = {}) {
    super(t, fixture, args, { ...options, gracefulTeardown: true })
  }
}
