/*
 * The ring (docs/protocol.md, "Records", "Producing", "Consuming"): records
 * of an 8-byte header and a payload, 8-byte aligned, never wrapping; a
 * PADDING record fills the end of the ring when the next record does not fit.
 *
 * Ordering: the producer writes a record with plain stores and publishes it
 * with a sequentially consistent store of its position; the consumer loads
 * that position (acquire at least) before it reads the records below it, and
 * hands space back with a sequentially consistent store of its own position,
 * which the producer loads before it reuses the space. Each side then loads
 * the other's parked word: the store-then-load pair is what the sleeper's
 * park-then-recheck pairs with (wait.c).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

void shmc_ring_attach(shmc_channel *c) {
  c->ring = c->base + SHMC_HEADER_SIZE;
  c->mask = c->capacity - 1;
  c->max_record = c->capacity / 4 - RECORD_HEADER;
  c->claim_index = -1;
  if (c->role == SHMC_PRODUCER) {
    c->position = atomic_load(word(c, OFF_PRODUCER_POSITION));
    c->peer_cache = atomic_load(word(c, OFF_CONSUMER_POSITION));
    /* Counters: statistics of message bytes, kept by whoever holds the end (two u32 halves, low first). */
    c->messages = (uint64_t)atomic_load(word(c, OFF_MESSAGES_SENT)) | (uint64_t)atomic_load(word(c, OFF_MESSAGES_SENT + 4)) << 32;
    c->bytes = (uint64_t)atomic_load(word(c, OFF_BYTES_SENT)) | (uint64_t)atomic_load(word(c, OFF_BYTES_SENT + 4)) << 32;
    c->wakeups = atomic_load(word(c, OFF_CONSUMER_WAKEUPS));
    c->times_full = atomic_load(word(c, OFF_TIMES_FULL));
  } else {
    c->position = c->released = atomic_load(word(c, OFF_CONSUMER_POSITION));
    c->peer_cache = c->position;
    c->messages = (uint64_t)atomic_load(word(c, OFF_MESSAGES_RECEIVED)) | (uint64_t)atomic_load(word(c, OFF_MESSAGES_RECEIVED + 4)) << 32;
    c->bytes = (uint64_t)atomic_load(word(c, OFF_BYTES_RECEIVED)) | (uint64_t)atomic_load(word(c, OFF_BYTES_RECEIVED + 4)) << 32;
    c->wakeups = atomic_load(word(c, OFF_PRODUCER_WAKEUPS));
  }
}

void shmc_ring_detach(shmc_channel *c) {
  free(c->partial);
  c->partial = NULL;
}

static void store_u64(shmc_channel *c, uint32_t offset, uint64_t value) {
  atomic_store_explicit(word(c, offset), (uint32_t)value, memory_order_relaxed);
  atomic_store_explicit(word(c, offset + 4), (uint32_t)(value >> 32), memory_order_relaxed);
}

static void count(shmc_channel *c, uint64_t length) {
  c->messages++;
  c->bytes += length;
  store_u64(c, c->role == SHMC_PRODUCER ? OFF_MESSAGES_SENT : OFF_MESSAGES_RECEIVED, c->messages);
  store_u64(c, c->role == SHMC_PRODUCER ? OFF_BYTES_SENT : OFF_BYTES_RECEIVED, c->bytes);
}

/*
 * The peer, as a waiting side sees it: SHMC_ECLOSED, SHMC_EPEER_DEAD, or
 * SHMC_EAGAIN (open, or not attached yet: keep waiting). The state is one
 * load; liveness reads /proc, so at most once per peer_check_ms.
 */
static int peer_gone(shmc_channel *c, int force) {
  uint32_t state = atomic_load(word(c, c->peer_end + END_STATE));
  if (state == END_CLOSED) return SHMC_ECLOSED;
  uint64_t now = shmc_now_ns();
  if (!force && now - c->last_peer_check_ns < (uint64_t)c->options.peer_check_ms * 1000000u) return SHMC_EAGAIN;
  c->last_peer_check_ns = now;
  end_info peer = shmc_read_end(c, c->peer_end);
  if (peer.state == END_CLOSED) return SHMC_ECLOSED;
  return shmc_end_dead(&peer) ? SHMC_EPEER_DEAD : SHMC_EAGAIN;
}

int shmc_peer_status(shmc_channel *c) {
  int r = peer_gone(c, 1);
  return r == SHMC_EAGAIN ? SHMC_OK : r;
}

/* ---- Producer ---------------------------------------------------------- */

static void publish(shmc_channel *c) {
  /* Sequentially consistent: every record byte written before is visible to a consumer that loads this. */
  atomic_store(word(c, OFF_PRODUCER_POSITION), c->position);
  _Atomic uint32_t *parked = word(c, OFF_CONSUMER_PARKED);
  if (atomic_load(parked) != 0 && atomic_exchange(parked, 0) != 0) {
    atomic_store_explicit(word(c, OFF_CONSUMER_WAKEUPS), ++c->wakeups, memory_order_relaxed);
    shmc_futex_wake(word(c, OFF_PRODUCER_POSITION));
  }
}

/* Bytes a record of `payload` bytes needs at the current index, padding before it included. */
static uint32_t room_needed(const shmc_channel *c, uint32_t payload) {
  uint32_t need = record_size(payload), to_end = c->capacity - (c->position & c->mask);
  return to_end < need ? to_end + need : need;
}

static int has_room(shmc_channel *c, uint32_t need) {
  if (c->capacity - (c->position - c->peer_cache) >= need) return SHMC_OK;
  /* Acquire: the consumer read those bytes before it released them. */
  c->peer_cache = atomic_load_explicit(word(c, OFF_CONSUMER_POSITION), memory_order_acquire);
  return c->capacity - (c->position - c->peer_cache) >= need ? SHMC_OK : SHMC_EAGAIN;
}

static int room_ready(shmc_channel *c) {
  int gone = peer_gone(c, 0);
  if (gone != SHMC_EAGAIN) return gone;
  return has_room(c, room_needed(c, c->claim_length));
}

/* Finds room for a record of `payload` bytes, writing a PADDING record first if it must go to index 0. Returns its index. */
static int reserve(shmc_channel *c, uint32_t payload, uint32_t *index, int timeout_ms) {
  int gone = peer_gone(c, 0);
  if (gone != SHMC_EAGAIN) return gone;
  c->claim_length = payload;
  if (has_room(c, room_needed(c, payload)) != SHMC_OK) {
    atomic_store_explicit(word(c, OFF_TIMES_FULL), ++c->times_full, memory_order_relaxed);
    int r = shmc_wait_for(c, room_ready, word(c, OFF_PRODUCER_PARKED), word(c, OFF_CONSUMER_POSITION), timeout_ms);
    if (r != SHMC_OK) return r;
  }
  uint32_t i = c->position & c->mask, to_end = c->capacity - i;
  if (to_end < record_size(payload)) {
    uint32_t *h = (uint32_t *)(void *)(c->ring + i);
    h[0] = to_end - RECORD_HEADER;
    h[1] = TYPE_PADDING; /* flags exactly 0 */
    c->position += to_end;
    i = 0;
  }
  *index = i;
  return SHMC_OK;
}

static void write_record(shmc_channel *c, uint32_t index, uint32_t length, uint32_t flags) {
  uint32_t *h = (uint32_t *)(void *)(c->ring + index);
  h[0] = length;
  h[1] = TYPE_DATA | flags;
  c->position += record_size(length);
}

int shmc_claim(shmc_channel *c, size_t length, void **payload, int timeout_ms) {
  if (c->role != SHMC_PRODUCER) return SHMC_EARG;
  if (c->claim_index != -1) return SHMC_EBUSY;
  if (length > c->max_record) return SHMC_ETOO_LARGE;
  uint32_t index;
  int r = reserve(c, (uint32_t)length, &index, timeout_ms);
  if (r != SHMC_OK) return r;
  c->claim_index = index;
  c->claim_length = (uint32_t)length;
  *payload = c->ring + index + RECORD_HEADER;
  return SHMC_OK;
}

int shmc_commit(shmc_channel *c, size_t length) {
  if (c->claim_index == -1) return SHMC_EBUSY;
  if (length > c->claim_length) return SHMC_EARG;
  write_record(c, (uint32_t)c->claim_index, (uint32_t)length, FLAG_BEGIN | FLAG_END);
  c->claim_index = -1;
  count(c, length);
  publish(c);
  return SHMC_OK;
}

int shmc_abort(shmc_channel *c) {
  if (c->claim_index == -1) return SHMC_EBUSY;
  /* A padding record written by the claim stays: publishing it later is harmless. */
  c->claim_index = -1;
  return SHMC_OK;
}

int shmc_send(shmc_channel *c, const void *data, size_t length, int timeout_ms) {
  if (c->role != SHMC_PRODUCER) return SHMC_EARG;
  if (c->claim_index != -1) return SHMC_EBUSY;
  uint32_t index;
  if (length <= c->max_record) {
    int r = reserve(c, (uint32_t)length, &index, timeout_ms);
    if (r != SHMC_OK) return r;
    memcpy(c->ring + index + RECORD_HEADER, data, length);
    write_record(c, index, (uint32_t)length, FLAG_BEGIN | FLAG_END);
    count(c, length);
    publish(c);
    return SHMC_OK;
  }
  /*
   * Fragments: BEGIN (the total as a u64, then the first bytes), middle
   * records, END; each published as soon as it is written, so that a
   * message larger than the ring goes through while the consumer reads it.
   * The wait between fragments is the whole timeout again: a message is
   * never left half-sent by a timeout after its first fragment... except by
   * a peer that closed or died, which the consumer sees anyway.
   */
  const unsigned char *bytes = data;
  size_t offset = 0;
  int first = 1;
  while (offset < length) {
    uint32_t prefix = first ? FRAGMENT_TOTAL : 0;
    size_t chunk = length - offset;
    if (chunk > c->max_record - prefix) chunk = c->max_record - prefix;
    int r = reserve(c, prefix + (uint32_t)chunk, &index, first ? timeout_ms : -1);
    if (r != SHMC_OK) return r;
    unsigned char *p = c->ring + index + RECORD_HEADER;
    if (first) {
      uint64_t total = length;
      memcpy(p, &total, 8);
    }
    memcpy(p + prefix, bytes + offset, chunk);
    offset += chunk;
    write_record(c, index, prefix + (uint32_t)chunk, (first ? FLAG_BEGIN : 0) | (offset == length ? FLAG_END : 0));
    if (offset == length) count(c, length);
    publish(c);
    first = 0;
  }
  return SHMC_OK;
}

/* ---- Consumer ---------------------------------------------------------- */

static void release_to(shmc_channel *c, uint32_t position) {
  c->released = position;
  /* Sequentially consistent: the producer that loads it may overwrite what lies before it. */
  atomic_store(word(c, OFF_CONSUMER_POSITION), position);
  _Atomic uint32_t *parked = word(c, OFF_PRODUCER_PARKED);
  if (atomic_load(parked) != 0 && atomic_exchange(parked, 0) != 0) {
    atomic_store_explicit(word(c, OFF_PRODUCER_WAKEUPS), ++c->wakeups, memory_order_relaxed);
    shmc_futex_wake(word(c, OFF_CONSUMER_POSITION));
  }
}

int shmc_release(shmc_channel *c) {
  if (c->role != SHMC_CONSUMER) return SHMC_EARG;
  if (!c->held) return SHMC_EBUSY;
  c->held = 0;
  if (c->position != c->released) release_to(c, c->position);
  return SHMC_OK;
}

static void drop_partial(shmc_channel *c) {
  free(c->partial);
  c->partial = NULL;
  c->partial_total = c->partial_filled = 0;
  c->skipping = 0;
}

/* The record at position was written after the last producer takeover began (docs/protocol.md, "Taking over"). */
static int abandoned(shmc_channel *c, uint32_t position) {
  if ((atomic_load(word(c, OFF_PRODUCER_TAKEOVERS)) >> 1) == 0) return 0;
  return position - atomic_load(word(c, OFF_ABANDONED_AT)) < c->capacity;
}

/*
 * Finds the next whole message: SHMC_OK with held_data/held_length set,
 * SHMC_EAGAIN if none is complete, or an error for records that break the protocol.
 */
static int next_message(shmc_channel *c) {
  for (;;) {
    if (c->position == c->peer_cache) {
      uint32_t p = atomic_load_explicit(word(c, OFF_PRODUCER_POSITION), memory_order_acquire);
      if (p - c->position > c->capacity) return SHMC_EINVALID_SEGMENT;
      c->peer_cache = p;
      if (c->position == p) return SHMC_EAGAIN;
    }
    uint32_t index = c->position & c->mask, to_end = c->capacity - index;
    uint32_t available = c->peer_cache - c->position;
    const uint32_t *h = (const uint32_t *)(const void *)(c->ring + index);
    uint32_t length = h[0], type = h[1];
    if ((type & TYPE_MASK) == TYPE_PADDING) {
      if (type != TYPE_PADDING || length != to_end - RECORD_HEADER || to_end > available) return SHMC_EINVALID_SEGMENT;
      c->position += to_end;
      continue;
    }
    if (length > c->max_record) return SHMC_EINVALID_SEGMENT;
    uint32_t size = record_size(length);
    if ((type & ~(FLAG_BEGIN | FLAG_END)) != TYPE_DATA || size > to_end || size > available) return SHMC_EINVALID_SEGMENT;
    const unsigned char *payload = c->ring + index + RECORD_HEADER;
    int begin = (type & FLAG_BEGIN) != 0, end = (type & FLAG_END) != 0;
    int inside = c->partial != NULL || c->skipping;
    if (begin && inside && abandoned(c, c->position)) {
      drop_partial(c); /* its producer died mid-message; this is its successor's first */
      continue;
    }
    c->position += size;
    if (begin && end) {
      if (inside) return SHMC_EINVALID_SEGMENT;
      count(c, length);
      /* A plain store: only a consumer taking over after this one died reads it. */
      atomic_store_explicit(word(c, OFF_READ_MARK), c->position, memory_order_relaxed);
      if (length > c->options.max_message_size) {
        release_to(c, c->position);
        return SHMC_ETOO_LARGE;
      }
      c->held_data = payload;
      c->held_length = length;
      return SHMC_OK;
    }
    if (begin) {
      if (inside || end || length < FRAGMENT_TOTAL) return SHMC_EINVALID_SEGMENT;
      uint64_t total;
      memcpy(&total, payload, 8);
      if (total <= length - FRAGMENT_TOTAL) return SHMC_EINVALID_SEGMENT;
      if (total > c->options.max_message_size || total > SIZE_MAX / 2) {
        /* The announced length is a claim, not a fact: never allocate past the limit. */
        c->skipping = 1;
        count(c, total);
        release_to(c, c->position);
        return SHMC_ETOO_LARGE;
      }
      c->partial = malloc(total);
      if (c->partial == NULL) return SHMC_ESYS;
      c->partial_total = total;
      c->partial_filled = length - FRAGMENT_TOTAL;
      memcpy(c->partial, payload + FRAGMENT_TOTAL, length - FRAGMENT_TOTAL);
    } else if (c->skipping) {
      if (end) c->skipping = 0;
    } else {
      if (c->partial == NULL) return SHMC_EINVALID_SEGMENT; /* continues no message */
      if (c->partial_filled + length > c->partial_total) return SHMC_EINVALID_SEGMENT;
      memcpy(c->partial + c->partial_filled, payload, length);
      c->partial_filled += length;
    }
    /* A fragment is copied out: release its space now, or a message larger than the ring never finishes. */
    release_to(c, c->position);
    if (end && !c->skipping && c->partial != NULL) {
      if (c->partial_filled != c->partial_total) return SHMC_EINVALID_SEGMENT;
      count(c, c->partial_total);
      c->held_data = c->partial;
      c->held_length = c->partial_total;
      return SHMC_OK;
    }
  }
}

static int message_ready(shmc_channel *c) {
  int r = next_message(c);
  if (r != SHMC_EAGAIN) return r;
  int gone = peer_gone(c, 0);
  if (gone == SHMC_EAGAIN) return SHMC_EAGAIN;
  /* The peer closed or died: what it published before is still delivered. Look once more. */
  r = next_message(c);
  return r != SHMC_EAGAIN ? r : gone;
}

int shmc_read(shmc_channel *c, const void **data, size_t *length, int timeout_ms) {
  if (c->role != SHMC_CONSUMER) return SHMC_EARG;
  if (!c->held) {
    /* A reassembled message handed out before is freed when the next one is looked for. */
    if (c->held_data != NULL && c->held_data == c->partial) drop_partial(c);
    c->held_data = NULL;
    int r = shmc_wait_for(c, message_ready, word(c, OFF_CONSUMER_PARKED), word(c, OFF_PRODUCER_POSITION), timeout_ms);
    if (r != SHMC_OK) return r;
    c->held = 1;
  }
  *data = c->held_data;
  *length = c->held_length;
  return SHMC_OK;
}

int shmc_receive(shmc_channel *c, void *buffer, size_t capacity, size_t *length, int timeout_ms) {
  const void *data;
  int r = shmc_read(c, &data, length, timeout_ms);
  if (r != SHMC_OK) return r;
  if (*length > capacity) return SHMC_ETOO_LARGE; /* still held: read it with a larger buffer */
  memcpy(buffer, data, *length);
  return shmc_release(c);
}
