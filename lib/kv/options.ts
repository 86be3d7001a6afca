/**
 * Options of Store.open, checked once, with the defaults filled in.
 */
import { resolveCodec, type Codec, type CodecName } from '../codecs'
import { invalidType, outOfRange } from '../errors'
import { checkBoolean, checkInteger } from '../options'

export interface StoreOptions<T = unknown> {
  /** How values become bytes: a codec name or object (lib/codecs.ts). Default 'json'. */
  codec?: Codec<T> | CodecName
  /** Flush every write to the disk (fsync) before it returns. Default false: a returned write survives the process, not the machine. */
  durable?: boolean
  /** Permission bits of a file this call creates. Default 0o600. */
  mode?: number
  /** Open a file another user owns (as channels: ERR_FOREIGN_OWNER otherwise). */
  allowForeignOwner?: boolean
  /** Bytes of a new file (it doubles as it fills). Default 64 KiB. */
  initialSize?: number
  /** Compact automatically once garbage is more than this share of the records (0 < ratio < 1). Default 0.5. */
  compactRatio?: number
  /** ...and the records take at least this many bytes. Default 1 MiB. */
  compactMinSize?: number
  /**
   * Bytes of string values (utf8 codec) whose decoded strings this process
   * keeps, so a get of the same record does not decode it again. 0: none.
   * Default 64 MiB.
   */
  cacheSize?: number
  /**
   * Microseconds a watching process keeps polling the commit word (through
   * setImmediate, the event loop stays free) after a change reached it,
   * before it sleeps in the kernel: a change in that window reaches it in
   * microseconds instead of a wake-up's tens. 0: sleep at once. Default 200.
   */
  watchPollMicros?: number
  /** How long to wait for a creator to finish a new file's header, in ms. Default 1000. */
  openTimeout?: number
}

export interface StoreSettings<T> {
  codec: Codec<T>
  durable: boolean
  mode: number
  allowForeignOwner: boolean
  initialSize: number
  compactRatio: number
  compactMinSize: number
  cacheSize: number
  watchPollMicros: number
  openTimeout: number
}

export function checkStoreOptions<T> (options: StoreOptions<T>): StoreSettings<T> {
  if (typeof options !== 'object' || options === null) throw invalidType('options', 'an object', options)
  const compactRatio = options.compactRatio ?? 0.5
  if (typeof compactRatio !== 'number' || !(compactRatio > 0 && compactRatio < 1)) {
    throw outOfRange('compactRatio', 'a number between 0 and 1 (exclusive)', compactRatio)
  }
  return {
    codec: resolveCodec(options.codec),
    durable: checkBoolean('durable', options.durable) ?? false,
    mode: options.mode === undefined ? 0o600 : checkInteger('mode', options.mode, 0, 0o777),
    allowForeignOwner: checkBoolean('allowForeignOwner', options.allowForeignOwner) ?? false,
    initialSize: options.initialSize === undefined ? 64 * 1024 : checkInteger('initialSize', options.initialSize, 4096, 2 ** 40),
    compactRatio,
    compactMinSize: options.compactMinSize === undefined ? 1 << 20 : checkInteger('compactMinSize', options.compactMinSize, 0, 2 ** 45),
    cacheSize: options.cacheSize === undefined ? 64 << 20 : checkInteger('cacheSize', options.cacheSize, 0, 2 ** 45),
    watchPollMicros: options.watchPollMicros === undefined ? 200 : checkInteger('watchPollMicros', options.watchPollMicros, 0, 1e6),
    openTimeout: options.openTimeout === undefined ? 1000 : checkInteger('openTimeout', options.openTimeout, 0, 2 ** 31)
  }
}
