/*
 * End slots (docs/protocol.md, "Ends"): who holds each end and whether that
 * holder lives. Every access to pid and state is sequentially consistent;
 * the start time is two 32-bit halves (it is not 8-byte aligned), written
 * low then high before the state that publishes them.
 */
#include "internal.h"

#include <unistd.h>

/* State, pid, start time, state again: the fields belong together when both state loads agree. */
end_info shmc_read_end(const shmc_channel *c, uint32_t end) {
  end_info e;
  for (;;) {
    e.state = atomic_load(word(c, end + END_STATE));
    e.pid = atomic_load(word(c, end + END_PID));
    e.start_time = (uint64_t)atomic_load(word(c, end + END_START_LOW)) |
                   ((uint64_t)atomic_load(word(c, end + END_START_HIGH)) << 32);
    if (atomic_load(word(c, end + END_STATE)) == e.state) return e;
  }
}

/* Takes a free end: compare-and-swap of the pid from 0, start time, then state OPEN. 0 if another got it. */
int shmc_claim_end(shmc_channel *c, uint32_t end) {
  uint32_t expected = 0;
  if (!atomic_compare_exchange_strong(word(c, end + END_PID), &expected, (uint32_t)getpid())) return 0;
  uint64_t start = shmc_own_start_time();
  atomic_store(word(c, end + END_START_LOW), (uint32_t)start);
  atomic_store(word(c, end + END_START_HIGH), (uint32_t)(start >> 32));
  /* A reader that loads OPEN sees pid and start time. */
  atomic_store(word(c, end + END_STATE), END_OPEN);
  return 1;
}

/* OPEN and its process alive (a high word 0xFFFFFFFF matches no process: a thread that ended holding it). */
int shmc_end_live(const end_info *e) {
  if (e->state != END_OPEN) return 0;
  if ((e->start_time >> 32) == 0xffffffffu) return 0;
  return shmc_alive((pid_t)e->pid, e->start_time);
}

/*
 * Gone without closing: OPEN and not live; CLAIMING (a takeover) or opening
 * (pid set, state still FREE) by a pid that no longer runs. Claiming or
 * opening by a running pid is "arriving": neither live nor dead.
 */
int shmc_end_dead(const end_info *e) {
  if (e->state == END_OPEN) return !shmc_end_live(e);
  if (e->state == END_CLAIMING || (e->state == END_FREE && e->pid != 0)) return !shmc_pid_runs((pid_t)e->pid);
  return 0;
}

int shmc_end_used_up(const end_info *e) {
  return e->state == END_CLOSED || shmc_end_dead(e);
}
