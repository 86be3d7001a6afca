/**
 * The options of a request/response server and client, checked before
 * anything is opened, and the names derived from a service name.
 */
import type { Codec, CodecName } from '../codecs'
import { resolveCodec } from '../codecs'
import { invalidValue } from '../errors'
import { checkInteger } from '../options'
import { checkName } from '../platform/region'
import { DEFAULT_MAX_MESSAGE_SIZE, settings, type WaitStrategy } from '../channel/options'
import type { DuplexOptions } from './duplex'
import { FRAME_HEADER_SIZE } from './frames'

/** Ring bytes of each direction of a connection unless the server asks otherwise: large messages go in fragments. */
export const DEFAULT_RPC_CAPACITY = 64 * 1024
/** Connected clients a server admits unless told otherwise. */
export const DEFAULT_MAX_CLIENTS = 1024

/** Longest `.${pid}.${connection}.down` suffix a service name gets for its channels. */
const CHANNEL_SUFFIX_MAX = '.4294967295.4294967295.down'.length

export interface ConnectionOptions<Req, Res> {
  /** How requests and replies become bytes: 'json' (default), 'structured', 'utf8', 'bytes', or your own. Both sides must use the same. */
  codec?: Codec<Req | Res> | CodecName
  /** How this side waits for frames: 'adaptive' (default), 'spin' or 'block'; see ChannelOptions. */
  wait?: WaitStrategy
  /** Spin budget of 'adaptive', in microseconds. Default 50. */
  spinMicros?: number
  /** While waiting, how often to check that the other process lives, in milliseconds. Default 250. */
  peerCheckInterval?: number
  /** Largest request (server) or reply (client) value accepted, in encoded bytes. Default 64 MiB (DEFAULT_MAX_MESSAGE_SIZE); Infinity for no limit. */
  maxMessageSize?: number
  /** Permission bits of the shared memory objects this side creates. Default 0o600. */
  mode?: number
  /** Talk to a peer running as another user: join its listener (client) or channels (server). Default false: ERR_FOREIGN_OWNER. */
  allowForeignOwner?: boolean
}

export interface ServeOptions<Req = unknown, Res = unknown> extends ConnectionOptions<Req, Res> {
  /** Ring bytes of each channel a client creates (clients may override). A power of two, 4096 to 2^30. Default 64 KiB: larger messages go in fragments. */
  capacity?: number
  /** Connection slots of the listener: how many clients can be connecting at one instant. 1 to 1024, default 32. */
  backlog?: number
  /** Connected clients at most, 1 to 65536; more are refused (their connect fails with ERR_BUSY). Default 1024. */
  maxClients?: number
  /** Requests of one client whose handler is still running, at most; beyond it the server reads no further requests of that client until one finishes. Default 1024. */
  maxInFlight?: number
  /** How long to wait for another process's half-made listener under the name, in milliseconds. Default 5000. */
  openTimeout?: number
  /** Closes the server when it aborts (as server.close() does). */
  signal?: AbortSignal
}

export interface ConnectOptions<Req = unknown, Res = unknown> extends ConnectionOptions<Req, Res> {
  /** Ring bytes of this client's two channels. Default: what the server asks for. */
  capacity?: number
  /** How long to wait for the server (its listener may not exist yet) and its acceptance, in milliseconds. Default 5000. */
  timeout?: number
  /** Gives up connecting. */
  signal?: AbortSignal
  /**
   * When the connection breaks (the server died or closed it), the next
   * request connects again to whatever server then serves the name, waiting
   * up to `timeout` for one, instead of failing. Requests in flight at the
   * break still fail (ERR_PEER_DEAD, ERR_CHANNEL_CLOSED): they are never
   * sent again, since a handler may not be idempotent. Default false.
   */
  reconnect?: boolean
}

export interface RequestOptions {
  /** Milliseconds until the request fails with ERR_TIMEOUT. Default: no limit. */
  timeout?: number
  /** Cancels the request: it fails with an AbortError, and the handler's `context.signal` aborts. */
  signal?: AbortSignal
}

interface Common {
  codec: Codec<unknown>
  peerCheckInterval: number
  channel: DuplexOptions<Uint8Array>
}

/** Checks what both sides take, so a bad option fails at serve()/connect() and not at the first client. */
export function common (options: ConnectionOptions<unknown, unknown>): Common {
  const codec = resolveCodec(options.codec as Codec<unknown> | CodecName | undefined)
  const { wait, spinMicros, peerCheckInterval } = settings(options)
  let maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE
  if (maxMessageSize !== Infinity) maxMessageSize = checkInteger('maxMessageSize', maxMessageSize, 0, Number.MAX_SAFE_INTEGER - FRAME_HEADER_SIZE) + FRAME_HEADER_SIZE
  if (options.mode !== undefined) checkInteger('mode', options.mode, 0, 0o777)
  return {
    codec,
    peerCheckInterval,
    channel: { codec: 'bytes', wait, spinMicros, peerCheckInterval, maxMessageSize, mode: options.mode, allowForeignOwner: options.allowForeignOwner }
  }
}

/** The service name as a shared memory name (with its slash) and bare (for channel names). */
export function serviceName (name: unknown): { shm: string, base: string } {
  const shm = checkName(name)
  const base = shm.slice(1)
  if (Buffer.byteLength(base) > 255 - CHANNEL_SUFFIX_MAX) {
    throw invalidValue('name', `must be at most ${255 - CHANNEL_SUFFIX_MAX} bytes: the connections' channel names add up to ${CHANNEL_SUFFIX_MAX}`)
  }
  return { shm, base }
}

export function connectionName (base: string, owner: { pid: number, connection: number }): string {
  return `${base}.${owner.pid}.${owner.connection}`
}
