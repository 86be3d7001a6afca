/*
 * The C end of the interop tests (test/interop): one producer or consumer
 * of a channel, driven by its arguments, reporting on stdout one line per
 * event so the Node side can wait for the state itself:
 *
 *   shmc-peer produce NAME SEED COUNT CAPACITY WAIT   sends COUNT seeded messages, then closes
 *   shmc-peer consume NAME SEED COUNT CAPACITY WAIT   receives and checks COUNT, then waits for the close
 *   shmc-peer hold-producer NAME CAPACITY WAIT        fills the ring ("full"), then sends until a send fails
 *   shmc-peer hold-consumer NAME CAPACITY WAIT        reads until a read fails
 *   shmc-peer idle-producer|idle-consumer NAME CAPACITY  opens and does nothing more (to be killed)
 *   shmc-peer garbage NAME CAPACITY                   creates a channel and publishes a broken record
 *
 * WAIT is adaptive, spin or block. Lines: "open", "parked", "done <messages> <bytes> <ms>
 * <times full> <wake-ups to consumer> <wake-ups to producer>", "result <ERR_...>".
 */
#include "../include/shmc.h"
#include "../src/internal.h"
#include "messages.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *code_name(int r) {
  switch (r) {
    case SHMC_OK: return "OK";
    case SHMC_EAGAIN: return "EAGAIN";
    case SHMC_ETIMEDOUT: return "ERR_TIMEOUT";
    case SHMC_ECLOSED: return "ERR_CHANNEL_CLOSED";
    case SHMC_EPEER_DEAD: return "ERR_PEER_DEAD";
    case SHMC_EINVALID_SEGMENT: return "ERR_INVALID_SEGMENT";
    case SHMC_EEND_TAKEN: return "ERR_END_TAKEN";
    case SHMC_ETOO_LARGE: return "ERR_MESSAGE_TOO_LARGE";
    default: return shmc_strerror(r);
  }
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#include <stdarg.h>
static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
}

static shmc_wait parse_wait(const char *s) {
  if (strcmp(s, "spin") == 0) return SHMC_WAIT_SPIN;
  if (strcmp(s, "block") == 0) return SHMC_WAIT_BLOCK;
  return SHMC_WAIT_ADAPTIVE;
}

static shmc_channel *open_or_die(const char *name, shmc_role role, uint32_t capacity, shmc_wait wait) {
  shmc_options o = { .capacity = capacity, .wait = wait, .peer_check_ms = 100 };
  shmc_channel *c;
  int r = shmc_open(&c, name, role, &o);
  if (r != SHMC_OK) {
    say("result %s", code_name(r));
    exit(2);
  }
  say("open");
  return c;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void report(shmc_channel *c, uint32_t messages, uint64_t bytes, double ms) {
  say("done %u %llu %.1f %u %u %u", messages, (unsigned long long)bytes, ms,
      atomic_load(word(c, OFF_TIMES_FULL)), atomic_load(word(c, OFF_CONSUMER_WAKEUPS)), atomic_load(word(c, OFF_PRODUCER_WAKEUPS)));
}

/* Sends COUNT messages: by copy, or (every other message that fits one record) by claim and commit. */
static int produce(const char *name, uint32_t seed, uint32_t count, uint32_t capacity, shmc_wait wait) {
  shmc_channel *c = open_or_die(name, SHMC_PRODUCER, capacity, wait);
  prng sizes = { seed };
  uint8_t *scratch = malloc(capacity);
  uint64_t bytes = 0;
  double t0 = now_ms();
  for (uint32_t seq = 0; seq < count; seq++) {
    uint32_t size = message_size(&sizes, capacity);
    int r;
    if ((seq & 1) && size <= shmc_max_record(c)) {
      void *p;
      r = shmc_claim(c, size, &p, 60000);
      if (r == SHMC_OK) {
        message_fill(p, seed, seq, size);
        r = shmc_commit(c, size);
      }
    } else {
      message_fill(scratch, seed, seq, size);
      r = shmc_send(c, scratch, size, 60000);
    }
    if (r != SHMC_OK) {
      say("result %s at %u", code_name(r), seq);
      return 1;
    }
    bytes += size;
  }
  report(c, count, bytes, now_ms() - t0);
  shmc_close(c);
  free(scratch);
  return 0;
}

/* Receives and checks COUNT messages (in place, or copied, alternately), then waits for what comes after. */
static int consume(const char *name, uint32_t seed, uint32_t count, uint32_t capacity, shmc_wait wait) {
  shmc_channel *c = open_or_die(name, SHMC_CONSUMER, capacity, wait);
  prng sizes = { seed };
  size_t room = 4 * (size_t)capacity;
  uint8_t *buffer = malloc(room);
  uint64_t bytes = 0;
  double t0 = now_ms();
  for (uint32_t seq = 0; seq < count; seq++) {
    uint32_t size = message_size(&sizes, capacity);
    const void *data;
    size_t length;
    int r = seq & 1 ? shmc_receive(c, buffer, room, &length, 60000) : shmc_read(c, &data, &length, 60000);
    if (r != SHMC_OK) {
      say("result %s at %u", code_name(r), seq);
      return 1;
    }
    if (!message_check(seq & 1 ? buffer : data, length, seed, seq, size)) {
      say("result BAD_MESSAGE at %u (%zu bytes, expected %u)", seq, length, size);
      return 1;
    }
    if (!(seq & 1)) shmc_release(c);
    bytes += length;
  }
  report(c, count, bytes, now_ms() - t0);
  const void *data;
  size_t length;
  int r = shmc_read(c, &data, &length, 60000);
  say("result %s", code_name(r));
  shmc_close(c);
  free(buffer);
  return 0;
}

/* Fills the ring, says "parked" once the producer-parked word is up, and reports what ends the wait. */
static int hold_producer(const char *name, uint32_t capacity, shmc_wait wait) {
  shmc_channel *c = open_or_die(name, SHMC_PRODUCER, capacity, wait);
  uint8_t message[64] = { 0 };
  int r;
  while ((r = shmc_send(c, message, sizeof message, 0)) == SHMC_OK) {}
  if (r == SHMC_EAGAIN) {
    say("full");
    r = shmc_send(c, message, sizeof message, 30000);
  }
  say("result %s", code_name(r));
  shmc_close(c);
  return 0;
}

static int hold_consumer(const char *name, uint32_t capacity, shmc_wait wait) {
  shmc_channel *c = open_or_die(name, SHMC_CONSUMER, capacity, wait);
  const void *data;
  size_t length;
  int r;
  while ((r = shmc_read(c, &data, &length, 30000)) == SHMC_OK) shmc_release(c);
  say("result %s", code_name(r));
  shmc_close(c);
  return 0;
}

static _Noreturn int idle(const char *name, shmc_role role, uint32_t capacity) {
  open_or_die(name, role, capacity, SHMC_WAIT_BLOCK);
  for (;;) pause();
}

/* A producer that breaks the protocol: a record of an unknown type, published. */
static int garbage(const char *name, uint32_t capacity) {
  shmc_channel *c = open_or_die(name, SHMC_PRODUCER, capacity, SHMC_WAIT_BLOCK);
  uint32_t *record = (uint32_t *)(void *)c->ring;
  record[0] = 16;
  record[1] = 0x7f | FLAG_BEGIN | FLAG_END;
  atomic_store(word(c, OFF_PRODUCER_POSITION), 24);
  shmc_futex_wake(word(c, OFF_PRODUCER_POSITION));
  say("published");
  /* Stay until the consumer has closed (it refused the segment), so the name is removed by the last one out. */
  while (atomic_load(word(c, OFF_CONSUMER_END + END_STATE)) != END_CLOSED) {
    struct timespec ts = { 0, 1000000 };
    nanosleep(&ts, NULL);
  }
  shmc_close(c);
  say("result OK");
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 7 && strcmp(argv[1], "produce") == 0)
    return produce(argv[2], (uint32_t)strtoul(argv[3], NULL, 0), (uint32_t)strtoul(argv[4], NULL, 0), (uint32_t)strtoul(argv[5], NULL, 0), parse_wait(argv[6]));
  if (argc >= 7 && strcmp(argv[1], "consume") == 0)
    return consume(argv[2], (uint32_t)strtoul(argv[3], NULL, 0), (uint32_t)strtoul(argv[4], NULL, 0), (uint32_t)strtoul(argv[5], NULL, 0), parse_wait(argv[6]));
  if (argc >= 5 && strcmp(argv[1], "hold-producer") == 0) return hold_producer(argv[2], (uint32_t)strtoul(argv[3], NULL, 0), parse_wait(argv[4]));
  if (argc >= 5 && strcmp(argv[1], "hold-consumer") == 0) return hold_consumer(argv[2], (uint32_t)strtoul(argv[3], NULL, 0), parse_wait(argv[4]));
  if (argc >= 4 && strcmp(argv[1], "idle-producer") == 0) return idle(argv[2], SHMC_PRODUCER, (uint32_t)strtoul(argv[3], NULL, 0));
  if (argc >= 4 && strcmp(argv[1], "idle-consumer") == 0) return idle(argv[2], SHMC_CONSUMER, (uint32_t)strtoul(argv[3], NULL, 0));
  if (argc >= 4 && strcmp(argv[1], "garbage") == 0) return garbage(argv[2], (uint32_t)strtoul(argv[3], NULL, 0));
  fprintf(stderr, "usage: shmc-peer produce|consume NAME SEED COUNT CAPACITY WAIT | hold-producer|hold-consumer NAME CAPACITY WAIT | idle-producer|idle-consumer NAME CAPACITY | garbage NAME CAPACITY\n");
  return 64;
}
