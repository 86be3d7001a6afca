/**
 * The shared segment of a channel, byte for byte. This module is the only
 * place offsets are written down; docs/protocol.md describes the same bytes
 * for programs in other languages, and test/channel/layout.test.ts checks the two agree.
 *
 *   0                HEADER_SIZE                      HEADER_SIZE + capacity
 *   +----------------+----------------------------------------+
 *   | header         | ring: records, 8-byte aligned          |
 *   +----------------+----------------------------------------+
 *
 * The header is in 128-byte lines (two 64-byte cache lines, so the adjacent-
 * line prefetcher cannot couple them), each written by one side only:
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +---------------------------------------------------------------+
 *   |                         magic "SHMC"                          |  0  identity: written once by the
 *   +-------------------------------+-------------------------------+     creator, magic last
 *   |         major version         |         minor version         |  4
 *   +-------------------------------+-------------------------------+
 *   |                          header size                          |  8
 *   |                      capacity (power of 2)                    | 12
 *   |                        flags (reserved, 0)                    | 16
 *   +---------------------------------------------------------------+
 *   |                     producer position (u32)                   | 128 producer line
 *   |                  messages sent (u64, lo then hi)              | 136
 *   |                   bytes sent (u64, lo then hi)                | 144
 *   |                          times full                           | 152
 *   |                    wake-ups sent to consumer                  | 156
 *   |        abandoned at: where the last producer takeover began    | 160 (1.1) a fragmented message
 *   +---------------------------------------------------------------+     begun before it is dropped
 *   |                     consumer position (u32)                   | 256 consumer line
 *   |                messages received (u64, lo then hi)            | 264
 *   |                 bytes received (u64, lo then hi)              | 272
 *   |                    wake-ups sent to producer                  | 280
 *   |            read mark: consumer position after the last         | 284 (1.1) where a takeover's
 *   |            message read (released or not)                    |     redelivery ends
 *   +---------------------------------------------------------------+
 *   |                         consumer parked                       | 384 consumer's flag, read by the
 *   +---------------------------------------------------------------+     producer on every publish
 *   |                         producer parked                       | 512 producer's flag
 *   +---------------------------------------------------------------+
 *   |   producer pid  |  producer start time (u64) | producer state  | 640 ends: who holds each end
 *   |   consumer pid  |  consumer start time (u64) | consumer state  | 656
 *   |            producer takeovers << 1 | claiming                 | 672 (1.1) takeover words
 *   |            consumer takeovers << 1 | claiming                 | 676     (lib/segment/ends.ts)
 *   |        time of the last producer takeover (u64, ms epoch)     | 680
 *   |        time of the last consumer takeover (u64, ms epoch)     | 688
 *   |        messages redelivered by consumer takeovers (u64)       | 696
 *   |        redeliver until: consumer position (u32)                | 704
 *   +---------------------------------------------------------------+
 *
 * Positions count bytes and only grow, modulo 2^32; index = position & (capacity - 1).
 * Capacity is at most 2^30, so the distance between two positions is never
 * ambiguous. All words are little-endian (the byte order of every host Node
 * runs shared memory on).
 */

import * as identity from '../segment/identity'
import * as ends from '../segment/ends'
import * as words from '../segment/words'

// Copied into plain constants, not re-exported: TypeScript compiles a
// re-export to a getter, which turns this module's exports into a slow
// dictionary object, and the ring's hot paths read them on every message.
const { LINE } = words
const { END_SLOT_SIZE } = ends
export const word = words.word
export const MAGIC_OFFSET = identity.MAGIC_OFFSET
export const VERSION_OFFSET = identity.VERSION_OFFSET
export const HEADER_SIZE_OFFSET = identity.HEADER_SIZE_OFFSET
export const END_PID = ends.END_PID
export const END_START_TIME = ends.END_START_TIME
export const END_STATE = ends.END_STATE
export const END_THREAD_GONE = ends.END_THREAD_GONE
export const END_FREE = ends.END_FREE
export const END_OPEN = ends.END_OPEN
export const END_CLOSED = ends.END_CLOSED
export const END_CLAIMING = ends.END_CLAIMING

export const MAGIC = 0x434d4853 // "SHMC" read as a little-endian u32
export const VERSION_MAJOR = 1
export const VERSION_MINOR = 1

// Identity line: magic, version and header size as in every segment kind
// (lib/segment/identity.ts), then the channel's own fields.
export const CAPACITY_OFFSET = HEADER_SIZE_OFFSET + 4
export const FLAGS_OFFSET = CAPACITY_OFFSET + 4

// Producer line.
export const PRODUCER_POSITION_OFFSET = LINE
export const MESSAGES_SENT_OFFSET = PRODUCER_POSITION_OFFSET + 8
export const BYTES_SENT_OFFSET = MESSAGES_SENT_OFFSET + 8
export const TIMES_FULL_OFFSET = BYTES_SENT_OFFSET + 8
export const CONSUMER_WAKEUPS_OFFSET = TIMES_FULL_OFFSET + 4
/**
 * Since 1.1. The producer position at which the last producer takeover
 * began, written by the new producer before it publishes anything: a
 * consumer that meets the start of a message at or after it while it still
 * holds part of an earlier one drops that part (its producer died mid-message).
 */
export const ABANDONED_AT_OFFSET = CONSUMER_WAKEUPS_OFFSET + 4

// Consumer line.
export const CONSUMER_POSITION_OFFSET = 2 * LINE
export const MESSAGES_RECEIVED_OFFSET = CONSUMER_POSITION_OFFSET + 8
export const BYTES_RECEIVED_OFFSET = MESSAGES_RECEIVED_OFFSET + 8
export const PRODUCER_WAKEUPS_OFFSET = BYTES_RECEIVED_OFFSET + 8
/**
 * Since 1.1. The consumer position after the last message read, released or
 * not (plain store on each read): a consumer that takes over from a dead one
 * redelivers the messages between the released position and this mark.
 */
export const READ_MARK_OFFSET = PRODUCER_WAKEUPS_OFFSET + 4

// Parked flags, each alone on its line: the other side reads it on every
// publish or release, and it changes only when a side goes to sleep.
export const CONSUMER_PARKED_OFFSET = 3 * LINE
export const PRODUCER_PARKED_OFFSET = 4 * LINE

// Ends line: one 16-byte slot per end (lib/segment/ends.ts).
export const PRODUCER_END_OFFSET = 5 * LINE
export const CONSUMER_END_OFFSET = PRODUCER_END_OFFSET + END_SLOT_SIZE
// Since 1.1: takeovers of each end (lib/segment/ends.ts, takeOverEnd), when
// the last one happened, and how many messages consumer takeovers redelivered.
export const PRODUCER_TAKEOVERS_OFFSET = CONSUMER_END_OFFSET + END_SLOT_SIZE
export const CONSUMER_TAKEOVERS_OFFSET = PRODUCER_TAKEOVERS_OFFSET + 4
export const PRODUCER_TAKEOVER_TIME_OFFSET = CONSUMER_TAKEOVERS_OFFSET + 4
export const CONSUMER_TAKEOVER_TIME_OFFSET = PRODUCER_TAKEOVER_TIME_OFFSET + 8
export const REDELIVERED_OFFSET = CONSUMER_TAKEOVER_TIME_OFFSET + 8
/**
 * Where the last consumer takeover's redelivery ended: the further of the
 * read mark and the previous value. A consumer killed while it redelivers
 * has moved the read mark back; its successor redelivers up to here.
 */
export const REDELIVER_UNTIL_OFFSET = REDELIVERED_OFFSET + 8

export const HEADER_SIZE = 8 * LINE

// Records.
//
//    0                   1                   2                   3
//   +---------------------------------------------------------------+
//   |                     payload length (bytes)                    | 0
//   +---------------------------------------------------------------+
//   |     record type      |  flags: BEGIN=0x100 END=0x200          | 4
//   +---------------------------------------------------------------+
//   |                  payload, then unused bytes up to a multiple of 8| 8
//
// A message that fits in one record has BEGIN|END. A larger one is a BEGIN
// fragment whose payload starts with the message's total length (u64), any
// number of middle fragments (no flag), and an END fragment. A record never
// wraps: when one does not fit before the end of the ring, a PADDING record
// fills the rest and the record starts at index 0.
export const RECORD_HEADER_SIZE = 8
export const RECORD_ALIGNMENT = 8
export const RECORD_LENGTH = 0
export const RECORD_TYPE = 4
export const TYPE_DATA = 0x01
export const TYPE_PADDING = 0x02
export const TYPE_MASK = 0xff
export const FLAG_BEGIN = 0x100
export const FLAG_END = 0x200
export const FRAGMENT_TOTAL_SIZE = 8

export const MIN_CAPACITY = 4096
export const MAX_CAPACITY = 2 ** 30

/** Largest payload of one record: a quarter of the ring, so a record always fits once the ring drains and a fragment can be written while the previous one is read. */
export function maxRecordPayload (capacity: number): number {
  return capacity / 4 - RECORD_HEADER_SIZE
}

export function alignRecord (payloadLength: number): number {
  return (payloadLength + RECORD_HEADER_SIZE + RECORD_ALIGNMENT - 1) & ~(RECORD_ALIGNMENT - 1)
}

export function segmentSize (capacity: number): number {
  return HEADER_SIZE + capacity
}
