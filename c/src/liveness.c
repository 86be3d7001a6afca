/*
 * Whether a process still lives (docs/protocol.md, "Liveness"): a pid alone
 * is not enough, pids are reused; a holder is its pid and its start time,
 * field 22 of /proc/<pid>/stat (clock ticks since boot).
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * The start time of pid, 0 if unknown (no /proc). *exists is 0 when the
 * process is gone; *zombie is 1 for a process that exited and was not reaped.
 * The task directory, not /proc/<pid>/stat: qemu-user fakes the latter for
 * the program it runs, and a Node end reads the former.
 */
uint64_t shmc_start_time(pid_t pid, int *exists, int *zombie) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)pid, (int)pid);
  *exists = 1;
  *zombie = 0;
  FILE *f = fopen(path, "re");
  if (f == NULL) {
    if (errno == ENOENT || errno == ESRCH) *exists = 0;
    return 0;
  }
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* The command name (field 2) may hold spaces and parentheses: count from the last ')'. */
  char *p = strrchr(buf, ')');
  if (p == NULL || p[1] != ' ') return 0;
  p += 2; /* field 3, the state */
  if (*p == 'Z' || *p == 'X') *zombie = 1;
  for (int field = 3; field < 22; field++) {
    p = strchr(p, ' ');
    if (p == NULL) return 0;
    p++;
  }
  return strtoull(p, NULL, 10);
}

uint64_t shmc_own_start_time(void) {
  int exists, zombie;
  return shmc_start_time(getpid(), &exists, &zombie);
}

/* kill(pid, 0) succeeds or fails with EPERM (another user's process): the pid exists. */
static int pid_exists(pid_t pid) {
  return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* A process with this pid runs, whatever its start time (a holder whose start time is not written yet). */
int shmc_pid_runs(pid_t pid) {
  if (!pid_exists(pid)) return 0;
  int exists, zombie;
  shmc_start_time(pid, &exists, &zombie);
  return exists && !zombie;
}

/* The process named by pid and start time runs. A start time of 0 means "unknown": the pid alone decides. */
int shmc_alive(pid_t pid, uint64_t start_time) {
  if (!pid_exists(pid)) return 0;
  int exists, zombie;
  uint64_t now = shmc_start_time(pid, &exists, &zombie);
  if (!exists || zombie) return 0;
  if (start_time == 0 || now == 0) return 1;
  return now == start_time;
}
