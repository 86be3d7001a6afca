/*
 * The store's writer lock: a futex word (compare-and-swap to take, store to
 * release, a futex wake only when someone sleeps) against flock(2) on the
 * file, the lock MMKV uses. Uncontended take+release pairs in one process,
 * and contended pairs between two processes on a shared mapping.
 *
 *   cc -O2 -o /tmp/kv-lock bench/kv/lock.c && /tmp/kv-lock
 *
 * Node has no flock, which is why this is C: it measures the two choices,
 * not the JavaScript around them.
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* word: 0 free, 1 taken, 2 taken with sleepers (Drepper's "Futexes are tricky", mutex 2). */
static void futex_lock(_Atomic int *w) {
  int c = 0;
  if (atomic_compare_exchange_strong(w, &c, 1)) return;
  if (c != 2) c = atomic_exchange(w, 2);
  while (c != 0) {
    syscall(SYS_futex, w, FUTEX_WAIT, 2, NULL, NULL, 0);
    c = atomic_exchange(w, 2);
  }
}

static void futex_unlock(_Atomic int *w) {
  if (atomic_fetch_sub(w, 1) != 1) {
    atomic_store(w, 0);
    syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
  }
}

static double run(int kind, int procs, long n, int fd, _Atomic int *w, long *counter) {
  double start = now();
  for (int p = 0; p < procs; p++) {
    if (procs > 1 && fork() != 0) continue;
    for (long i = 0; i < n; i++) {
      if (kind == 0) futex_lock(w); else flock(fd, LOCK_EX);
      (*counter)++;
      if (kind == 0) futex_unlock(w); else flock(fd, LOCK_UN);
    }
    if (procs > 1) _exit(0);
  }
  if (procs > 1) while (wait(NULL) > 0) {}
  return (now() - start) / (n * procs) * 1e9;
}

int main(void) {
  char path[] = "/tmp/kv-lock-XXXXXX";
  int fd = mkstemp(path);
  unlink(path);
  void *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  _Atomic int *w = shared;
  long *counter = (long *)((char *)shared + 128);
  long n = 2000000;
  printf("uncontended, ns per take+release: futex %.1f, flock %.1f\n", run(0, 1, n, fd, w, counter), run(1, 1, n, fd, w, counter));
  /* flock locks belong to the open file description: each child needs its own open. */
  printf("2 processes contending, ns per take+release: futex %.1f", run(0, 2, n / 4, fd, w, counter));
  int fds[2];
  double start = now();
  for (int p = 0; p < 2; p++) {
    if (fork() != 0) continue;
    char self[64];
    snprintf(self, sizeof self, "/proc/%d/fd/%d", getppid(), fd);
    fds[p] = open(self, 2);
    for (long i = 0; i < n / 4; i++) { flock(fds[p], LOCK_EX); (*counter)++; flock(fds[p], LOCK_UN); }
    _exit(0);
  }
  while (wait(NULL) > 0) {}
  printf(", flock %.1f\n", (now() - start) / (n / 2) * 1e9);
  return 0;
}
