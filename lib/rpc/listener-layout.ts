/**
 * The listener segment: admission of clients by name for request/response
 * (lib/rpc/server.ts, lib/rpc/client.ts).
 *
 * A channel has one producer, so clients cannot share one "accept" channel.
 * Instead the server makes a small *listener* region under the service's
 * name, holding a fixed number of client slots and a doorbell word. A client
 * takes a free slot, creates its own two channels (lib/rpc/duplex.ts), marks the
 * slot ready and rings the doorbell; the server, asleep on the doorbell,
 * attaches to those channels and answers in the slot with the connection's
 * *index* in the connection table. The slot is only held during this
 * handshake: the number of slots bounds connections *being made* at one
 * instant, not connected clients.
 *
 * One waiter for all connections. The server does not wait on each
 * connection's channel: it sleeps on the doorbell alone. After publishing a
 * request a client sets its bit in the *visit* bitmap of the connection
 * table, then loads the server's parked flag and, only if it is set, adds 1
 * to the doorbell and wakes it. The server parks as every channel end does
 * (lib/segment/wait.ts): parked flag stored, doorbell loaded, bitmap
 * re-checked, then the kernel wait. All accesses are sequentially
 * consistent, so either the client sees the flag (and wakes the server) or
 * the server's re-check sees the bit; an awake server costs a client one
 * atomic OR and one load, no system call. The server takes the bits with an
 * atomic exchange per word and reads those connections' channels until they
 * are empty.
 *
 * A message the client's channel cannot take at once (a full ring, or one
 * that goes in fragments) is published by the channel later, when there is
 * room, without a ring of the bell. For that time the client sets its bit
 * in the *streaming* bitmap (before the first ring, cleared before the last):
 * the server then follows that connection's channel with its own wait until
 * the bit is clear.
 *
 * Replies, the other way, wake one waiter per client *process*, not one per
 * connection. A client with requests pending does not wait on its own
 * channel: all the clients of one process waiting on one server share one
 * waiter on the *reply bell* (lib/rpc/client.ts, Replies). After a pass in
 * which it wrote replies (or ended connections) the server adds 1 to the
 * reply bell and, only if the *clients parked* count is not 0, wakes every
 * waiter on it: one system call per pass, whatever the number of replies.
 * A reply waiter parks as a channel end does, counting itself into the
 * parked count (several processes share it), loading the reply bell and
 * re-reading its connections' channels before the kernel wait. A reply the
 * server's channel cannot take at once is published later without a ring:
 * for that time the server sets the connection's bit in the *answering*
 * bitmap, and the client follows that connection's channel with its own
 * wait until the bit is clear (the server rings once more after clearing it).
 *
 * This file is the one place the listener's bytes are written down (the
 * channel segment's are in lib/channel/layout.ts); docs/architecture.md
 * describes the same bytes. The server side is lib/rpc/listener.ts, the
 * client's lib/rpc/ticket.ts.
 *
 *   0          512                       table (512 + slots * 32, up to a 128-byte line)
 *   +----------+-------------------------+---------------------+-------------------------+
 *   | header   | slots, 32 bytes each    | visit bitmap        | streaming bitmap        | answering bitmap |
 *   +----------+-------------------------+---------------------+-------------------------+------------------+
 *                                          table bits / 8 bytes each (table bits: a multiple of 32)
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
 *   |              connection table bits (maxClients, to 32)        |  28
 *   +---------------------------------------------------------------+
 *   |  server pid  |  server start time (u64)  |  server state      | 128 server: the layout of a channel end
 *   +---------------------------------------------------------------+
 *   |                           doorbell                            | 256 clients add 1 and wake; the server sleeps on it
 *   |                      server parked flag                       | 260 1 while the server sleeps (or is about to)
 *   +---------------------------------------------------------------+
 *   |                  codec name, UTF-8, up to 64 bytes            | 384
 *   |                          reply bell                           | 448 the server adds 1 after replies; clients sleep on it
 *   |                     clients parked (count)                    | 452 reply waiters asleep (or about to be)
 *   +---------------------------------------------------------------+
 *
 * A slot:
 *
 *   +---------------------------------------------------------------+
 *   |                owner pid (0: the slot is free)                | +0  taken by compare-and-swap 0 -> pid
 *   |                             state                             | +4
 *   |                  owner start time (u64, lo, hi)               | +8
 *   |                       connection number                       | +16 names the client's channels
 *   |        connection index (the server's answer, with ACCEPTED)  | +20 the client's bit in the bitmaps
 *   |             claims of this slot (1.1; see below)              | +24 clients add 1 between owner and start time
 *   |                       reserved (4 bytes)                      | +28
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
 *
 * A claim adds 1 to the slot's claims word after its compare-and-swap on
 * owner and before its start time (1.1). The server's sweep, which judges
 * an owner by pid and start time without holding the slot, loads the word
 * before and after its reads and leaves the slot to the next sweep if it
 * moved: clients taking turns at a slot could otherwise be read as one's
 * pid with the other's start time, and a live client freed under it.
 */
import { ShmChannelError } from '../errors'
import { endLive, readEnd, claimEnd } from '../segment/ends'
import type { SegmentKind, SegmentShape } from '../segment/attach'
import { HEADER_SIZE_OFFSET, MAGIC_OFFSET, VERSION_OFFSET, invalidSegment } from '../segment/identity'
import { LINE, word } from '../segment/words'

export const LISTENER_MAGIC = 0x4c4d4853 // "SHML" read as a little-endian u32
export const LISTENER_VERSION_MAJOR = 3
export const LISTENER_VERSION_MINOR = 1

// Identity line: magic, version and header size as in every segment kind
// (lib/segment/identity.ts), then the listener's own fields.
export const LISTENER_MAGIC_OFFSET = MAGIC_OFFSET
export const LISTENER_VERSION_OFFSET = VERSION_OFFSET
export const LISTENER_HEADER_SIZE_OFFSET = HEADER_SIZE_OFFSET
export const SLOT_COUNT_OFFSET = LISTENER_HEADER_SIZE_OFFSET + 4
export const SLOT_SIZE_OFFSET = SLOT_COUNT_OFFSET + 4
export const CAPACITY_HINT_OFFSET = SLOT_SIZE_OFFSET + 4
export const CODEC_NAME_LENGTH_OFFSET = CAPACITY_HINT_OFFSET + 4
export const TABLE_BITS_OFFSET = CODEC_NAME_LENGTH_OFFSET + 4
/** The server's end: pid u32, start time u64, state u32, as every end slot (lib/segment/ends.ts). */
export const SERVER_END_OFFSET = LINE
/** Alone on its line: every client writes it, the server sleeps on it. */
export const DOORBELL_OFFSET = 2 * LINE
/** Next to the doorbell: both change only when the server parks or is woken. */
export const SERVER_PARKED_OFFSET = DOORBELL_OFFSET + 4
export const CODEC_NAME_OFFSET = 3 * LINE
export const CODEC_NAME_MAX = 64
/** After the codec name: the server adds 1 after writing replies; a client process's reply waiter sleeps on it. */
export const REPLY_BELL_OFFSET = CODEC_NAME_OFFSET + CODEC_NAME_MAX
/** How many client processes' reply waiters sleep (or are about to) on the reply bell. */
export const CLIENTS_PARKED_OFFSET = REPLY_BELL_OFFSET + 4
export const LISTENER_HEADER_SIZE = 4 * LINE

export const SLOT_SIZE = 32
export const SLOT_OWNER = 0
export const SLOT_STATE = 4
export const SLOT_START_TIME = 8
export const SLOT_CONNECTION = 16
export const SLOT_INDEX = 20
export const SLOT_CLAIMS = 24

export const SLOT_FREE = 0
export const SLOT_CLAIMED = 1
export const SLOT_READY = 2
export const SLOT_ACCEPTING = 3
export const SLOT_ACCEPTED = 4
export const SLOT_REFUSED = 5

export const MAX_SLOTS = 1024
/** Most connections one server can hold: the size of its connection table. */
export const MAX_TABLE_BITS = 65536

/** The connection table's bits for `maxClients` connections: a whole number of 32-bit words. */
export function tableBits (maxClients: number): number {
  return Math.ceil(Math.min(maxClients, MAX_TABLE_BITS) / 32) * 32
}

/** Byte offset of the visit bitmap; the streaming and answering bitmaps follow it. */
export function tableOffset (slots: number): number {
  return Math.ceil((LISTENER_HEADER_SIZE + slots * SLOT_SIZE) / LINE) * LINE
}

export function listenerSize (slots: number, bits: number): number {
  return tableOffset(slots) + 3 * (bits >>> 3)
}

/** Where a listener's connection table lies, as word indexes for an Int32Array over the whole region. */
export interface Table {
  /** First word of the visit bitmap. */
  visit: number
  /** First word of the streaming bitmap. */
  streaming: number
  /** First word of the answering bitmap. */
  answering: number
  /** Words in each bitmap. */
  words: number
}

export function table (slots: number, bits: number): Table {
  const visit = tableOffset(slots) >>> 2
  return { visit, streaming: visit + (bits >>> 5), answering: visit + 2 * (bits >>> 5), words: bits >>> 5 }
}

/** Word index of field `field` of slot `slot`, for an Int32Array over the whole region. */
export function slotWord (slot: number, field: number): number {
  return (LISTENER_HEADER_SIZE + slot * SLOT_SIZE + field) >>> 2
}

export const W_DOORBELL = word(DOORBELL_OFFSET)
export const W_SERVER_PARKED = word(SERVER_PARKED_OFFSET)
export const W_REPLY_BELL = word(REPLY_BELL_OFFSET)
export const W_CLIENTS_PARKED = word(CLIENTS_PARKED_OFFSET)

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

/** The listener's fields past its identity; throws ERR_INVALID_SEGMENT for what this version does not accept. */
export function checkListener (buffer: SharedArrayBuffer): { slots: number, bits: number } {
  const h = new Int32Array(buffer, 0, LISTENER_HEADER_SIZE / 4)
  const slots = h[word(SLOT_COUNT_OFFSET)]
  const bits = h[word(TABLE_BITS_OFFSET)]
  if (h[word(SLOT_SIZE_OFFSET)] !== SLOT_SIZE || slots < 1 || slots > MAX_SLOTS || bits < 32 || bits > MAX_TABLE_BITS || bits % 32 !== 0 ||
    listenerSize(slots, bits) > buffer.byteLength) {
    throw invalidSegment(LISTENER, 'a slot count, slot size or connection table this version does not accept')
  }
  return { slots, bits }
}

export interface ListenerHeader {
  slots: number
  bits: number
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
      h[word(TABLE_BITS_OFFSET)] = header.bits
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
