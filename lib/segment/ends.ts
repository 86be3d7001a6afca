/**
 * End slots: who holds each end of a segment (a channel's producer and
 * consumer, a listener's server), and whether that holder still lives.
 *
 * A slot is 16 bytes, the same in every segment kind:
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +---------------------------------------------------------------+
 *   |                              pid                              | 0  taken by compare-and-swap 0 -> pid
 *   |               process start time (u64, lo then hi)            | 4  /proc/<pid>/stat field 22, in clock ticks
 *   |                                                               |
 *   |                     state: FREE, OPEN, CLOSED                 | 12
 *   +---------------------------------------------------------------+
 *
 * The holder writes pid (compare-and-swap), then start time (plain stores),
 * then state OPEN (Atomics.store): a reader that loads OPEN sees the start
 * time. A slot is taken once: a closed or dead end is never reopened, the
 * segment is reclaimed instead (lib/segment/attach.ts).
 */
import { isMainThread } from 'node:worker_threads'

import { binding } from '../binding'
import { isAlive, ownStartTime } from '../platform/liveness'
import { loadU64, storeU64, word } from './words'

export const END_PID = 0
export const END_START_TIME = 4
export const END_STATE = 12
export const END_SLOT_SIZE = 16
/** High word of the start time of an end whose thread ended without closing it: matches no process. */
export const END_THREAD_GONE = 0xffffffff

/** End states. */
export const END_FREE = 0
export const END_OPEN = 1
export const END_CLOSED = 2

export interface EndInfo {
  pid: number
  startTime: number
  state: number
}

export function readEnd (h: Int32Array, endOffset: number): EndInfo {
  const base = word(endOffset)
  return {
    pid: Atomics.load(h, base + word(END_PID)) >>> 0,
    startTime: loadU64(h, base + word(END_START_TIME)),
    state: Atomics.load(h, base + word(END_STATE)) >>> 0
  }
}

/**
 * An end that is open and whose process is alive. Threads of this process
 * count as alive unless one ended holding the end, which marks its start
 * time (see markEndOnThreadExit).
 */
export function endLive (end: EndInfo): boolean {
  if (end.state !== END_OPEN) return false
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
  const id = binding.markOnThreadExit(buffer, endOffset + END_START_TIME + 4, END_THREAD_GONE)
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
  const base = word(endOffset)
  if (Atomics.compareExchange(h, base + word(END_PID), 0, process.pid) !== 0) return false
  storeU64(h, base + word(END_START_TIME), ownStartTime)
  // Sequentially consistent: a reader that loads OPEN sees the start time above.
  Atomics.store(h, base + word(END_STATE), END_OPEN)
  return true
}

export function closeEnd (h: Int32Array, endOffset: number): void {
  Atomics.store(h, word(endOffset) + word(END_STATE), END_CLOSED)
}

/** True when the end was opened and is no more: closed, or its holder gone without closing. */
export function endUsedUp (end: EndInfo): boolean {
  return end.state === END_CLOSED || (end.state === END_OPEN && !endLive(end))
}
