/**
 * The writer lock of a store file: one end slot (lib/segment/ends.ts) that
 * a writer claims for the length of one write, and takes over when its
 * holder died holding it. No system call while it is free; a writer that
 * finds it taken spins briefly, then sleeps on the pid word (futex) with a
 * count of sleepers that tells the holder to wake them.
 *
 * Why a dead holder never blocks the store and never leaves a torn state:
 * a holder only ever writes past the committed end and then moves the
 * commit word (one atomic store), so whatever it was doing when it died is
 * either committed whole or invisible. The next writer takes the slot over
 * (takeOverEnd: one winner among several) and writes over the leftovers.
 */
import { wait as futexWait, wake as futexWake } from '../platform/futex'
import { isRunning } from '../platform/liveness'
import { END_FREE, END_PID, claimEnd, endDead, readEnd, releaseEnd, takeOverEnd } from '../segment/ends'
import { word } from '../segment/words'
import { LOCK_HANDOFFS_OFFSET, LOCK_OFFSET, LOCK_TAKEOVER_OFFSET, LOCK_WAITERS_OFFSET } from './layout'

const PID = word(LOCK_OFFSET + END_PID)
const WAITERS = word(LOCK_WAITERS_OFFSET)
/** The lock changes hands many times a second: its claims are counted, so that a read across a handoff is read again. */
const HANDOFFS = word(LOCK_HANDOFFS_OFFSET)
/** Spins before the first liveness check and sleep: a write holds the lock for microseconds. */
const SPINS = 2000
/** Longest sleep between two looks at the holder's liveness, in ms. */
const SLICE_MS = 20

/** How the lock was taken: 'taken', or 'recovered' from a holder that died. */
export type Acquired = 'taken' | 'recovered'

/** Takes the writer lock of the store whose header is `h`; blocks until it is free. */
export function acquire (h: Int32Array): Acquired {
  for (let i = 0; i < SPINS; i++) {
    if (claimEnd(h, LOCK_OFFSET, HANDOFFS)) return 'taken'
  }
  // The holder's liveness is read from /proc (system calls): only once the same pid has held the lock for a whole slice.
  let holder = 0
  let since = 0
  for (;;) {
    if (claimEnd(h, LOCK_OFFSET, HANDOFFS)) return 'taken'
    const pid = Atomics.load(h, PID)
    if (pid === 0) continue
    if (pid !== holder) {
      holder = pid
      since = performance.now()
    } else if (performance.now() - since >= SLICE_MS) {
      since = performance.now()
      const end = readEnd(h, LOCK_OFFSET, HANDOFFS)
      if (endDead(end)) {
        if (takeOverEnd(h, LOCK_OFFSET, LOCK_TAKEOVER_OFFSET, undefined, HANDOFFS) === 'taken') return 'recovered'
        continue
      }
      if (end.pid !== 0 && end.state === END_FREE && !isRunning(end.pid)) {
        // Died between its compare-and-swap of the pid and its store of OPEN: free the slot.
        Atomics.compareExchange(h, PID, end.pid, 0)
        continue
      }
    }
    // Count ourselves before the re-check, so a release either sees us or we see it (as in lib/segment/wait.ts).
    Atomics.add(h, WAITERS, 1)
    if (Atomics.load(h, PID) === pid) futexWait(h, PID, pid, SLICE_MS)
    Atomics.sub(h, WAITERS, 1)
  }
}

/** Releases the lock taken by `acquire` on `h`. */
export function release (h: Int32Array): void {
  releaseEnd(h, LOCK_OFFSET)
  if (Atomics.load(h, WAITERS) > 0) futexWake(h, PID, 1)
}
