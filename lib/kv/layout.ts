/**
 * The layout of a store file (docs/kv.md is the normative description, for
 * readers in other languages). All integers are little-endian.
 *
 *   +--------------------+---------------------------------------------+
 *   | header (512 bytes) | records, appended, each 8-byte aligned  ... |
 *   +--------------------+---------------------------------------------+
 *   0                    DATA_START        committed end ^   file size ^
 *
 * Header, 32-bit columns:
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +---------------------------------------------------------------+
 *   |                    magic "SHKV", written last                 | 0
 *   |         major version         |         minor version         | 4
 *   |                      header size (512)                        | 8
 *   +---------------------------------------------------------------+
 *   |  writer lock: an end slot (lib/segment/ends.ts): pid, start   | 128
 *   |  time (u64), state; then its takeover word, the number of     |
 *   |  processes waiting for the lock, the number of claims so far  |
 *   +---------------------------------------------------------------+
 *   |          commit word: committed end / 8; 0 = retired          | 256
 *   |          retired: 1 once compaction replaced this file        | 260
 *   |               next sequence number (u64)                      | 264
 *   +---------------------------------------------------------------+
 *   |         watchers: processes that watch this file              | 384
 *   +---------------------------------------------------------------+
 *
 * Record (all lengths in bytes; the whole record padded with zeros to a
 * multiple of 8):
 *
 *   +---------------------------------------------------------------+
 *   |        CRC-32C of bytes 4 .. 32 + key length + value length   | 0
 *   | kind  | flags |          key length (u16)                     | 4
 *   |                     value length (u32)                        | 8
 *   | codec |                 reserved (0)                          | 12
 *   |                    sequence number (u64)                      | 16
 *   |         expiry, ms since the Unix epoch (u64; 0 = never)      | 24
 *   |            key bytes, then value bytes, then padding          | 32
 *   +---------------------------------------------------------------+
 */
import type { SegmentIdentity } from '../segment/identity'
import { LINE } from '../segment/words'

export const HEADER_SIZE = 4 * LINE
export const DATA_START = HEADER_SIZE

/** "SHKV" as a little-endian u32. */
export const STORE_MAGIC = 0x564b4853
export const STORE_KIND: SegmentIdentity = { kind: 'store', magic: STORE_MAGIC, major: 1, minor: 0, headerSize: HEADER_SIZE }

export const LOCK_OFFSET = LINE
/** After the 16-byte end slot. */
export const LOCK_TAKEOVER_OFFSET = LOCK_OFFSET + 16
export const LOCK_WAITERS_OFFSET = LOCK_TAKEOVER_OFFSET + 4
/** Claims of the lock so far (lib/segment/ends.ts, readEnd): a read of the slot that saw it move is read again. */
export const LOCK_HANDOFFS_OFFSET = LOCK_WAITERS_OFFSET + 4

export const COMMIT_OFFSET = 2 * LINE
export const RETIRED_OFFSET = COMMIT_OFFSET + 4
export const SEQUENCE_OFFSET = COMMIT_OFFSET + 8

export const WATCHERS_OFFSET = 3 * LINE

/** The commit word counts 8-byte units: a file holds at most 32 GiB of records. */
export const COMMIT_UNIT = 8
export const MAX_FILE_SIZE = 0xffffffff * COMMIT_UNIT

export const RECORD_HEADER = 32
export const R_CRC = 0
export const R_KIND = 4
export const R_FLAGS = 5
export const R_KEY_LENGTH = 6
export const R_VALUE_LENGTH = 8
export const R_CODEC = 12
export const R_SEQUENCE = 16
export const R_EXPIRY = 24

/** Record kinds. */
export const KIND_SET = 1
export const KIND_DELETE = 2
export const KIND_CLEAR = 3

/** Flags. MORE: another record of the same batch follows; a batch counts only with its last record. */
export const FLAG_MORE = 1
/** The key is raw bytes (else UTF-8 of a string key; the two never compare equal). */
export const FLAG_BYTES_KEY = 2

export const MAX_KEY_LENGTH = 0xffff

/** Codec tags: which codec wrote a value (0: a custom codec). */
export const CODEC_TAGS: Record<string, number> = { bytes: 1, utf8: 2, json: 3, structured: 4, msgpack: 5 }
export const CODEC_NAMES: Record<number, string> = { 0: 'a custom codec', 1: 'bytes', 2: 'utf8', 3: 'json', 4: 'structured', 5: 'msgpack' }

/** Bytes a record with these lengths takes, padding included. */
export function recordSize (keyLength: number, valueLength: number): number {
  return Math.ceil((RECORD_HEADER + keyLength + valueLength) / 8) * 8
}
