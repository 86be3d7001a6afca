/**
 * The shared segment of a topic (one publisher, many subscribers), byte for
 * byte; docs/pubsub.md describes the same bytes for other languages.
 *
 *   0            HEADER_SIZE               RING_OFFSET(maxSubscribers)    + capacity
 *   +------------+-------------------------+--------------------------------+
 *   | header     | subscriber table        | ring: records, 8-byte aligned  |
 *   +------------+-------------------------+--------------------------------+
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +---------------------------------------------------------------+
 *   |                         magic "SHMP"                          |   0  identity (lib/segment/identity.ts)
 *   |         major version         |         minor version         |   4
 *   |                          header size                          |   8
 *   |                      capacity (power of 2)                    |  12
 *   |                        max subscribers                        |  16
 *   |                  policy: 1 'block', 2 'overwrite'             |  20
 *   +---------------------------------------------------------------+
 *   |      tail: end of the last whole record published (u32)      | 128  publisher line
 *   |      intent: no byte at or past it is written before it moves | 132  at or past the end of the record being written
 *   |      head: start of the oldest record not overwritten (u32)   | 136
 *   |      next message number (u32)                                | 140
 *   |      messages published (u64, lo then hi)                     | 144
 *   +---------------------------------------------------------------+
 *   |      joins: bumped by every subscriber that joins             | 256
 *   +---------------------------------------------------------------+
 *   |      subscribers parked (a count of sleepers on the tail)     | 384
 *   +---------------------------------------------------------------+
 *   |      publisher parked (flag)                                  | 512
 *   |      releases: bumped by a subscriber that moved while the     | 516  the publisher sleeps on it
 *   |      publisher is parked                                       |
 *   +---------------------------------------------------------------+
 *   | publisher pid | publisher start time (u64) | publisher state  | 640  end slot (lib/segment/ends.ts)
 *   +---------------------------------------------------------------+
 *
 * Subscriber table at HEADER_SIZE: `max subscribers` entries of 128 bytes
 * (a line each: every subscriber writes its own cursor on every read):
 *
 *   |  pid  |  start time (u64)  |  state  |   0  end slot (lib/segment/ends.ts)
 *   |   cursor: position of the next record to read (u32)             |  16
 *   |   messages lost to the overwrite policy (u32)                   |  20
 *   |   messages received (u64, lo then hi)                           |  24
 *
 * Positions count bytes and only grow, modulo 2^32; index = position & (capacity - 1).
 */
import * as identity from '../segment/identity'
import * as ends from '../segment/ends'
import * as words from '../segment/words'

const { LINE } = words

export const MAGIC = 0x504d4853 // "SHMP" read as a little-endian u32
export const VERSION_MAJOR = 1
export const VERSION_MINOR = 0

export const CAPACITY_OFFSET = identity.HEADER_SIZE_OFFSET + 4
export const MAX_SUBSCRIBERS_OFFSET = CAPACITY_OFFSET + 4
export const POLICY_OFFSET = MAX_SUBSCRIBERS_OFFSET + 4

export const POLICY_BLOCK = 1
export const POLICY_OVERWRITE = 2

export const TAIL_OFFSET = LINE
export const INTENT_OFFSET = TAIL_OFFSET + 4
export const HEAD_OFFSET = INTENT_OFFSET + 4
export const NEXT_SEQUENCE_OFFSET = HEAD_OFFSET + 4
export const PUBLISHED_OFFSET = NEXT_SEQUENCE_OFFSET + 4

export const JOINS_OFFSET = 2 * LINE
export const SUBSCRIBERS_PARKED_OFFSET = 3 * LINE
export const PUBLISHER_PARKED_OFFSET = 4 * LINE
export const RELEASES_OFFSET = PUBLISHER_PARKED_OFFSET + 4
export const PUBLISHER_END_OFFSET = 5 * LINE

export const HEADER_SIZE = 6 * LINE

export const SUBSCRIBER_ENTRY_SIZE = LINE
export const CURSOR = ends.END_SLOT_SIZE
export const LOST = CURSOR + 4
export const RECEIVED = LOST + 4

export const DEFAULT_MAX_SUBSCRIBERS = 16
export const MAX_MAX_SUBSCRIBERS = 1024

export function subscriberEntryOffset (index: number): number {
  return HEADER_SIZE + index * SUBSCRIBER_ENTRY_SIZE
}

export function ringOffset (maxSubscribers: number): number {
  return HEADER_SIZE + maxSubscribers * SUBSCRIBER_ENTRY_SIZE
}

export function segmentSize (capacity: number, maxSubscribers: number): number {
  return ringOffset(maxSubscribers) + capacity
}

// Records.
//
//   |  payload length (u32)                                   | 0
//   |  type: DATA 1, PADDING 2                                | 4
//   |  position of this record (u32): a reader's first check | 8
//   |  message number (u32); a padding has its record's      | 12
//   |  payload, then unused bytes up to a multiple of 8       | 16
//
// A record never wraps: one that would is preceded by a PADDING record to
// the end of the ring (payload length: the bytes after its header).
export const RECORD_HEADER_SIZE = 16
/** Records start on 16 bytes, a header's size: the gap a record leaves before the end of the ring always holds a padding header. */
export const RECORD_ALIGNMENT = 16
export const TYPE_DATA = 1
export const TYPE_PADDING = 2

export function alignRecord (payloadLength: number): number {
  return (payloadLength + RECORD_HEADER_SIZE + RECORD_ALIGNMENT - 1) & ~(RECORD_ALIGNMENT - 1)
}

/** Largest payload of one record: a quarter of the ring. */
export function maxPayload (capacity: number): number {
  return capacity / 4 - RECORD_HEADER_SIZE
}
