/**
 * The shared segment of a named event, byte for byte (docs/pubsub.md
 * describes the same bytes for other languages).
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +---------------------------------------------------------------+
 *   |                         magic "SHME"                          |   0  identity (lib/segment/identity.ts)
 *   |         major version         |         minor version         |   4
 *   |                          header size                          |   8
 *   |              holders: processes that opened it                |  12  the last to close removes the name
 *   +---------------------------------------------------------------+
 *   |             notifications (u32, wraps): the futex word         | 128  notify adds 1, then wakes
 *   +---------------------------------------------------------------+
 *   |                   waiters asleep (a count)                     | 256  notify wakes only if not 0
 *   +---------------------------------------------------------------+
 */
import * as identity from '../segment/identity'
import * as words from '../segment/words'

const { LINE } = words

export const MAGIC = 0x454d4853 // "SHME" read as a little-endian u32
export const VERSION_MAJOR = 1
export const VERSION_MINOR = 0

export const HOLDERS_OFFSET = identity.HEADER_SIZE_OFFSET + 4
export const NOTIFICATIONS_OFFSET = LINE
export const WAITERS_OFFSET = 2 * LINE
export const HEADER_SIZE = 3 * LINE
