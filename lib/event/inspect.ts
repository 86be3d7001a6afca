/**
 * A named event (lib/event/layout.ts) as the inspector sees it: its holders,
 * notifications and sleeping waiters. Reads only; for `shm-channel ls` and
 * `stat` (lib/tools/cli.ts). `gc` does not remove events: the holders are a
 * count, not processes, so a holder that died cannot be told from one that
 * lives.
 */
import { HEADER_SIZE_OFFSET, MAGIC_OFFSET, VERSION_OFFSET } from '../segment/identity'
import { word } from '../segment/words'
import * as L from './layout'

export interface EventSnapshot {
  kind: 'event'
  name: string
  size: number
  version: string
  /** Opens not yet closed (by any process); the last close removes the name. */
  holders: number
  /** Notifications so far (a u32 that wraps). */
  notifications: number
  /** Waiters asleep in the kernel now (or about to be). */
  waiters: number
}

/** The event in `buffer`, or undefined when it is not one (other magic, a version this one cannot read, too small). */
export function inspectEvent (name: string, buffer: SharedArrayBuffer): EventSnapshot | undefined {
  if (buffer.byteLength < L.HEADER_SIZE) return undefined
  const h = new Int32Array(buffer)
  if (Atomics.load(h, word(MAGIC_OFFSET)) >>> 0 !== L.MAGIC) return undefined
  const version = h[word(VERSION_OFFSET)]
  const major = version >>> 16
  if (major !== L.VERSION_MAJOR || h[word(HEADER_SIZE_OFFSET)] !== L.HEADER_SIZE) return undefined
  return {
    kind: 'event',
    name,
    size: buffer.byteLength,
    version: `${major}.${version & 0xffff}`,
    holders: Atomics.load(h, word(L.HOLDERS_OFFSET)),
    notifications: Atomics.load(h, word(L.NOTIFICATIONS_OFFSET)) >>> 0,
    waiters: Atomics.load(h, word(L.WAITERS_OFFSET))
  }
}

/** `shm-channel ls`: one line. */
export function summarizeEvent (e: EventSnapshot): string {
  return `event ${e.name}: ${e.holders} holder${e.holders === 1 ? '' : 's'}, ${e.notifications} notifications, ${e.waiters} waiting\n`
}

/** `shm-channel stat` of an event: what each field means, one per line. */
export function describeEvent (e: EventSnapshot): string {
  return [
    `event      ${e.name} (a named event: notify wakes every waiter; ${e.size} bytes)`,
    `protocol   event ${e.version}`,
    `holders    ${e.holders} opens not closed; the last close removes the name (a holder that died is still counted: gc leaves events alone)`,
    `notified   ${e.notifications} times (wraps at 2^32)`,
    `waiting    ${e.waiters} waiters asleep now`
  ].join('\n') + '\n'
}
