/**
 * The listener segment: admission of clients by name for request/response
 * (lib/rpc/server.ts, lib/rpc/client.ts).
 *
 * A channel has one producer, so clients cannot share one "accept" channel.
 * Instead the server makes a small *listener* region under the service's
 * name, holding a fixed number of client slots and a doorbell word. A client
 * takes a free slot, creates its own two channels (lib/rpc/duplex.ts), marks the
 * slot ready and rings the doorbell; the server, asleep on the doorbell,
 * attaches to those channels and answers in the slot. The slot is only held
 * during this handshake: the number of slots bounds connections *being made*
 * at one instant, not connected clients.
 *
 * This file is the one place the listener's bytes are written down (the
 * channel segment's are in lib/channel/layout.ts); docs/architecture.md
 * describes the same bytes. The server side is lib/rpc/listener.ts, the
 * client's lib/rpc/ticket.ts.
 *
 *   0          512                       512 + slots * 32
 *   +----------+-------------------------+
 *   | header   | slots, 32 bytes each    |
 *   +----------+-------------------------+
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +---------------------------------------------------------------+
 *   |                         magic "SHML"                          |   0 identity: written once by the
 *   |         major version         |         minor version         |   4 server, magic last
 *   |                       header size (512)                       |   8
 *   |                          slot count                           |  12
 *   |                        slot size (32)                         |  16
 *   |        channel capacity clients should create (0: theirs)     |  20
 *   |                    codec name length (bytes)                  |  24
 *   +---------------------------------------------------------------+
 *   |  server pid  |  server start time (u64)  |  server state      | 128 server: the layout of a channel end
 *   +---------------------------------------------------------------+
 *   |                           doorbell                            | 256 clients add 1 and wake; the server sleeps on it
 *   +---------------------------------------------------------------+
 *   |                  codec name, UTF-8, up to 64 bytes            | 384
 *   +---------------------------------------------------------------+
 *
 * A slot:
 *
 *   +---------------------------------------------------------------+
 *   |                owner pid (0: the slot is free)                | +0  taken by compare-and-swap 0 -> pid
 *   |                             state                             | +4
 *   |                  owner start time (u64, lo, hi)               | +8
 *   |                       connection number                       | +16 names the client's channels
 *   |                       reserved (12 bytes)                     | +20
 *   +---------------------------------------------------------------+
 *
 * Slot states, and who moves them:
 *
 *   FREE --client CAS owner--> (owner set, state FREE) --client--> CLAIMED
 *   CLAIMED --client, after creating its channels--> READY (then rings the doorbell)
 *   READY --server CAS--> ACCEPTING --server--> ACCEPTED or REFUSED (then wakes the state word)
 *   READY --client CAS, giving up--> CLAIMED
 *   any --owner, once it has its answer or gave up--> FREE: state 0, then owner 0
 *   any --server, owner process dead--> FREE
 *
 * The owner (client) frees its own slot; the server never frees a slot whose
 * owner lives. So a slot cannot change hands while a client still acts on
 * it, and the client's "give up" compare-and-swap cannot hit another
 * client's READY (no ABA). State is cleared before owner: a new owner's
 * compare-and-swap on owner can only succeed after the old state is gone.
 */
import { ShmChannelError } from '../errors'
import { endLive, readEnd, claimEnd } from '../segment/ends'
import type { SegmentKind, SegmentShape } from '../segment/attach'
import { HEADER_SIZE_OFFSET, MAGIC_OFFSET, VERSION_OFFSET, invalidSegment } from '../segment/identity'
import { LINE, word } from '../segment/words'

export const LISTENER_MAGIC = 0x4c4d4853 // "SHML" read as a little-endian u32
export const LISTENER_VERSION_MAJOR = 1
export const LISTENER_VERSION_MINOR = 0

// Identity line: magic, version and header size as in every segment kind
// (lib/segment/identity.ts), then the listener's own fields.
export const LISTENER_MAGIC_OFFSET = MAGIC_OFFSET
export const LISTENER_VERSION_OFFSET = VERSION_OFFSET
export const LISTENER_HEADER_SIZE_OFFSET = HEADER_SIZE_OFFSET
export const SLOT_COUNT_OFFSET = LISTENER_HEADER_SIZE_OFFSET + 4
export const SLOT_SIZE_OFFSET = SLOT_COUNT_OFFSET + 4
export const CAPACITY_HINT_OFFSET = SLOT_SIZE_OFFSET + 4
export const CODEC_NAME_LENGTH_OFFSET = CAPACITY_HINT_OFFSET + 4
/** The server's end: pid u32, start time u64, state u32, as every end slot (lib/segment/ends.ts). */
export const SERVER_END_OFFSET = LINE
/** Alone on its line: every client writes it, the server sleeps on it. */
export const DOORBELL_OFFSET = 2 * LINE
export const CODEC_NAME_OFFSET = 3 * LINE
export const CODEC_NAME_MAX = 64
export const LISTENER_HEADER_SIZE = 4 * LINE

export const SLOT_SIZE = 32
export const SLOT_OWNER = 0
export const SLOT_STATE = 4
export const SLOT_START_TIME = 8
export const SLOT_CONNECTION = 16

export const SLOT_FREE = 0
export const SLOT_CLAIMED = 1
export const SLOT_READY = 2
export const SLOT_ACCEPTING = 3
export const SLOT_ACCEPTED = 4
export const SLOT_REFUSED = 5

export const MAX_SLOTS = 1024

export function listenerSize (slots: number): number {
  return LISTENER_HEADER_SIZE + slots * SLOT_SIZE
}

/** Word index of field `field` of slot `slot`, for an Int32Array over the whole region. */
export function slotWord (slot: number, field: number): number {
  return (LISTENER_HEADER_SIZE + slot * SLOT_SIZE + field) >>> 2
}

export const W_DOORBELL = word(DOORBELL_OFFSET)

/** The listener among segment kinds, as a client opens it. */
export const LISTENER: SegmentShape = {
  kind: 'listener',
  magic: LISTENER_MAGIC,
  major: LISTENER_VERSION_MAJOR,
  minor: LISTENER_VERSION_MINOR,
  headerSize: LISTENER_HEADER_SIZE,
  check (buffer) {
    checkListener(buffer)
  }
}

/** The listener's fields past its identity; throws ERR_INVALID_SEGMENT for what this version does not accept. Returns the slot count. */
export function checkListener (buffer: SharedArrayBuffer): number {
  const h = new Int32Array(buffer, 0, LISTENER_HEADER_SIZE / 4)
  const slots = h[word(SLOT_COUNT_OFFSET)]
  if (h[word(SLOT_SIZE_OFFSET)] !== SLOT_SIZE || slots < 1 || slots > MAX_SLOTS || listenerSize(slots) > buffer.byteLength) {
    throw invalidSegment(LISTENER, 'a slot count or slot size this version does not accept')
  }
  return slots
}

export interface ListenerHeader {
  slots: number
  capacity: number
  codec: Buffer
}

/**
 * The listener as a segment kind, for a server creating it: the creator
 * writes the header and takes the server end before publishing the magic,
 * so a client that sees the magic sees a live server. An existing listener
 * is never joined: a live server's is refused (ERR_END_TAKEN), any other is
 * stale and made afresh.
 */
export function listenerKind (header: ListenerHeader): SegmentKind {
  return {
    ...LISTENER,
    init (buffer) {
      const h = new Int32Array(buffer)
      h[word(SLOT_COUNT_OFFSET)] = header.slots
      h[word(SLOT_SIZE_OFFSET)] = SLOT_SIZE
      h[word(CAPACITY_HINT_OFFSET)] = header.capacity
      h[word(CODEC_NAME_LENGTH_OFFSET)] = header.codec.length
      Buffer.from(buffer, CODEC_NAME_OFFSET, CODEC_NAME_MAX).set(header.codec)
      claimEnd(h, SERVER_END_OFFSET)
    },
    join (buffer, label) {
      const server = readEnd(new Int32Array(buffer), SERVER_END_OFFSET)
      if (endLive(server)) throw new ShmChannelError('ERR_END_TAKEN', `${label} already has a live server (pid ${server.pid})`)
      return 'stale'
    }
  }
}

/** Who is on the other side of a slot. */
export interface SlotOwner {
  pid: number
  startTime: number
  connection: number
}
