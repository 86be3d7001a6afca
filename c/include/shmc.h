/*
 * shmc: the shm-channel segment protocol (docs/protocol.md) in C11.
 *
 * One end of a channel per handle: a producer or a consumer, opened by name
 * (the POSIX shared memory object "/NAME"). A handle is used by one thread
 * at a time. Linux only (futex); no dependencies beyond libc.
 *
 * Every function returns SHMC_OK (0) or a negative shmc_error; for
 * SHMC_ESYS, errno holds the system call's error. shmc_strerror names them.
 */
#ifndef SHMC_H
#define SHMC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum shmc_error {
  SHMC_OK = 0,
  SHMC_EAGAIN = -1,          /* no message / no room right now (the try_ calls) */
  SHMC_ETIMEDOUT = -2,       /* the timeout passed first */
  SHMC_ECLOSED = -3,         /* the peer closed (a consumer: and everything it published was read) */
  SHMC_EPEER_DEAD = -4,      /* the peer's process is gone without closing: ERR_PEER_DEAD */
  SHMC_EINVALID_SEGMENT = -5,/* the bytes break the protocol: ERR_INVALID_SEGMENT */
  SHMC_EEND_TAKEN = -6,      /* a live process holds the end: ERR_END_TAKEN */
  SHMC_ETOO_LARGE = -7,      /* a message over a limit: ERR_MESSAGE_TOO_LARGE */
  SHMC_EBUSY = -8,           /* a claim or an in-place read is open (or none is, for commit/release) */
  SHMC_EARG = -9,            /* an argument out of range */
  SHMC_ESYS = -10,           /* a system call failed: see errno */
  SHMC_EDEAD_END = -11       /* the end's holder died: taking an end over is not implemented here */
} shmc_error;

typedef enum shmc_role { SHMC_PRODUCER = 0, SHMC_CONSUMER = 1 } shmc_role;

/* How a blocked call waits for the other end (docs/protocol.md, Sleeping). */
typedef enum shmc_wait {
  SHMC_WAIT_ADAPTIVE = 0,    /* spin spin_micros, then sleep on the futex (default) */
  SHMC_WAIT_SPIN = 1,        /* never sleeps: one core busy */
  SHMC_WAIT_BLOCK = 2        /* sleeps on the futex at once */
} shmc_wait;

typedef struct shmc_options {
  uint32_t capacity;            /* ring bytes of a channel this open creates: power of two, 4096..2^30 (0: 65536) */
  uint32_t mode;                /* permission bits of a created object (0: 0600) */
  uint32_t open_timeout_ms;     /* wait for a creator's magic (0: 5000) */
  shmc_wait wait;
  uint32_t spin_micros;         /* adaptive: spin budget (0: 50) */
  uint32_t peer_check_ms;       /* while waiting, check the peer's liveness this often (0: 250) */
  uint64_t max_message_size;    /* consumer: largest message accepted (0: 256 MiB) */
  int allow_foreign_owner;      /* join an object another user owns */
} shmc_options;

typedef struct shmc_channel shmc_channel;

/* Opens (or creates) the channel NAME and takes the ROLE end. options may be NULL. */
int shmc_open(shmc_channel **out, const char *name, shmc_role role, const shmc_options *options);
/* Stores the closed state, wakes a parked peer, removes the name if the peer is gone too, unmaps. NULL is a no-op. */
void shmc_close(shmc_channel *channel);

uint32_t shmc_capacity(const shmc_channel *channel);
/* Largest payload of one record, capacity / 4 - 8: larger messages travel in fragments. */
uint32_t shmc_max_record(const shmc_channel *channel);

/*
 * Producer. timeout_ms < 0 waits forever; 0 does not wait (SHMC_EAGAIN).
 * shmc_send copies a message of any length (fragments when over shmc_max_record).
 */
int shmc_send(shmc_channel *channel, const void *data, size_t length, int timeout_ms);
/* Zero copy: room for a record of up to length (<= shmc_max_record) bytes, written in place. */
int shmc_claim(shmc_channel *channel, size_t length, void **payload, int timeout_ms);
/* Publishes the claim as a message of length bytes (at most what was claimed). */
int shmc_commit(shmc_channel *channel, size_t length);
/* Drops the open claim. */
int shmc_abort(shmc_channel *channel);

/*
 * Consumer. shmc_read returns the next message in place (*data valid until
 * shmc_release; a message in fragments is reassembled into memory the handle
 * owns, also valid until shmc_release). shmc_receive copies it into buffer
 * (SHMC_ETOO_LARGE, message left unread, *length set, if it does not fit).
 */
int shmc_read(shmc_channel *channel, const void **data, size_t *length, int timeout_ms);
int shmc_release(shmc_channel *channel);
int shmc_receive(shmc_channel *channel, void *buffer, size_t capacity, size_t *length, int timeout_ms);

/* SHMC_OK while the peer is open or not attached yet, else SHMC_ECLOSED or SHMC_EPEER_DEAD. */
int shmc_peer_status(shmc_channel *channel);

const char *shmc_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif
