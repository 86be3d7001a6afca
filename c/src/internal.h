/*
 * What the sources of shmc share: the segment's offsets (docs/protocol.md,
 * "The segment"; test/interop checks them against lib/channel/layout.ts),
 * the handle, and the helpers each file exports to the others.
 */
#ifndef SHMC_INTERNAL_H
#define SHMC_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdatomic.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include "shmc.h"

#define SHMC_MAGIC 0x434d4853u /* "SHMC" in memory order */
#define SHMC_VERSION_MAJOR 1u
#define SHMC_VERSION_MINOR 1u
#define SHMC_HEADER_SIZE 1024u
#define SHMC_MIN_CAPACITY 4096u
#define SHMC_MAX_CAPACITY (1u << 30)

/* Identity line. */
#define OFF_MAGIC 0
#define OFF_VERSION 4
#define OFF_HEADER_SIZE 8
#define OFF_CAPACITY 12
#define OFF_FLAGS 16
/* Producer line. */
#define OFF_PRODUCER_POSITION 128
#define OFF_MESSAGES_SENT 136
#define OFF_BYTES_SENT 144
#define OFF_TIMES_FULL 152
#define OFF_CONSUMER_WAKEUPS 156
#define OFF_ABANDONED_AT 160
/* Consumer line. */
#define OFF_CONSUMER_POSITION 256
#define OFF_MESSAGES_RECEIVED 264
#define OFF_BYTES_RECEIVED 272
#define OFF_PRODUCER_WAKEUPS 280
#define OFF_READ_MARK 284
/* Parked flags, each on its own line. */
#define OFF_CONSUMER_PARKED 384
#define OFF_PRODUCER_PARKED 512
/* Ends. */
#define OFF_PRODUCER_END 640
#define OFF_CONSUMER_END 656
#define OFF_PRODUCER_TAKEOVERS 672
#define OFF_CONSUMER_TAKEOVERS 676

/* An end slot: pid u32 @+0, start time u64 @+4 as two u32 halves (low @+4, high @+8), state u32 @+12. */
#define END_PID 0
#define END_START_LOW 4
#define END_START_HIGH 8
#define END_STATE 12
#define END_FREE 0u
#define END_OPEN 1u
#define END_CLOSED 2u
#define END_CLAIMING 3u

/* Records. */
#define RECORD_HEADER 8u
#define TYPE_DATA 0x01u
#define TYPE_PADDING 0x02u
#define TYPE_MASK 0xffu
#define FLAG_BEGIN 0x100u
#define FLAG_END 0x200u
#define FRAGMENT_TOTAL 8u

static inline uint32_t record_size(uint32_t payload) {
  return (payload + RECORD_HEADER + 7u) & ~7u;
}

struct shmc_channel {
  shmc_role role;
  char name[256];
  int fd;
  unsigned char *base;     /* the mapping: header, then ring */
  size_t size;
  unsigned char *ring;
  uint32_t capacity;
  uint32_t mask;
  uint32_t max_record;
  dev_t dev;               /* identity of the object mapped, for unlink-if-same */
  ino_t ino;
  shmc_options options;
  uint32_t own_end, peer_end;
  uint64_t last_peer_check_ns;

  /* Producer. */
  uint32_t position;       /* next record (producer); next unread record (consumer) */
  uint32_t peer_cache;     /* last consumer position seen (producer); producer position (consumer) */
  int64_t claim_index;     /* open claim's index, -1 if none */
  uint32_t claim_length;
  uint64_t messages, bytes;
  uint32_t wakeups, times_full;

  /* Consumer. */
  uint32_t released;       /* consumer position as last stored */
  int held;                /* a message was handed out and not released */
  const void *held_data;
  size_t held_length;
  unsigned char *partial;  /* reassembly of a message in fragments */
  uint64_t partial_total, partial_filled;
  int skipping;            /* dropping the rest of a message (too large) */
};

static inline _Atomic uint32_t *word(const shmc_channel *c, uint32_t offset) {
  return (_Atomic uint32_t *)(void *)(c->base + offset);
}

/* liveness.c */
uint64_t shmc_start_time(pid_t pid, int *exists, int *zombie);
uint64_t shmc_own_start_time(void);
int shmc_pid_runs(pid_t pid);
int shmc_alive(pid_t pid, uint64_t start_time);

/* ends.c */
typedef struct end_info { uint32_t pid; uint64_t start_time; uint32_t state; } end_info;
end_info shmc_read_end(const shmc_channel *c, uint32_t end);
int shmc_claim_end(shmc_channel *c, uint32_t end);
int shmc_end_live(const end_info *e);
int shmc_end_dead(const end_info *e);
int shmc_end_used_up(const end_info *e);

/* wait.c */
uint64_t shmc_now_ns(void);
void shmc_futex_wake(_Atomic uint32_t *word);
void shmc_wake_if_parked(_Atomic uint32_t *parked, _Atomic uint32_t *word);
typedef int (*shmc_ready_fn)(shmc_channel *c);
int shmc_wait_for(shmc_channel *c, shmc_ready_fn ready, _Atomic uint32_t *parked, _Atomic uint32_t *sleep_word, int timeout_ms);

/* ring.c */
void shmc_ring_attach(shmc_channel *c);
void shmc_ring_detach(shmc_channel *c);

#endif
