/*
 * Opening, creating and closing a channel's segment (docs/protocol.md,
 * "Creating and attaching", "Ends", "Closing").
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(unsigned ms) {
  struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
  nanosleep(&ts, NULL);
}

static int sys_fail(void) { return SHMC_ESYS; }

/* Removes the name only while it still refers to the object c mapped (same device and inode). */
static void unlink_if_same(shmc_channel *c) {
  int fd = shm_open(c->name, O_RDONLY, 0);
  if (fd < 0) return;
  struct stat st;
  int same = fstat(fd, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino;
  close(fd);
  if (same) shm_unlink(c->name);
}

static void unmap(shmc_channel *c) {
  if (c->base != NULL) munmap(c->base, c->size);
  if (c->fd >= 0) close(c->fd);
  c->base = NULL;
  c->fd = -1;
}

/* Creates the object exclusively, sizes it, writes the header, takes the end, and publishes the magic last. */
static int create(shmc_channel *c) {
  int fd = shm_open(c->name, O_RDWR | O_CREAT | O_EXCL, c->options.mode);
  if (fd < 0) return errno == EEXIST ? SHMC_EAGAIN : sys_fail();
  size_t size = SHMC_HEADER_SIZE + (size_t)c->options.capacity;
  struct stat st;
  int err;
  if (ftruncate(fd, (off_t)size) != 0 || fstat(fd, &st) != 0) goto fail;
  if ((err = posix_fallocate(fd, 0, (off_t)size)) != 0 && err != EINVAL && err != EOPNOTSUPP) {
    errno = err;
    goto fail;
  }
  c->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (c->base == MAP_FAILED) {
    c->base = NULL;
    goto fail;
  }
  c->fd = fd;
  c->size = size;
  c->dev = st.st_dev;
  c->ino = st.st_ino;
  c->capacity = c->options.capacity;
  atomic_store_explicit(word(c, OFF_VERSION), (SHMC_VERSION_MAJOR << 16) | SHMC_VERSION_MINOR, memory_order_relaxed);
  atomic_store_explicit(word(c, OFF_HEADER_SIZE), SHMC_HEADER_SIZE, memory_order_relaxed);
  atomic_store_explicit(word(c, OFF_CAPACITY), c->capacity, memory_order_relaxed);
  shmc_claim_end(c, c->own_end);
  /* Sequentially consistent, and last: an opener that loads the magic sees every field above. */
  atomic_store(word(c, OFF_MAGIC), SHMC_MAGIC);
  return SHMC_OK;
fail:
  err = errno;
  shm_unlink(c->name);
  close(fd);
  errno = err;
  return SHMC_ESYS;
}

/* The header's identity and shape, checked before anything else is trusted. */
static int check_header(shmc_channel *c, size_t object_size) {
  uint32_t version = atomic_load(word(c, OFF_VERSION));
  if (version >> 16 != SHMC_VERSION_MAJOR) return SHMC_EINVALID_SEGMENT;
  if (atomic_load(word(c, OFF_HEADER_SIZE)) != SHMC_HEADER_SIZE) return SHMC_EINVALID_SEGMENT;
  uint32_t capacity = atomic_load(word(c, OFF_CAPACITY));
  if (capacity < SHMC_MIN_CAPACITY || capacity > SHMC_MAX_CAPACITY || (capacity & (capacity - 1)) != 0) return SHMC_EINVALID_SEGMENT;
  if (SHMC_HEADER_SIZE + (size_t)capacity > object_size) return SHMC_EINVALID_SEGMENT;
  uint32_t p = atomic_load(word(c, OFF_PRODUCER_POSITION)), q = atomic_load(word(c, OFF_CONSUMER_POSITION));
  if (((p | q) & 7u) != 0 || p - q > capacity) return SHMC_EINVALID_SEGMENT;
  c->capacity = capacity;
  return SHMC_OK;
}

typedef enum verdict { JOINED, RETRY, STALE, UNFINISHED } verdict;

/* What the opener does with an existing channel, for its end (the table of docs/protocol.md, "Ends"). */
static int judge(shmc_channel *c, verdict *v) {
  end_info mine = shmc_read_end(c, c->own_end), theirs = shmc_read_end(c, c->peer_end);
  if (mine.state == END_FREE && mine.pid == 0) {
    /* An arriving peer (opening or claiming, its pid running) is not used up: join it. */
    if (c->role == SHMC_CONSUMER || !shmc_end_used_up(&theirs)) {
      *v = shmc_claim_end(c, c->own_end) ? JOINED : RETRY;
      return SHMC_OK;
    }
    *v = STALE;
    return SHMC_OK;
  }
  if (shmc_end_live(&mine)) return SHMC_EEND_TAKEN;
  if (mine.state == END_CLOSED) {
    *v = STALE;
    return SHMC_OK;
  }
  if (!shmc_end_dead(&mine)) {
    /* Arriving: another process is opening or taking over this end. Look again until its state changes. */
    *v = RETRY;
    return SHMC_OK;
  }
  /* Dead (open, claiming or opening, its holder gone). Worth a takeover if the other end is live or arriving, or bytes are unread. */
  uint32_t unread = atomic_load(word(c, OFF_PRODUCER_POSITION)) - atomic_load(word(c, OFF_CONSUMER_POSITION));
  int producer_gone = c->role == SHMC_PRODUCER && theirs.state == END_CLOSED;
  if (!producer_gone && (!shmc_end_used_up(&theirs) || theirs.state == END_FREE || unread != 0)) return SHMC_EDEAD_END;
  *v = STALE;
  return SHMC_OK;
}

/* Opens an existing object: waits for its size and magic, checks it, maps it whole, and judges it. */
static int attach(shmc_channel *c, verdict *v) {
  int fd = shm_open(c->name, O_RDWR, 0);
  if (fd < 0) {
    if (errno == ENOENT) {
      *v = RETRY;
      return SHMC_OK;
    }
    return SHMC_ESYS;
  }
  c->fd = fd;
  struct stat st;
  if (fstat(fd, &st) != 0) return SHMC_ESYS;
  if (st.st_uid != geteuid() && !c->options.allow_foreign_owner) {
    errno = EPERM;
    return SHMC_ESYS;
  }
  c->dev = st.st_dev;
  c->ino = st.st_ino;
  /* The creator may not have sized the object yet, nor published the magic: wait for both. */
  uint64_t deadline = shmc_now_ns() + (uint64_t)c->options.open_timeout_ms * 1000000u;
  for (;;) {
    if ((size_t)st.st_size >= SHMC_HEADER_SIZE) {
      if (c->base == NULL) {
        c->base = mmap(NULL, SHMC_HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (c->base == MAP_FAILED) {
          c->base = NULL;
          return SHMC_ESYS;
        }
        c->size = SHMC_HEADER_SIZE;
      }
      uint32_t magic = atomic_load(word(c, OFF_MAGIC));
      if (magic != 0) {
        if (magic != SHMC_MAGIC) return SHMC_EINVALID_SEGMENT;
        break;
      }
    }
    if (shmc_now_ns() >= deadline) {
      *v = UNFINISHED;
      return SHMC_OK;
    }
    sleep_ms(1);
    if (fstat(fd, &st) != 0) return SHMC_ESYS;
  }
  int r = check_header(c, (size_t)st.st_size);
  if (r != SHMC_OK) return r;
  munmap(c->base, c->size);
  c->size = SHMC_HEADER_SIZE + (size_t)c->capacity;
  c->base = mmap(NULL, c->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (c->base == MAP_FAILED) {
    c->base = NULL;
    return SHMC_ESYS;
  }
  return judge(c, v);
}

static int fill_options(shmc_options *o, const shmc_options *given) {
  if (given != NULL) *o = *given;
  else memset(o, 0, sizeof *o);
  if (o->capacity == 0) o->capacity = 65536;
  if (o->capacity < SHMC_MIN_CAPACITY || o->capacity > SHMC_MAX_CAPACITY || (o->capacity & (o->capacity - 1)) != 0) return SHMC_EARG;
  if (o->mode == 0) o->mode = 0600;
  if (o->open_timeout_ms == 0) o->open_timeout_ms = 5000;
  if (o->spin_micros == 0) o->spin_micros = 50;
  if (o->peer_check_ms == 0) o->peer_check_ms = 250;
  if (o->max_message_size == 0) o->max_message_size = 256u << 20;
  if (o->wait != SHMC_WAIT_ADAPTIVE && o->wait != SHMC_WAIT_SPIN && o->wait != SHMC_WAIT_BLOCK) return SHMC_EARG;
  return SHMC_OK;
}

int shmc_open(shmc_channel **out, const char *name, shmc_role role, const shmc_options *options) {
  *out = NULL;
  if (name == NULL || name[0] == '\0' || strlen(name) > 200 || strchr(name, '/') != NULL) return SHMC_EARG;
  if (role != SHMC_PRODUCER && role != SHMC_CONSUMER) return SHMC_EARG;
  shmc_channel *c = calloc(1, sizeof *c);
  if (c == NULL) return SHMC_ESYS;
  int r = fill_options(&c->options, options);
  if (r != SHMC_OK) {
    free(c);
    return r;
  }
  c->role = role;
  c->name[0] = '/';
  strcpy(c->name + 1, name);
  c->own_end = role == SHMC_PRODUCER ? OFF_PRODUCER_END : OFF_CONSUMER_END;
  c->peer_end = role == SHMC_PRODUCER ? OFF_CONSUMER_END : OFF_PRODUCER_END;
  c->fd = -1;
  int unfinished = 0;
  for (;;) {
    r = create(c);
    if (r == SHMC_OK) break;
    if (r != SHMC_EAGAIN) goto fail;
    verdict v = RETRY;
    r = attach(c, &v);
    if (r != SHMC_OK) goto fail;
    if (v == JOINED) break;
    if (v == UNFINISHED && unfinished++ > 0) {
      r = SHMC_ETIMEDOUT;
      goto fail;
    }
    if (v == STALE || v == UNFINISHED) unlink_if_same(c);
    unmap(c);
    if (v == RETRY) sleep_ms(1);
  }
  shmc_ring_attach(c);
  *out = c;
  return SHMC_OK;
fail:;
  int err = errno;
  unmap(c);
  free(c);
  errno = err;
  return r;
}

void shmc_close(shmc_channel *c) {
  if (c == NULL) return;
  /* 1. The state store: a peer that loads CLOSED sees everything this end published or released before. */
  atomic_store(word(c, c->own_end + END_STATE), END_CLOSED);
  /* 2. Wake the peer if it sleeps, so that it sees the close. */
  if (c->role == SHMC_PRODUCER) shmc_wake_if_parked(word(c, OFF_CONSUMER_PARKED), word(c, OFF_PRODUCER_POSITION));
  else shmc_wake_if_parked(word(c, OFF_PRODUCER_PARKED), word(c, OFF_CONSUMER_POSITION));
  /* 3. Read the peer: the last one out removes the name, if it still names this object. */
  end_info peer = shmc_read_end(c, c->peer_end);
  uint32_t unread = atomic_load(word(c, OFF_PRODUCER_POSITION)) - atomic_load(word(c, OFF_CONSUMER_POSITION));
  int kept_for_replacement = c->role == SHMC_PRODUCER && shmc_end_dead(&peer) && unread != 0;
  if (shmc_end_used_up(&peer) && !kept_for_replacement) unlink_if_same(c);
  shmc_ring_detach(c);
  unmap(c);
  free(c);
}

uint32_t shmc_capacity(const shmc_channel *c) { return c->capacity; }
uint32_t shmc_max_record(const shmc_channel *c) { return c->max_record; }

const char *shmc_strerror(int code) {
  switch (code) {
    case SHMC_OK: return "ok";
    case SHMC_EAGAIN: return "would block";
    case SHMC_ETIMEDOUT: return "timed out";
    case SHMC_ECLOSED: return "the peer closed the channel (ERR_CHANNEL_CLOSED)";
    case SHMC_EPEER_DEAD: return "the peer's process is gone (ERR_PEER_DEAD)";
    case SHMC_EINVALID_SEGMENT: return "not a valid channel segment (ERR_INVALID_SEGMENT)";
    case SHMC_EEND_TAKEN: return "a live process holds this end (ERR_END_TAKEN)";
    case SHMC_ETOO_LARGE: return "message too large (ERR_MESSAGE_TOO_LARGE)";
    case SHMC_EBUSY: return "a claim or read is open, or none is";
    case SHMC_EARG: return "argument out of range";
    case SHMC_ESYS: return "system call failed (see errno)";
    case SHMC_EDEAD_END: return "the end's holder died; taking it over is not implemented in C";
    default: return "unknown error";
  }
}
