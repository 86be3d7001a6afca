/**
 * The shared segment of a fan-in (many producers, one consumer), byte for
 * byte; docs/pubsub.md describes the same bytes for other languages.
 *
 *   0            HEADER_SIZE            RING_OFFSET(maxProducers)     + capacity
 *   +------------+----------------------+--------------------------------+
 *   | header     | producer table       | ring: records, 8-byte aligned  |
 *   +------------+----------------------+--------------------------------+
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +---------------------------------------------------------------+
 *   |                         magic "SHMF"                          |   0  identity (lib/segment/identity.ts)
 *   |         major version         |         minor version         |   4
 *   |                          header size                          |   8
 *   |                      capacity (power of 2)                    |  12
 *   |                         max producers                         |  16
 *   +---------------------------------------------------------------+
 *   |         tail: claim position (u32), compare-and-swap          | 128  every producer
 *   +---------------------------------------------------------------+
 *   |                     head: consumer position (u32)             | 256  consumer line
 *   |                messages received (u64, lo then hi)            | 264
 *   |           claims skipped (their producer died before commit)  | 272
 *   |                  bytes skipped (u64, lo then hi)              | 280
 *   |   partial messages dropped (their producer left mid-message)  | 288  (2.0)
 *   +---------------------------------------------------------------+
 *   |                         consumer parked                       | 384  flag, set by the consumer
 *   +---------------------------------------------------------------+
 *   |               producers parked (a count of sleepers)          | 512
 *   +---------------------------------------------------------------+
 *   |  consumer pid  |  consumer start time (u64) | consumer state  | 640  end slot (lib/segment/ends.ts)
 *   +---------------------------------------------------------------+
 *
 * Producer table at HEADER_SIZE: `max producers` entries of 128 bytes (a
 * line each: every producer writes its own claim on every message):
 *
 *   |  pid  |  start time (u64)  |  state  |   0  end slot (lib/segment/ends.ts)
 *   |   claim start: tail position this producer claims or claimed     |  16
 *   |   claim length in bytes; 0: no claim in flight                   |  20
 *   |   messages sent (u64, lo then hi)                                |  24
 *
 * Positions count bytes and only grow, modulo 2^32; index = position & (capacity - 1).
 */
import * as identity from '../segment/identity'
import * as ends from '../segment/ends'
import * as words from '../segment/words'

const { LINE } = words

export const MAGIC = 0x464d4853 // "SHMF" read as a little-endian u32
/**
 * 2.0: messages larger than one record travel as fragments (record types
 * FIRST, MIDDLE, LAST). A 1.0 consumer would refuse them as unknown records
 * mid-stream, so the major version changed: ends of 1.0 and 2.0 refuse each
 * other's segment when they open it (ERR_INVALID_SEGMENT naming both versions).
 */
export const VERSION_MAJOR = 2
export const VERSION_MINOR = 0

export const CAPACITY_OFFSET = identity.HEADER_SIZE_OFFSET + 4
export const MAX_PRODUCERS_OFFSET = CAPACITY_OFFSET + 4

export const TAIL_OFFSET = LINE

export const HEAD_OFFSET = 2 * LINE
export const MESSAGES_RECEIVED_OFFSET = HEAD_OFFSET + 8
export const CLAIMS_SKIPPED_OFFSET = MESSAGES_RECEIVED_OFFSET + 8
export const BYTES_SKIPPED_OFFSET = CLAIMS_SKIPPED_OFFSET + 8
export const PARTIALS_DROPPED_OFFSET = BYTES_SKIPPED_OFFSET + 8

export const CONSUMER_PARKED_OFFSET = 3 * LINE
export const PRODUCERS_PARKED_OFFSET = 4 * LINE
export const CONSUMER_END_OFFSET = 5 * LINE

export const HEADER_SIZE = 6 * LINE

// Producer table entries.
export const PRODUCER_ENTRY_SIZE = LINE
export const CLAIM_START = ends.END_SLOT_SIZE
export const CLAIM_LENGTH = CLAIM_START + 4
export const MESSAGES_SENT = CLAIM_LENGTH + 4

export const DEFAULT_MAX_PRODUCERS = 16
export const MAX_MAX_PRODUCERS = 1024

export function producerEntryOffset (index: number): number {
  return HEADER_SIZE + index * PRODUCER_ENTRY_SIZE
}

/** Where the ring starts: after the producer table. */
export function ringOffset (maxProducers: number): number {
  return HEADER_SIZE + maxProducers * PRODUCER_ENTRY_SIZE
}

export function segmentSize (capacity: number, maxProducers: number): number {
  return ringOffset(maxProducers) + capacity
}

// Records.
//
//   |  COMMITTED (0x80000000) | payload length             | 0  stored last, atomically: 0 until committed
//   |  type (low byte)         | producer index << 8       | 4
//   |  payload, then unused bytes up to a multiple of 8      | 8
//
// Types: DATA 1 (a whole message), PADDING 2, and the fragments of a
// message larger than maxPayload: FIRST 3 (its payload starts with the
// message's total length, u64, then the message's first bytes), any number
// of MIDDLE 4, then LAST 5. One producer's fragments are consecutive among
// its own records (it writes nothing else until its LAST), each claimed and
// committed as a record of its own, so other producers' records interleave
// with them; the consumer reassembles per producer index. A FIRST or DATA
// record from a producer index whose message is unfinished means that
// message's writer left (died or closed) mid-message: the part is dropped.
//
// A record never wraps: a claim that would is a PADDING record to the end
// of the ring and the record at index 0, claimed together. The padding is
// committed after the record, so an uncommitted claim always shows at its
// claim start. The consumer zeroes every byte it is done with before it
// moves the head past it: the next lap finds 0 wherever no record is committed.
export const RECORD_HEADER_SIZE = 8
export const RECORD_ALIGNMENT = 8
export const COMMITTED = 0x80000000
export const LENGTH_MASK = 0x7fffffff
export const TYPE_DATA = 1
export const TYPE_PADDING = 2
export const TYPE_FIRST = 3
export const TYPE_MIDDLE = 4
export const TYPE_LAST = 5
/** Bytes of the total length at the start of a FIRST fragment's payload. */
export const FRAGMENT_TOTAL_SIZE = 8
export const TYPE_MASK = 0xff
export const PRODUCER_SHIFT = 8

export function alignRecord (payloadLength: number): number {
  return (payloadLength + RECORD_HEADER_SIZE + RECORD_ALIGNMENT - 1) & ~(RECORD_ALIGNMENT - 1)
}

/** Largest payload of one record: a quarter of the ring. */
export function maxPayload (capacity: number): number {
  return capacity / 4 - RECORD_HEADER_SIZE
}
