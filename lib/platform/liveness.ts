/**
 * Who holds each end of a channel, and whether that process still lives.
 * A pid alone is not enough: pids are reused, so each end also records its
 * process start time (/proc/<pid>/stat field 22), and a pid whose start time
 * differs is a different, newer process.
 */
import fs from 'node:fs'
import { isMainThread } from 'node:worker_threads'

import { binding } from './binding'
import * as L from './layout'

/** Start time of a process in clock ticks since boot; 0 where /proc is not available; -1 if no such process. */
export function processStartTime (pid: number): number {
  let stat: string
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return code === 'ENOENT' || code === 'ESRCH' ? -1 : 0
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const start = Number(rest[22 - 3])
  return Number.isFinite(start) ? start : 0
}

export const ownStartTime = processStartTime(process.pid)

function pidAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** True when the process with this pid and start time (0: unknown) is running. */
export function isAlive (pid: number, startTime: number): boolean {
  if (pid <= 0) return false
  if (!pidAlive(pid)) return false
  if (startTime === 0) return true
  const now = processStartTime(pid)
  if (now === -1) return false
  // A zombie keeps its /proc entry; it has exited all the same.
  return now === 0 || (now === startTime && !isZombie(pid))
}

function isZombie (pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1')
    return stat.charAt(stat.lastIndexOf(')') + 2) === 'Z'
  } catch {
    return true
  }
}

export interface EndInfo {
  pid: number
  startTime: number
  state: number
}

export function readEnd (h: Int32Array, endOffset: number): EndInfo {
  const base = L.word(endOffset)
  return {
    pid: Atomics.load(h, base + L.word(L.END_PID)) >>> 0,
    startTime: (h[base + L.word(L.END_START_TIME)] >>> 0) + (h[base + L.word(L.END_START_TIME) + 1] >>> 0) * 0x100000000,
    state: Atomics.load(h, base + L.word(L.END_STATE)) >>> 0
  }
}

/**
 * An end that is open and whose process is alive. Threads of this process
 * count as alive unless one ended holding the end, which marks its start
 * time (see markEndOnThreadExit).
 */
export function endLive (end: EndInfo): boolean {
  if (end.state !== L.END_OPEN) return false
  if (end.pid === process.pid) return end.startTime === ownStartTime
  return isAlive(end.pid, end.startTime)
}

/** Marks of ends dropped without close(): the mark would keep their memory mapped until the thread ends. */
const dropped = new FinalizationRegistry<number>((id) => { binding.cancelMarkOnThreadExit(id) })

/**
 * In a worker thread: arranges that if the thread ends with this end still
 * open (worker.terminate(), an uncaught error, a plain exit), the end is
 * marked so its peer sees it dead: its pid is the process's, which lives on.
 * Returns a function that cancels the mark (on close); the mark also goes
 * when `holder` is garbage-collected. On the main thread the process's own
 * death is what the peer sees: nothing to do.
 */
export function markEndOnThreadExit (holder: object, buffer: SharedArrayBuffer, endOffset: number): () => void {
  if (isMainThread) return () => {}
  const id = binding.markOnThreadExit(buffer, endOffset + L.END_START_TIME + 4, L.END_THREAD_GONE)
  dropped.register(holder, id, holder)
  return () => {
    dropped.unregister(holder)
    binding.cancelMarkOnThreadExit(id)
  }
}

/**
 * Takes an end for this process: succeeds only if the slot is free. Returns
 * false if another process got there first.
 */
export function claimEnd (h: Int32Array, endOffset: number): boolean {
  const base = L.word(endOffset)
  if (Atomics.compareExchange(h, base + L.word(L.END_PID), 0, process.pid) !== 0) return false
  h[base + L.word(L.END_START_TIME)] = ownStartTime % 0x100000000
  h[base + L.word(L.END_START_TIME) + 1] = Math.floor(ownStartTime / 0x100000000)
  Atomics.store(h, base + L.word(L.END_STATE), L.END_OPEN)
  return true
}

export function closeEnd (h: Int32Array, endOffset: number): void {
  Atomics.store(h, L.word(endOffset) + L.word(L.END_STATE), L.END_CLOSED)
}
