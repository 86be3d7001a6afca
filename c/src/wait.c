/*
 * Waiting for the other end (docs/protocol.md, "Sleeping"): spin, block, or
 * adaptive (spin, then sleep). A sleeper:
 *   1. stores 1 in its parked word,
 *   2. loads the word it sleeps on (the other end's position),
 *   3. re-checks its condition (and leaves if it is met),
 *   4. FUTEX_WAITs on the word with the value from 2, in slices of
 *      peer_check_ms so that it notices a dead peer, and stores 0 when it wakes.
 * All of it sequentially consistent, like the other end's publish-then-load
 * of the parked word: either the waker sees the flag, or the re-check sees
 * the new position. The futex is shared (no FUTEX_PRIVATE_FLAG).
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

uint64_t shmc_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* Wakes the one end that may sleep on word (at most one process sleeps on each position word). */
void shmc_futex_wake(_Atomic uint32_t *w) {
  syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* After a store the other end may sleep on: take its parked word down and wake it if it was set. */
void shmc_wake_if_parked(_Atomic uint32_t *parked, _Atomic uint32_t *w) {
  if (atomic_load(parked) != 0 && atomic_exchange(parked, 0) != 0) shmc_futex_wake(w);
}

static void futex_wait(_Atomic uint32_t *w, uint32_t expected, uint64_t ns) {
  struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
  syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, expected, &ts, NULL, 0);
}

/*
 * Waits until ready(c) returns other than SHMC_EAGAIN, and returns that.
 * ready also reports the peer's close or death (see ring.c); it runs at
 * least once, and again after every wake-up or time slice.
 */
int shmc_wait_for(shmc_channel *c, shmc_ready_fn ready, _Atomic uint32_t *parked, _Atomic uint32_t *sleep_word, int timeout_ms) {
  int r = ready(c);
  if (r != SHMC_EAGAIN || timeout_ms == 0) return r;
  uint64_t start = shmc_now_ns();
  uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : start + (uint64_t)timeout_ms * 1000000u;
  uint64_t slice = (uint64_t)c->options.peer_check_ms * 1000000u;
  shmc_wait how = c->options.wait;
  uint64_t spin_until = how == SHMC_WAIT_SPIN ? UINT64_MAX
    : how == SHMC_WAIT_BLOCK ? 0 : start + (uint64_t)c->options.spin_micros * 1000u;
  for (;;) {
    uint64_t now = shmc_now_ns();
    if (now >= deadline) return SHMC_ETIMEDOUT;
    if (now < spin_until) {
      for (int i = 0; i < 64; i++) cpu_relax();
    } else {
      atomic_store(parked, 1);
      uint32_t seen = atomic_load(sleep_word);
      r = ready(c);
      if (r != SHMC_EAGAIN) {
        atomic_store(parked, 0);
        return r;
      }
      uint64_t left = deadline - now;
      futex_wait(sleep_word, seen, left < slice ? left : slice);
      atomic_store(parked, 0);
    }
    r = ready(c);
    if (r != SHMC_EAGAIN) return r;
  }
}
