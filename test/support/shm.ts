/**
 * Names and /dev/shm hygiene for every test: names that cannot collide with
 * another run, the check that a test file leaves nothing behind, mappings
 * of this process, and the parked flag of a channel end (what a test waits
 * for before it closes or kills the other side of a wait).
 *
 * Loaded by fixtures too, so it imports tap for types only.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Test } from 'tap'

import { Region } from '../../lib/index'
import * as L from '../../lib/channel/layout'

/** Every shared memory name a test process makes starts with this (no slash). */
export const SHM_PREFIX = `shmch-test-${process.pid}-`

let counter = 0

/** A fresh channel name (no leading slash, as users usually write it). */
export function channelName (): string {
  return `${SHM_PREFIX}ch${++counter}`
}

/** A fresh shared memory name (with its slash), unlinked when `t` ends if it still exists. */
export function shmName (t: Test): string {
  const name = `/${SHM_PREFIX}${++counter}`
  t.teardown(() => { unlinkIfPresent(name) })
  return name
}

/** True while `name` exists in /dev/shm. */
export function shmExists (name: string): boolean {
  return fs.existsSync(path.join('/dev/shm', name.replace(/^\//, '')))
}

/** Entries of /dev/shm made by this test process and still there. */
export function shmLeftovers (): string[] {
  return fs.readdirSync('/dev/shm').filter((entry) => entry.startsWith(SHM_PREFIX)).sort()
}

/** Removes `name` from /dev/shm if it is there (for tests that leave a crashed channel on purpose). */
export function unlinkIfPresent (name: string): void {
  try {
    Region.unlink(name)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
}

/**
 * The last test of every test file that makes names. Tests close what they
 * open (and unlink the names of channels they crashed on purpose), so no
 * name may remain; whatever a failed test left is removed afterwards so the
 * machine stays clean, but only after it was reported.
 */
export function leavesNothingInDevShm (tap: Test): void {
  tap.test(`leaves no /dev/shm/${SHM_PREFIX}* entries behind`, (t) => {
    t.same(shmLeftovers(), [])
    t.end()
  })
  // Also when that test is filtered out or never reached.
  tap.teardown(() => { for (const entry of shmLeftovers()) unlinkIfPresent(entry) })
}

/** Closes `resource` (a region, an end, a client ...) when `t` ends; close is idempotent, so the test may close it too. */
export function closeAtEnd<R extends { close: () => void }> (t: Test, resource: R): R {
  t.teardown(() => { resource.close() })
  return resource
}

/** A fresh empty directory, removed with everything in it when `t` ends. */
export function tempDir (t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), SHM_PREFIX))
  t.teardown(() => { fs.rmSync(dir, { recursive: true, force: true }) })
  return dir
}

/** Lines of /proc/self/maps that map `needle` (a path, e.g. "/dev/shm/<name>"). */
export function mappingsOf (needle: string): number {
  return fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((line) => line.includes(needle)).length
}

/**
 * Resolves once the `role` end of the channel (by name, or in a buffer from
 * createChannelBuffer) has raised its parked flag: from then on a close or a
 * death of its peer reaches the wait itself (through its re-check or a
 * wake-up), never lands before it. Any process's end: the flag is in shared
 * memory. Ends waiting with 'spin' never park; their wait starts within the
 * call that waits. Rejects if the flag is not up within `ms`.
 */
export async function untilParked (channel: string | SharedArrayBuffer, role: 'producer' | 'consumer', ms = 10_000): Promise<void> {
  const region = typeof channel === 'string' ? Region.open(channel, { readOnly: true }) : undefined
  try {
    const h = new Int32Array(region?.buffer ?? channel as SharedArrayBuffer, 0, L.HEADER_SIZE / 4)
    const flag = L.word(role === 'producer' ? L.PRODUCER_PARKED_OFFSET : L.CONSUMER_PARKED_OFFSET)
    const deadline = Date.now() + ms
    while (Atomics.load(h, flag) === 0) {
      if (Date.now() > deadline) throw new Error(`the ${role} did not park within ${ms} ms`)
      await new Promise((resolve) => setTimeout(resolve, 2))
    }
  } finally {
    region?.close()
  }
}
