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
 *   |             state: FREE, OPEN, CLOSED, CLAIMING               | 12
 *   +---------------------------------------------------------------+
 *
 * The first holder writes pid (compare-and-swap 0 -> pid), then start time
 * (plain stores), then state OPEN (Atomics.store): a reader that loads OPEN
 * sees the start time. A closed end is never reopened.
 *
 * An end whose holder died (OPEN, holder not alive) may be taken over by a
 * new process: see takeOverEnd. A kind that allows it gives each end a
 * takeover word besides the slot, `takeovers << 1 | claiming`, which is what
 * makes two newcomers racing for one dead end agree on a single winner.
 */
import { isMainThread } from 'node:worker_threads'

import { binding } from '../binding'
import { isAlive, isRunning, ownStartTime } from '../platform/liveness'
import { sleepSync } from '../platform/sleep'
import { loadU64Atomic, storeU64Atomic, word } from './words'

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
/** A newcomer is taking the end over (takeOverEnd): pid and start time are being rewritten. */
export const END_CLAIMING = 3

/**
 * How long a takeover claim may stay unfinished before another newcomer may
 * take the end from the claimant. A claim is a handful of stores; a claimant
 * that has not finished in this time died or was stopped mid-claim.
 */
export const CLAIM_TIMEOUT = 1000

export interface EndInfo {
  pid: number
  startTime: number
  state: number
}

/**
 * Reads an end slot. A slot that changes hands between two of its loads
 * could pair one holder's pid with the next one's start time, which names
 * no process: a live holder taken for dead. Slots that change hands often
 * (a store's writer lock) keep a handoff count, `handoffs` (a word index),
 * that every claim moves between its pid and its start time: a read is kept
 * only if the count did not move across it. Without one (ends claimed once,
 * taken over only from dead holders), the slot is read until two reads in a
 * row agree. Either way a slot that keeps changing gets its last read after
 * READ_TRIES. The state first: a reader that loads OPEN sees the pid and
 * start time stored before it. Atomic loads throughout: plain ones may be
 * merged by the compiler.
 */
export function readEnd (h: Int32Array, endOffset: number, handoffs?: number): EndInfo {
  const base = word(endOffset)
  if (handoffs !== undefined) {
    for (let i = 0; ; i++) {
      const before = Atomics.load(h, handoffs)
      const end = snapshot(h, base)
      if (Atomics.load(h, handoffs) === before || i === READ_TRIES) return end
    }
  }
  let end = snapshot(h, base)
  for (let i = 0; i < READ_TRIES; i++) {
    const again = snapshot(h, base)
    if (again.pid === end.pid && again.startTime === end.startTime && again.state === end.state) break
    end = again
  }
  return end
}

/** How many times readEnd reads a slot that keeps changing before it settles for the last read. */
const READ_TRIES = 1000

function snapshot (h: Int32Array, base: number): EndInfo {
  const state = Atomics.load(h, base + word(END_STATE)) >>> 0
  return {
    pid: Atomics.load(h, base + word(END_PID)) >>> 0,
    startTime: loadU64Atomic(h, base + word(END_START_TIME)),
    state
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

/** Who holds an end: a process, named by pid and start time. */
export interface Holder {
  pid: number
  startTime: number
}

/** This process, the holder of every end it claims. */
const SELF: Holder = { pid: process.pid, startTime: ownStartTime }

/**
 * Takes an end for this process (or `holder`: tests play other processes):
 * succeeds only if the slot is free. Returns false if another process got
 * there first. `handoffs`: the slot's handoff count (see readEnd), if it has one.
 */
export function claimEnd (h: Int32Array, endOffset: number, handoffs?: number, holder: Holder = SELF): boolean {
  const base = word(endOffset)
  if (Atomics.compareExchange(h, base + word(END_PID), 0, holder.pid) !== 0) return false
  if (handoffs !== undefined) Atomics.add(h, handoffs, 1)
  storeU64Atomic(h, base + word(END_START_TIME), holder.startTime)
  // Sequentially consistent: a reader that loads OPEN sees the start time above.
  Atomics.store(h, base + word(END_STATE), END_OPEN)
  return true
}

/**
 * Gives back an end taken with claimEnd, for slots that change hands (a
 * lock, a reused slot of a table): state, start time, then the pid, which
 * lets the next claimer in.
 */
export function releaseEnd (h: Int32Array, endOffset: number): void {
  const base = word(endOffset)
  Atomics.store(h, base + word(END_STATE), END_FREE)
  storeU64Atomic(h, base + word(END_START_TIME), 0)
  // Sequentially consistent: a claimer's compare-and-swap of the pid sees the slot cleared.
  Atomics.store(h, base + word(END_PID), 0)
}

export function closeEnd (h: Int32Array, endOffset: number): void {
  Atomics.store(h, word(endOffset) + word(END_STATE), END_CLOSED)
}

/** True when the end was opened and is no more: closed, or its holder gone without closing. */
export function endUsedUp (end: EndInfo): boolean {
  return end.state === END_CLOSED || endDead(end)
}

/**
 * True when the end's holder is gone without closing: OPEN and not alive;
 * CLAIMING by a process that no longer runs (a claimant that died
 * mid-takeover); or opening (pid set, state still FREE: between claimEnd's
 * compare-and-swap and its state store) by a process that no longer runs.
 * A claimant or opener that runs is not dead: it is arriving.
 */
export function endDead (end: EndInfo): boolean {
  if (end.state === END_OPEN) return !endLive(end)
  if (end.state === END_CLAIMING || endOpening(end)) return end.pid === process.pid ? false : !isRunning(end.pid)
  return false
}

/** Pid taken, state not yet stored (claimEnd under way, or its taker died there). */
export function endOpening (end: EndInfo): boolean {
  return end.state === END_FREE && end.pid !== 0
}

/** What takeOverEnd found. */
export type Takeover = 'taken' | 'live' | 'lost'

/**
 * Takes over the end at `endOffset`, whose holder died, for this process.
 * `takeoverOffset` is the end's takeover word (`takeovers << 1 | claiming`),
 * `handoffs` its handoff count if it has one (see readEnd);
 * `work` runs while the claim is held, before the end reads OPEN (the kind's
 * own bookkeeping: a takeover time, a redelivery count). Returns 'taken';
 * 'live' if the end is not dead (never was, or another newcomer took it
 * over first: the caller reports ERR_END_TAKEN); 'lost' if this claim was
 * declared abandoned by another newcomer before it finished.
 *
 * Why exactly one of several newcomers wins, and nobody trusts a half-written slot:
 *
 *   1. Load the takeover word, then read the slot. Every takeover changes
 *      the word (the count goes up), so if the compare-and-swap in 2 succeeds
 *      against the value loaded here, no takeover happened since, and the
 *      slot read after it is still the dead holder's.
 *   2. Compare-and-swap the word from the value seen to `(count + 1) << 1 | 1`.
 *      Of newcomers that saw the same value one succeeds; the others see the
 *      new value and start over (and find a live end, or a claim under way).
 *   3. The winner stores state CLAIMING, then its pid and start time, runs
 *      `work`, stores state OPEN, and clears the claiming bit by
 *      compare-and-swap. Readers that load OPEN see the new pid and start
 *      time (sequentially consistent stores, as in claimEnd).
 *   4. A newcomer that finds the claiming bit set waits for it to clear.
 *      If the word stays the same for CLAIM_TIMEOUT ms and the slot's pid
 *      does not run, the claimant is taken for dead: the newcomer claims
 *      over it, as in 2. A claimant that was merely slow then fails its
 *      final compare-and-swap and reports 'lost'.
 */
export function takeOverEnd (h: Int32Array, endOffset: number, takeoverOffset: number, work: () => void = () => {}, handoffs?: number): Takeover {
  const t = word(takeoverOffset)
  const base = word(endOffset)
  let seen = Atomics.load(h, t)
  let seenSince = performance.now()
  for (;;) {
    const end = readEnd(h, endOffset, handoffs)
    if ((seen & 1) !== 0) {
      const abandoned = performance.now() - seenSince >= CLAIM_TIMEOUT && (end.pid === 0 || !isRunning(end.pid))
      if (!abandoned) {
        sleepSync(1)
        const now = Atomics.load(h, t)
        if (now !== seen) {
          seen = now
          seenSince = performance.now()
        }
        continue
      }
    } else if (!((end.state === END_OPEN && !endLive(end)) || (endOpening(end) && endDead(end)))) {
      return 'live'
    }
    const claim = ((((seen >>> 1) + 1) << 1) | 1) & 0x7fffffff
    const before = Atomics.compareExchange(h, t, seen, claim)
    if (before !== seen) {
      seen = before
      seenSince = performance.now()
      continue
    }
    Atomics.store(h, base + word(END_STATE), END_CLAIMING)
    Atomics.store(h, base + word(END_PID), process.pid)
    if (handoffs !== undefined) Atomics.add(h, handoffs, 1)
    storeU64Atomic(h, base + word(END_START_TIME), ownStartTime)
    work()
    // Sequentially consistent: a reader that loads OPEN sees pid and start time.
    Atomics.store(h, base + word(END_STATE), END_OPEN)
    return Atomics.compareExchange(h, t, claim, claim & ~1) === claim ? 'taken' : 'lost'
  }
}

/** How many times the end with this takeover word was taken over. */
export function takeoverCount (h: Int32Array, takeoverOffset: number): number {
  return Atomics.load(h, word(takeoverOffset)) >>> 1
}
