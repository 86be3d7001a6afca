/**
 * A listener (lib/rpc/listener-layout.ts) as the inspector sees it: its
 * server, the clients connecting at this instant, and whether the object
 * is left over from a server that is gone. Reads only; for `shm-channel`
 * (lib/tools/cli.ts).
 */
import { isAlive } from '../platform/liveness'
import { readEnd, endLive, END_CLOSED, END_OPEN, type EndInfo } from '../segment/ends'
import { HEADER_SIZE_OFFSET, MAGIC_OFFSET, VERSION_OFFSET } from '../segment/identity'
import { word } from '../segment/words'
import {
  CAPACITY_HINT_OFFSET, CODEC_NAME_LENGTH_OFFSET, CODEC_NAME_MAX, CODEC_NAME_OFFSET, LISTENER_HEADER_SIZE, LISTENER_MAGIC,
  LISTENER_VERSION_MAJOR, SERVER_END_OFFSET, SLOT_OWNER, SLOT_STATE, SLOT_FREE, W_DOORBELL, W_SERVER_PARKED, checkListener, slotWord
} from './listener-layout'

/** The server's end: 'alive', 'dead' (its process is gone without closing), 'closed', or 'free' (never taken). */
export type ServerStatus = 'alive' | 'dead' | 'closed' | 'free'

export interface ListenerSnapshot {
  kind: 'listener'
  name: string
  size: number
  version: string
  server: EndInfo & { status: ServerStatus }
  codec: string
  /** Ring bytes the server asks of each connection's channels (0: the client's choice). */
  capacity: number
  /** Connection slots (the backlog); `connecting` of them are held by a client at this instant. */
  slots: number
  connecting: number
  /** Connections the table can hold (maxClients, up to a multiple of 32). */
  tableBits: number
  /** Doorbell rings while the server was parked, and whether it is parked now. */
  doorbell: number
  parked: boolean
}

function serverStatus (end: EndInfo): ServerStatus {
  switch (end.state) {
    case END_OPEN: return endLive(end) ? 'alive' : 'dead'
    case END_CLOSED: return 'closed'
    default:
      // The creator publishes the listener only after taking the end: a
      // pid without an open state is a creator at work, or one that died.
      if (end.pid === 0) return 'free'
      return isAlive(end.pid, 0) ? 'alive' : 'dead'
  }
}

/** The listener in `buffer`, or undefined when it is not one (other magic, a version this one cannot read, too small). */
export function inspectListener (name: string, buffer: SharedArrayBuffer): ListenerSnapshot | undefined {
  if (buffer.byteLength < LISTENER_HEADER_SIZE) return undefined
  const h = new Int32Array(buffer)
  if (Atomics.load(h, word(MAGIC_OFFSET)) >>> 0 !== LISTENER_MAGIC) return undefined
  const version = h[word(VERSION_OFFSET)]
  const major = version >>> 16
  if (major !== LISTENER_VERSION_MAJOR || h[word(HEADER_SIZE_OFFSET)] !== LISTENER_HEADER_SIZE) return undefined
  let layout: { slots: number, bits: number }
  try {
    layout = checkListener(buffer)
  } catch {
    return undefined
  }
  let connecting = 0
  for (let i = 0; i < layout.slots; i++) {
    if (Atomics.load(h, slotWord(i, SLOT_OWNER)) !== 0 && Atomics.load(h, slotWord(i, SLOT_STATE)) !== SLOT_FREE) connecting++
  }
  const end = readEnd(h, SERVER_END_OFFSET)
  const codecLength = Math.min(CODEC_NAME_MAX, h[word(CODEC_NAME_LENGTH_OFFSET)] >>> 0)
  return {
    kind: 'listener',
    name,
    size: buffer.byteLength,
    version: `${major}.${version & 0xffff}`,
    server: { ...end, status: serverStatus(end) },
    codec: Buffer.from(buffer, CODEC_NAME_OFFSET, codecLength).toString('utf8'),
    capacity: h[word(CAPACITY_HINT_OFFSET)] >>> 0,
    slots: layout.slots,
    connecting,
    tableBits: layout.bits,
    doorbell: Atomics.load(h, W_DOORBELL) >>> 0,
    parked: Atomics.load(h, W_SERVER_PARKED) !== 0
  }
}

/** True when no server will come back to this listener: removing it (and its connections' channels) loses nothing. */
export function listenerCollectable (listener: ListenerSnapshot): boolean {
  return listener.server.status === 'dead' || listener.server.status === 'closed'
}

/**
 * The names (without slash) of the connection channels of listener `name`
 * among `names`: `${name}.${pid}.${connection}.up` and `.down`.
 */
export function connectionChannels (name: string, names: readonly string[]): string[] {
  const pattern = new RegExp(`^${name.replace(/^\//, '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.\\d+\\.\\d+\\.(up|down)$`)
  return names.filter((n) => pattern.test(n))
}

/** `shm-channel stat` of a listener: what each field means, one per line. */
export function describeListener (l: ListenerSnapshot): string {
  const server = l.server.pid === 0 ? l.server.status : `pid ${l.server.pid} (${l.server.status}, start time ${l.server.startTime})`
  return [
    `listener   ${l.name} (request/response: clients connect here by name; ${l.size} bytes)`,
    `protocol   listener ${l.version}, codec ${l.codec}`,
    `server     ${server}${listenerCollectable(l) ? ': gone, `shm-channel gc` removes this listener and its connections\' channels' : ''}`,
    `rings      ${l.capacity === 0 ? 'as each client chooses' : `${l.capacity} bytes each way per connection`}`,
    `slots      ${l.connecting} of ${l.slots} held by clients connecting now`,
    `clients    up to ${l.tableBits} connected (one visit bit each)`,
    `doorbell   ${l.doorbell} rings of a parked server; server ${l.parked ? 'parked' : 'awake (or never parked)'}`
  ].join('\n') + '\n'
}
