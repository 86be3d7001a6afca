/*
 * Seeded test messages, the same in C and in test/fixtures/c-messages.ts:
 * sizes from mulberry32(seed), bytes a pure function of (seed, seq, j).
 *
 *   90 %: 8 to 256 bytes; 9 %: 257 bytes to a quarter of the ring;
 *   1 %: a quarter of the ring to four times that (fragments).
 *   bytes 0..3: seq (u32 LE), 4..7: the size (u32 LE), then pattern bytes.
 */
#ifndef SHMC_MESSAGES_H
#define SHMC_MESSAGES_H

#include <stdint.h>
#include <stddef.h>

typedef struct prng { uint32_t state; } prng;

static inline uint32_t prng_u32(prng *r) {
  uint32_t t = (r->state += 0x6d2b79f5u);
  t = (t ^ (t >> 15)) * (t | 1u);
  t ^= t + (t ^ (t >> 7)) * (t | 61u);
  return t ^ (t >> 14);
}

static inline uint32_t message_size(prng *r, uint32_t capacity) {
  uint32_t quarter = capacity / 4, bucket = prng_u32(r) % 100;
  if (bucket < 90) return 8 + prng_u32(r) % 249;
  if (bucket < 99) return 257 + prng_u32(r) % (quarter - 257);
  return quarter + prng_u32(r) % (3 * quarter);
}

static inline uint8_t message_byte(uint32_t seed, uint32_t seq, uint32_t j) {
  uint32_t x = seq * 0x9e3779b1u + seed;
  return (uint8_t)((x >> ((j & 3) * 8)) + j);
}

static inline void message_fill(uint8_t *p, uint32_t seed, uint32_t seq, uint32_t size) {
  for (uint32_t j = 8; j < size; j++) p[j] = message_byte(seed, seq, j);
  for (int k = 0; k < 4; k++) {
    p[k] = (uint8_t)(seq >> (8 * k));
    p[4 + k] = (uint8_t)(size >> (8 * k));
  }
}

/* 1 when p holds message seq of this size. */
static inline int message_check(const uint8_t *p, size_t length, uint32_t seed, uint32_t seq, uint32_t size) {
  if (length != size || length < 8) return 0;
  uint32_t s = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
  uint32_t n = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
  if (s != seq || n != size) return 0;
  for (uint32_t j = 8; j < size; j++) if (p[j] != message_byte(seed, seq, j)) return 0;
  return 1;
}

#endif
