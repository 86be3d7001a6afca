/**
 * The options of a channel end, checked before anything is opened: an
 * option refused after an end is taken would leave the end claimed.
 */
import type { Codec, CodecName } from '../codecs'
import { invalidValue, outOfRange } from '../errors'
import { checkBoolean, checkInteger, checkTimeout } from '../options'
import { checkWaitSettings, type WaitSettings, type WaitSettingsOptions } from '../segment/wait'
import * as L from './layout'

export type { WaitStrategy } from '../segment/wait'

export const DEFAULT_CAPACITY = 1 << 20

/**
 * The largest message a consumer accepts unless told otherwise: 64 MiB, the
 * ceiling NATS puts on its own max_payload. Pass `maxMessageSize: Infinity`
 * for no limit but the largest Buffer.
 */
export const DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024

export interface ChannelOptions<T> extends WaitSettingsOptions {
  /** How values become bytes: 'json' (default), 'structured', 'utf8', 'bytes', or your own codec. */
  codec?: Codec<T> | CodecName
  /** Ring size in bytes when this end creates the channel: a power of two from 4096 to 2^30. Default 1 MiB. */
  capacity?: number
  /** Permission bits when this end creates the channel. Default 0o600. */
  mode?: number
  /** How long to wait for a creator to finish the channel's header, in milliseconds. Default 5000. */
  openTimeout?: number
  /** Join a channel whose shared memory object another user owns. Default false: ERR_FOREIGN_OWNER. */
  allowForeignOwner?: boolean
  /**
   * What this end does when the other end's process dies without closing:
   * 'error' (default) fails waits, and sends from the next peer check on,
   * with ERR_PEER_DEAD until a replacement takes the dead end over; 'wait'
   * keeps waiting for a replacement, up to `peerDeathTimeout`.
   */
  onPeerDeath?: PeerDeathPolicy
  /** With onPeerDeath 'wait': how long after noticing the death to wait for a replacement before ERR_PEER_DEAD, in milliseconds. Default 30000. */
  peerDeathTimeout?: number
  /** Remove whatever channel is under the name and create a new, empty one. Default false: join or take over the existing one. */
  fresh?: boolean
}

export type PeerDeathPolicy = 'error' | 'wait'

/** How an end treats its peer's death, checked. */
export interface PeerDeathSettings {
  onPeerDeath: PeerDeathPolicy
  peerDeathTimeout: number
  peerCheckInterval: number
}

export const DEFAULT_PEER_DEATH_TIMEOUT = 30000

export interface ConsumerOptions<T> extends ChannelOptions<T> {
  /** Largest message this end accepts (reassembles), in bytes. Default 64 MiB (DEFAULT_MAX_MESSAGE_SIZE); Infinity for no limit but the largest Buffer. */
  maxMessageSize?: number
}

export interface WaitOptions {
  /** Milliseconds; default no limit. */
  timeout?: number
  signal?: AbortSignal
}

/** Checks a ring capacity option (also used by lib/rpc). */
export function checkCapacity (capacity: unknown): number {
  checkInteger('capacity', capacity, L.MIN_CAPACITY, L.MAX_CAPACITY)
  const c = capacity as number
  if ((c & (c - 1)) !== 0) throw outOfRange('capacity', `a power of two between ${L.MIN_CAPACITY} and 2^30`, c)
  return c
}

/** Checks the options every end takes besides its codec (also used by lib/rpc). */
export function settings (options: ChannelOptions<unknown>): WaitSettings {
  const checked = checkWaitSettings(options)
  checkBoolean('allowForeignOwner', options.allowForeignOwner)
  checkBoolean('fresh', options.fresh)
  peerDeathSettings(options)
  return checked
}

/** Checks onPeerDeath and peerDeathTimeout, filling in the defaults. */
export function peerDeathSettings (options: ChannelOptions<unknown>): PeerDeathSettings {
  const onPeerDeath = options.onPeerDeath ?? 'error'
  if (onPeerDeath !== 'error' && onPeerDeath !== 'wait') {
    throw invalidValue('onPeerDeath', `must be 'error' or 'wait', got ${JSON.stringify(onPeerDeath)}`)
  }
  const peerDeathTimeout = checkTimeout('peerDeathTimeout', options.peerDeathTimeout ?? DEFAULT_PEER_DEATH_TIMEOUT)
  const { peerCheckInterval } = checkWaitSettings(options)
  return { onPeerDeath, peerDeathTimeout, peerCheckInterval }
}

/** Checks a consumer's maxMessageSize: DEFAULT_MAX_MESSAGE_SIZE when not given, Infinity for none. */
export function checkMaxMessageSize (max: unknown): number {
  if (max === undefined) return DEFAULT_MAX_MESSAGE_SIZE
  if (max === Infinity) return Infinity
  return checkInteger('maxMessageSize', max, 0, Number.MAX_SAFE_INTEGER)
}
