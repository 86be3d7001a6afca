// C reference for bench/compare.mjs: what two processes sharing one mapping
// can do with no runtime in the way. Forks itself; prints one JSON line.
//
//   ref rtt spin|futex <size> <trips> <warmup>
//       ping-pong of <size> bytes: the initiator copies its payload into the
//       ping area and stores a sequence number; the echo copies ping to pong
//       and stores the number back. spin: both sides spin (pause) on the
//       word. futex: each side flags itself parked, re-checks, FUTEX_WAIT
//       (shared, not private); the other side wakes it only when flagged.
//   ref tput <size> <seconds>
//       SPSC byte ring (8-byte aligned records, length header, padding record
//       at the end, like shm-channel's format); the producer memcpy's each
//       payload in and publishes per message; the consumer checks length and
//       first byte and releases per message. Both sides spin when blocked.
#define _GNU_SOURCE
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline void cpu_relax (void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static long futex (_Atomic uint32_t *uaddr, int op, uint32_t val) {
  return syscall(SYS_futex, (uint32_t *)uaddr, op, val, NULL, NULL, 0);
}

// Each word on its own 128-byte line.
struct ctl {
  _Atomic uint32_t ping; char p0[124];
  _Atomic uint32_t pong; char p1[124];
  _Atomic uint32_t echo_parked; char p2[124];
  _Atomic uint32_t init_parked; char p3[124];
  _Atomic uint64_t head; char p4[120];
  _Atomic uint64_t tail; char p5[120];
  _Atomic uint32_t stop; char p6[124];
};

static int cmp_double (const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void wait_value (_Atomic uint32_t *word, uint32_t want, _Atomic uint32_t *parked, int use_futex) {
  for (;;) {
    for (int i = 0; i < (use_futex ? 1 : 1 << 30); i++) {
      if (atomic_load(word) == want) return;
      cpu_relax();
    }
    atomic_store(parked, 1);
    uint32_t seen = atomic_load(word);
    if (seen == want) { atomic_store(parked, 0); return; }
    futex(word, FUTEX_WAIT, seen);
    atomic_store(parked, 0);
  }
}

static void post_value (_Atomic uint32_t *word, uint32_t value, _Atomic uint32_t *parked, int use_futex) {
  atomic_store(word, value);
  if (use_futex && atomic_exchange(parked, 0) == 1) futex(word, FUTEX_WAKE, 1);
}

static int rtt (int use_futex, size_t size, long trips, long warmup) {
  size_t area = (size + 4095) & ~(size_t)4095;
  char *mem = mmap(NULL, 4096 + 2 * area, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) { perror("mmap"); return 1; }
  struct ctl *c = (struct ctl *)mem;
  char *ping = mem + 4096, *pong = mem + 4096 + area;
  pid_t pid = fork();
  if (pid == 0) {
    for (uint32_t seq = 1; ; seq++) {
      wait_value(&c->ping, seq, &c->echo_parked, use_futex);
      if (atomic_load(&c->stop)) _exit(0);
      memcpy(pong, ping, size);
      post_value(&c->pong, seq, &c->init_parked, use_futex);
    }
  }
  char *payload = malloc(size ? size : 1);
  memset(payload, 7, size);
  double *samples = malloc(sizeof(double) * trips);
  long bad = 0;
  uint32_t seq = 0;
  for (long i = -warmup; i < trips; i++) {
    seq++;
    payload[0] = (char)seq;
    double t = now_s();
    memcpy(ping, payload, size);
    post_value(&c->ping, seq, &c->echo_parked, use_futex);
    wait_value(&c->pong, seq, &c->init_parked, use_futex);
    double dt = now_s() - t;
    if (size > 0 && pong[0] != (char)seq) bad++;
    if (i >= 0) samples[i] = dt * 1e6;
  }
  atomic_store(&c->stop, 1);
  post_value(&c->ping, seq + 1, &c->echo_parked, use_futex);
  waitpid(pid, NULL, 0);
  qsort(samples, trips, sizeof(double), cmp_double);
#define PCT(p) samples[(long)((p) * trips + 0.999999) > 0 ? (long)((p) * trips + 0.999999) - 1 : 0]
  printf("{\"n\":%ld,\"bad\":%ld,\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}\n",
    trips, bad, PCT(0.5), PCT(0.99), PCT(0.999), samples[trips - 1]);
  return 0;
}

static int tput (size_t size, double seconds) {
  size_t cap = 1 << 20;
  while (cap < 8 * (size + 8)) cap <<= 1;
  char *mem = mmap(NULL, 4096 + cap, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) { perror("mmap"); return 1; }
  struct ctl *c = (struct ctl *)mem;
  char *ring = mem + 4096;
  size_t mask = cap - 1;
  int fds[2];
  if (pipe(fds) != 0) return 1;
  pid_t pid = fork();
  if (pid == 0) {
    // Consumer.
    uint64_t tail = 0, n = 0, bad = 0, bytes = 0, n_warm = 0;
    double t_first = 0, t_warm = 0, t_last = 0;
    for (;;) {
      uint64_t head = atomic_load_explicit(&c->head, memory_order_acquire);
      if (head == tail) {
        if (atomic_load(&c->stop) && atomic_load_explicit(&c->head, memory_order_acquire) == tail) break;
        cpu_relax();
        continue;
      }
      while (tail != head) {
        char *rec = ring + (tail & mask);
        uint32_t len = *(uint32_t *)rec, type = *(uint32_t *)(rec + 4);
        size_t adv = (8 + len + 7) & ~(size_t)7;
        if (type == 2) { tail += cap - (tail & mask); continue; }
        if (len != size || (size > 0 && (unsigned char)rec[8] != (unsigned char)(n & 15))) bad++;
        n++;
        bytes += len;
        tail += adv;
      }
      atomic_store_explicit(&c->tail, tail, memory_order_release);
      double t = now_s();
      if (t_first == 0) t_first = t;
      if (t_warm == 0 && t - t_first >= seconds * 0.2) { t_warm = t; n_warm = n; }
      t_last = t;
    }
    char line[256];
    int len = snprintf(line, sizeof line, "{\"n\":%llu,\"bad\":%llu,\"bytes\":%llu,\"measured\":%llu,\"seconds\":%.6f}\n",
      (unsigned long long)n, (unsigned long long)bad, (unsigned long long)bytes,
      (unsigned long long)(n - n_warm), t_last - t_warm);
    if (write(fds[1], line, len) < 0) _exit(1);
    _exit(0);
  }
  char *payloads[16];
  for (int j = 0; j < 16; j++) { payloads[j] = malloc(size ? size : 1); memset(payloads[j], 7, size); if (size) payloads[j][0] = (char)j; }
  uint64_t head = 0, tail_cache = 0, n = 0;
  size_t rec = (8 + size + 7) & ~(size_t)7;
  double start = now_s();
  for (;;) {
    if ((n & 63) == 0 && now_s() - start >= seconds) break;
    size_t idx = head & mask;
    size_t need = rec + (cap - idx < rec ? cap - idx : 0);
    while (cap - (head - tail_cache) < need) { tail_cache = atomic_load_explicit(&c->tail, memory_order_acquire); if (cap - (head - tail_cache) < need) cpu_relax(); }
    if (cap - idx < rec) {
      *(uint32_t *)(ring + idx) = (uint32_t)(cap - idx - 8);
      *(uint32_t *)(ring + idx + 4) = 2;
      head += cap - idx;
      idx = 0;
    }
    memcpy(ring + idx + 8, payloads[n & 15], size);
    *(uint32_t *)(ring + idx) = (uint32_t)size;
    *(uint32_t *)(ring + idx + 4) = 1 | 0x300;
    head += rec;
    atomic_store_explicit(&c->head, head, memory_order_release);
    n++;
  }
  atomic_store(&c->stop, 1);
  char buf[256] = {0};
  ssize_t got = read(fds[0], buf, sizeof buf - 1);
  waitpid(pid, NULL, 0);
  if (got <= 0) return 1;
  fputs(buf, stdout);
  return 0;
}

int main (int argc, char **argv) {
  if (argc >= 6 && strcmp(argv[1], "rtt") == 0) {
    return rtt(strcmp(argv[2], "futex") == 0, strtoul(argv[3], NULL, 10), atol(argv[4]), atol(argv[5]));
  }
  if (argc >= 4 && strcmp(argv[1], "tput") == 0) return tput(strtoul(argv[2], NULL, 10), atof(argv[3]));
  fprintf(stderr, "usage: ref rtt spin|futex <size> <trips> <warmup> | ref tput <size> <seconds>\n");
  return 2;
}
