/**
 * A key-value store in one file, mapped MAP_SHARED by every process that
 * opens it (docs/kv.md). Writes append records under a cross-process lock
 * (./lock.ts) and publish them by moving one commit word; each process keeps
 * its own index from key to record and brings it up to date from the
 * records appended since it last looked, whenever the commit word moved.
 *
 * Who may call what: every method, from any process and any number of them
 * at once. A value set in one process is in every other process's `get` as
 * soon as `set` returns there (the commit word is sequentially consistent).
 * Reads take no lock and make no system call unless the file moved on.
 */
import fs from 'node:fs'

import { binding } from '../binding'
import { resolveCodec, utf8, type Codec, type CodecName } from '../codecs'
import { ShmChannelError, invalidType, invalidValue, outOfRange } from '../errors'
import { wake as futexWake, waitAsync as futexWaitAsync } from '../platform/futex'
import { Region, checkOwnerOf } from '../platform/region'
import { sleepSync } from '../platform/sleep'
import { checkIdentity, publishIdentity, writeIdentity } from '../segment/identity'
import { loadU64, readU64, storeU64, word } from '../segment/words'
import { crc32c } from './crc32c'
import {
  CODEC_NAMES, CODEC_TAGS, COMMIT_OFFSET, COMMIT_UNIT, DATA_START, FLAG_BYTES_KEY, FLAG_MORE, HEADER_SIZE, KIND_CLEAR,
  KIND_DELETE, KIND_SET, MAX_FILE_SIZE, MAX_KEY_LENGTH, RECORD_HEADER, RETIRED_OFFSET, R_CRC, R_FLAGS,
  R_KEY_LENGTH, R_KIND, R_SEQUENCE, R_VALUE_LENGTH, SEQUENCE_OFFSET, STORE_KIND, STORE_MAGIC, WATCHERS_OFFSET, recordSize
} from './layout'
import { acquire, release } from './lock'
import { checkStoreOptions, type StoreOptions, type StoreSettings } from './options'
import { scanRecords, type Damage } from './records'
import { Spool } from './spool'

const { O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants

/** A key: a string (stored as UTF-8) or bytes. A string key never equals a bytes key. */
export type Key = string | Uint8Array

export interface SetOptions<T = unknown> {
  /** Milliseconds until the key expires (then reads as absent). */
  ttl?: number
  /** Write this value with another codec than the store's. */
  codec?: Codec<T> | CodecName
}

export type BatchOperation =
  | { type: 'set', key: Key, value: unknown, ttl?: number, codec?: Codec<any> | CodecName }
  | { type: 'delete', key: Key }

export interface WatchEvent {
  /** 'set', 'delete', or 'clear' (every key went; `key` is undefined). */
  type: 'set' | 'delete' | 'clear'
  key: Key | undefined
}

export interface WatchOptions {
  /** Watch every key that starts with the key given. Default false. */
  prefix?: boolean
}

/** A watch; close() ends it. While any watch of a store is open, it keeps the process alive. */
export interface Watch {
  close (): void
  [Symbol.dispose] (): void
}

export interface VerifyResult {
  /** Whole records read. */
  records: number
  /** Keys present (expired ones included until compaction). */
  keys: number
  /** Bytes of the file that records take up to the committed end. */
  used: number
  /** Bytes of the records that are still live. */
  live: number
  /** Stretches that did not hold whole records: lost, and reported here. */
  damaged: Damage[]
}

/** A value's place in the file, as this process's index keeps it. */
interface Entry {
  offset: number
  size: number
  valueStart: number
  valueLength: number
  codec: number
  expiry: number
  sequence: number
  /** The decoded value, kept while the cache has room (values of the utf8 codec only: strings cannot be changed by the caller). */
  cached: string | undefined
  /** The key as the index holds it, and whether it is a bytes key (which map). */
  key: string
  bytes: boolean
  /** Its place in #records: the set records of this file in file order. */
  ordinal: number
}

interface Prepared {
  kind: number
  flags: number
  /** The key as the index holds it (the string, or the bytes as latin1); undefined: as the file has it (see indexName). */
  name: string | undefined
  /** A string key is written as UTF-8 straight into the file; bytes keys are copied. */
  key: Uint8Array | string
  /** Bytes of the key in the file; UNMEASURED for a string not measured yet (see #append). */
  keyLength: number
  value: Uint8Array | string | undefined
  /** Bytes of the value in the file; UNMEASURED for a string not measured yet. */
  valueLength: number
  codec: number
  expiry: number
}

/**
 * The byte length of a string key or value that #prepareSet did not measure:
 * a string of n UTF-16 units takes at most 3n bytes of UTF-8, so where that
 * much room is left #append writes the string and takes its length from the
 * write, instead of measuring it first (a second pass over it).
 */
const UNMEASURED = -1

/** Bytes `r` takes in the file at most, before its strings are measured. */
function maxRecordSize (r: Prepared): number {
  const k = r.keyLength !== UNMEASURED ? r.keyLength : (r.key as string).length * 3
  const v = r.valueLength !== UNMEASURED ? r.valueLength : (r.value as string).length * 3
  return recordSize(k, v)
}

/** Measures the strings of `r` that are not measured yet. */
function measure (r: Prepared): void {
  if (r.keyLength === UNMEASURED) r.keyLength = Buffer.byteLength(r.key as string, 'utf8')
  if (r.valueLength === UNMEASURED) r.valueLength = Buffer.byteLength(r.value as string, 'utf8')
}

/** What a step under the lock did: 'moved' means the file was replaced and the step must run again in the new one. */
type Outcome = 'wrote' | 'nothing' | 'moved'

interface WatchEntry {
  key: string
  bytes: boolean
  prefix: boolean
  callback: (event: WatchEvent) => void
}

/** fds of stores dropped without close(). */
const dropped = new FinalizationRegistry<number>((fd) => { try { fs.closeSync(fd) } catch {} })

const COMMIT = word(COMMIT_OFFSET)
const RETIRED = word(RETIRED_OFFSET)
const SEQUENCE = word(SEQUENCE_OFFSET)
const WATCHERS = word(WATCHERS_OFFSET)
/** Written in place of the magic by the one process rebuilding a header that was found zeroed. */
const REPAIR_MAGIC = 0x52504b56
const PAGE = 4096
/**
 * Share of garbage in a full file above which it is compacted instead of
 * grown (see #compactWhenFull). An automatic compaction leaves
 * AUTOMATIC_HEADROOM (of the live records) free: by the time writes fill
 * it, 3/11 of the file is garbage, more than FULL_GARBAGE, so under steady
 * overwrites the file stays at 1.375x its live records (under 2x the bare
 * keys and values once a record's 32-byte header and padding add 40% to
 * small entries) and is rewritten once per 3/8 of them written.
 * compact() leaves a quarter.
 */
const FULL_GARBAGE = 1 / 5
const AUTOMATIC_HEADROOM = 3 / 8
/**
 * Bytes past the committed end that a writer fills with zeros through the
 * file descriptor (one pwrite) before its records reach them: a first write
 * through the mapping into a page the page cache already holds costs about
 * half the fault of one it must allocate (docs/kv.md). Only ever past the
 * committed end, under the lock: nothing there is read.
 */
const PREFAULT = 256 * 1024
const ZEROS = Buffer.alloc(PREFAULT)
const EXPLICIT_HEADROOM = 1 / 4
const EMPTY = Buffer.alloc(0)
/** The header of a store with no file: its commit word never matches, so every call checks whether the store is closed. */
const UNMAPPED = new Int32Array(HEADER_SIZE / 4).fill(-1)

function fdPath (fd: number): string {
  return process.platform === 'linux' ? `/proc/self/fd/${fd}` : `/dev/fd/${fd}`
}

function codecTag (codec: Codec<unknown>): number {
  return CODEC_TAGS[codec.name] ?? 0
}

function keyBytes (key: unknown): Uint8Array {
  let bytes: Uint8Array
  if (typeof key === 'string') bytes = Buffer.from(key, 'utf8')
  else if (key instanceof Uint8Array) bytes = key
  else throw invalidType('key', 'a string or a Uint8Array', key)
  if (bytes.length === 0 || bytes.length > MAX_KEY_LENGTH) throw outOfRange('key', `from 1 to ${MAX_KEY_LENGTH} bytes`, key)
  return bytes
}

/**
 * Bytes `key` takes in a record (a string as UTF-8), checked against the
 * limits; UNMEASURED for a string that is within them whatever its bytes.
 */
function keyLength (key: unknown): number {
  let length: number
  if (typeof key === 'string') {
    if (key.length > 0 && key.length * 3 <= MAX_KEY_LENGTH) return UNMEASURED
    length = Buffer.byteLength(key, 'utf8')
  } else if (key instanceof Uint8Array) length = key.length
  else throw invalidType('key', 'a string or a Uint8Array', key)
  if (length === 0 || length > MAX_KEY_LENGTH) throw outOfRange('key', `from 1 to ${MAX_KEY_LENGTH} bytes`, key)
  return length
}

/** A record that removes `key`. */
function deletion (key: Key): Prepared {
  const length = keyLength(key)
  const bytes = typeof key !== 'string'
  return { kind: KIND_DELETE, flags: bytes ? FLAG_BYTES_KEY : 0, name: indexName(key), key, keyLength: length, value: undefined, valueLength: 0, codec: 0, expiry: 0 }
}

/** Whether a string survives UTF-8 and back (no lone surrogates). Node >= 20 has the method; ES2022's types do not. */
function isWellFormed (s: string): boolean {
  return (s as unknown as { isWellFormed: () => boolean }).isWellFormed()
}

/**
 * The name under which a process indexes the key it writes: a string key
 * with a lone surrogate is undefined, as UTF-8 replaces it and every other
 * process indexes what the file holds.
 */
function indexName (key: Key): string | undefined {
  if (typeof key !== 'string') return latin1(key)
  return isWellFormed(key) ? key : undefined
}

function latin1 (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1')
}

/** Clears MORE in the whole record at `p` of `bytes` and writes its new CRC: alone now, no longer part of a batch. */
function unbatch (bytes: Buffer, p: number): void {
  bytes[p + R_FLAGS] &= ~FLAG_MORE
  const end = p + RECORD_HEADER + bytes.readUInt16LE(p + R_KEY_LENGTH) + bytes.readUInt32LE(p + R_VALUE_LENGTH)
  bytes.writeUInt32LE(crc32c(bytes, p + 4, end), p + R_CRC)
}

function checkTtl (ttl: unknown): number {
  if (ttl === undefined) return 0
  if (typeof ttl !== 'number' || !(ttl > 0) || ttl === Infinity) throw outOfRange('ttl', 'a positive number of milliseconds', ttl)
  return Math.ceil(Date.now() + ttl)
}

export class Store<T = unknown> {
  /** The file's path. */
  readonly path: string
  readonly #settings: StoreSettings<T>
  readonly #codecTag: number
  #fd = -1
  #region: Region | undefined
  /** The mapping of a file this process just compacted away, until its lock is released. */
  #retired: Region | undefined
  /**
   * While #locked holds a file's writer lock: that file's header, in the
   * mapping that is current for it. A remap (growth) or a move to another
   * file must not leave the release to go through a view the process has
   * since unmapped: it would miss the lock, which its holder would then
   * keep for ever.
   */
  #held: Int32Array | undefined
  #buf: Buffer = EMPTY
  #h: Int32Array = UNMAPPED
  /** The whole mapping as 32-bit words, for record headers. */
  #words: Int32Array = UNMAPPED
  /** File offset below which this process has filled the file past the committed end (see PREFAULT); 0 after a remap. */
  #prefaulted = 0
  /** The commit word this index reflects. */
  #applied = 0
  readonly #strings = new Map<string, Entry>()
  readonly #bytes = new Map<string, Entry>()
  /**
   * The entries of this file's set records in file order, one slot per
   * record applied, undefined once a later record replaced or deleted it:
   * compaction walks it front to back instead of sorting the index.
   */
  #records: Array<Entry | undefined> = []
  #live = 0
  #expiring = 0
  /** Value bytes whose decoded value the index keeps (at most settings.cacheSize). */
  #cachedBytes = 0
  #damage: Damage[] = []
  readonly #watches = new Set<WatchEntry>()
  #events: WatchEvent[] = []
  /** While a new file's index is built: its records are not news, the difference with the old index is. */
  #muted = false
  #watchLoop: Promise<void> | undefined
  #waitAbort: AbortController | undefined
  #pendingWait: Promise<unknown> | undefined
  #closed = false

  private constructor (path: string, settings: StoreSettings<T>) {
    this.path = path
    this.#settings = settings
    this.#codecTag = codecTag(settings.codec as Codec<unknown>)
  }

  /**
   * Opens the store in the file at `path`, creating it if there is none.
   * Damaged records found on the way are skipped and listed by verify().
   */
  static open<T = unknown> (path: string, options: StoreOptions<T> = {}): Store<T> {
    if (typeof path !== 'string' || path.length === 0) throw invalidType('path', 'a non-empty string', path)
    const store = new Store<T>(path, checkStoreOptions(options))
    store.#attach()
    return store
  }

  // ---- reads -------------------------------------------------------------

  /** The value of `key`, or undefined. `codec` (a typed get) refuses a value written with another codec: ERR_VALUE_TYPE. */
  get<V = T> (key: Key, codec?: Codec<V> | CodecName): V | undefined {
    if (Atomics.load(this.#h, COMMIT) !== this.#applied) this.#catchUp()
    const entry = typeof key === 'string' ? this.#strings.get(key) : this.#bytes.get(latin1(keyBytes(key)))
    if (entry === undefined || (entry.expiry !== 0 && entry.expiry <= Date.now())) return undefined
    const c = codec === undefined ? this.#settings.codec as unknown as Codec<V> : resolveCodec(codec)
    const tag = codec === undefined ? this.#codecTag : codecTag(c as Codec<unknown>)
    if (entry.codec !== tag) {
      throw new ShmChannelError('ERR_VALUE_TYPE', `the value of ${describeKey(key)} was written with ${CODEC_NAMES[entry.codec] ?? `codec ${entry.codec}`}, not ${CODEC_NAMES[tag]}`)
    }
    if (entry.cached !== undefined) return entry.cached as V
    const end = entry.valueStart + entry.valueLength
    if (c === utf8 as unknown) {
      // A string never changes, and neither does a record: keep it for the next get.
      const value = this.#buf.toString('utf8', entry.valueStart, end)
      this.#cache(entry, value)
      return value as V
    }
    if (c.decodeRange !== undefined) return c.decodeRange(this.#buf, entry.valueStart, end)
    return c.decode(this.#buf.subarray(entry.valueStart, end))
  }

  /** The name of the codec that wrote `key`'s value ('json', 'utf8', ... or 'custom'), or undefined if the key is absent. */
  codecOf (key: Key): string | undefined {
    if (!this.has(key)) return undefined
    const entry = typeof key === 'string' ? this.#strings.get(key) : this.#bytes.get(latin1(keyBytes(key)))
    return entry === undefined ? undefined : entry.codec === 0 ? 'custom' : CODEC_NAMES[entry.codec] ?? `codec ${entry.codec}`
  }

  has (key: Key): boolean {
    if (Atomics.load(this.#h, COMMIT) !== this.#applied) this.#catchUp()
    const entry = typeof key === 'string' ? this.#strings.get(key) : this.#bytes.get(latin1(keyBytes(key)))
    return entry !== undefined && (entry.expiry === 0 || entry.expiry > Date.now())
  }

  /** Number of keys present. */
  get size (): number {
    this.#refresh()
    if (this.#expiring === 0) return this.#strings.size + this.#bytes.size
    let n = 0
    for (const entry of this.#present(undefined)) if (entry !== undefined) n++
    return n
  }

  /** Keys present, string keys first, then bytes keys (as Buffers); only those starting with `prefix` if given. */
  * keys (prefix?: Key): IterableIterator<Key> {
    for (const [key] of this.#present(prefix)) yield key
  }

  /** [key, value] of every key present (with `prefix`, if given), decoded with the store's codec. */
  * entries (prefix?: Key): IterableIterator<[Key, T]> {
    for (const [key] of this.#present(prefix)) {
      const value = this.get(key)
      if (value !== undefined) yield [key, value]
    }
  }

  * #present (prefix: Key | undefined): IterableIterator<[Key, Entry]> {
    this.#refresh()
    const now = Date.now()
    const p = prefix === undefined ? undefined : typeof prefix === 'string' ? prefix : latin1(keyBytes(prefix))
    if (prefix === undefined || typeof prefix === 'string') {
      for (const [key, entry] of [...this.#strings]) {
        if ((p === undefined || key.startsWith(p)) && (entry.expiry === 0 || entry.expiry > now)) yield [key, entry]
      }
    }
    if (prefix === undefined || typeof prefix !== 'string') {
      for (const [key, entry] of [...this.#bytes]) {
        if ((p === undefined || key.startsWith(p)) && (entry.expiry === 0 || entry.expiry > now)) yield [Buffer.from(key, 'latin1'), entry]
      }
    }
  }

  // ---- writes ------------------------------------------------------------

  /** Sets `key` to `value`; visible to every process when it returns. ENOSPC if the file cannot grow. */
  set (key: Key, value: T, options?: SetOptions): void {
    this.#write([this.#prepareSet(key, value, options?.ttl, options?.codec)])
  }

  /** Removes `key`; false if it was not there. */
  delete (key: Key): boolean {
    let found = false
    const record = deletion(key)
    this.#write([], () => {
      found = this.has(key)
      return found ? [record] : []
    })
    return found
  }

  /** Removes every key. */
  clear (): void {
    this.#write([{ kind: KIND_CLEAR, flags: 0, name: '', key: EMPTY, keyLength: 0, value: undefined, valueLength: 0, codec: 0, expiry: 0 }])
  }

  /** Applies all the operations or none: no process ever sees some of them without the others. */
  batch (operations: BatchOperation[]): void {
    if (!Array.isArray(operations)) throw invalidType('operations', 'an array', operations)
    const prepared = operations.map((op, i) => {
      if (op?.type === 'set') return this.#prepareSet(op.key, op.value as T, op.ttl, op.codec)
      if (op?.type === 'delete') return deletion(op.key)
      throw invalidValue(`operations[${i}].type`, "must be 'set' or 'delete'")
    })
    this.#write(prepared)
  }

  /** Flushes the file to the disk (fsync): what was written then survives a crash of the machine. */
  sync (): void {
    this.#checkOpen()
    fs.fsyncSync(this.#fd)
  }

  /** Rewrites the live records into a new file that replaces this one (crash-safe: write, then rename). */
  compact (): void {
    // Not 'wrote': the index still describes the retired file, and must not compact it a second time.
    this.#locked(() => { this.#compactLocked(EXPLICIT_HEADROOM); return 'nothing' })
  }

  /** Reads every record up to the committed end again and reports what is damaged. Changes nothing. */
  verify (): VerifyResult {
    this.#refresh()
    const end = Math.min(this.#applied * COMMIT_UNIT, this.#buf.length)
    const damaged: Damage[] = []
    let records = 0
    const keys = new Map<string, number>()
    let live = 0
    scanRecords(this.#buf, DATA_START, end, (p) => {
      records++
      const kind = this.#buf[p + R_KIND]
      if (kind === KIND_CLEAR) { keys.clear(); live = 0; return }
      const keyLength = this.#buf.readUInt16LE(p + R_KEY_LENGTH)
      const k = `${this.#buf[p + R_FLAGS] & FLAG_BYTES_KEY}:${this.#buf.toString('latin1', p + RECORD_HEADER, p + RECORD_HEADER + keyLength)}`
      live -= keys.get(k) ?? 0
      keys.delete(k)
      if (kind === KIND_SET) {
        const size = recordSize(keyLength, this.#buf.readUInt32LE(p + R_VALUE_LENGTH))
        keys.set(k, size)
        live += size
      }
    }, (d) => damaged.push(d))
    if (this.#applied * COMMIT_UNIT > this.#buf.length) {
      damaged.push({ offset: this.#buf.length, length: this.#applied * COMMIT_UNIT - this.#buf.length, reason: 'truncated' })
    }
    return { records, keys: keys.size, used: end - DATA_START, live, damaged }
  }

  /** What this process found damaged while reading the file (verify() reads it all again). */
  get damage (): readonly Damage[] {
    return this.#damage
  }

  /** Bytes of the file now (it grows by doubling and shrinks on compaction). */
  get fileSize (): number {
    this.#refresh()
    return this.#buf.length
  }

  // ---- watching ----------------------------------------------------------

  /**
   * Calls `callback` after each change of `key` (or, with `prefix`, of any
   * key starting with it) by any process. Waits in the kernel between
   * changes: no CPU while nothing changes.
   */
  watch (key: Key, callback: (event: WatchEvent) => void, options: WatchOptions = {}): Watch {
    this.#checkOpen()
    if (typeof callback !== 'function') throw invalidType('callback', 'a function', callback)
    const entry: WatchEntry = { key: typeof key === 'string' ? key : latin1(keyBytes(key)), bytes: typeof key !== 'string', prefix: options.prefix === true, callback }
    this.#refresh()
    this.#watches.add(entry)
    this.#watchLoop ??= this.#runWatches()
    const close = (): void => {
      this.#watches.delete(entry)
      if (this.#watches.size === 0) this.#waitAbort?.abort()
    }
    return { close, [Symbol.dispose]: close }
  }

  /**
   * Follows the commit word while any watch is open. After a change it
   * polls the word once per event-loop turn for watchPollMicros (changes
   * often come in runs, and a wake-up through the kernel and libuv costs
   * tens of microseconds); then it sleeps on the word in the kernel, counted
   * in the header's watcher count so that writers wake it. Idle, it uses no
   * CPU.
   */
  async #runWatches (): Promise<void> {
    const pollMs = this.#settings.watchPollMicros / 1000
    let active = performance.now()
    try {
      while (this.#watches.size > 0 && !this.#closed) {
        const h = this.#h
        const seen = Atomics.load(h, COMMIT)
        if (seen !== this.#applied) {
          this.#catchUp()
          active = performance.now()
          continue
        }
        if (performance.now() - active < pollMs) {
          await new Promise((resolve) => setImmediate(resolve))
          continue
        }
        const abort = new AbortController()
        this.#waitAbort = abort
        // Counted before the last look, so a writer either sees the count or we see its commit (as in lib/segment/wait.ts).
        Atomics.add(h, WATCHERS, 1)
        // Sleeps while the commit word still holds `seen`; a writer wakes it after its commit.
        const pending = futexWaitAsync(h, COMMIT, seen, { signal: abort.signal }).catch(() => {})
        this.#pendingWait = pending
        // Runs before #unmap's deferred close of this mapping (registered later on the same promise).
        await pending
        this.#pendingWait = undefined
        Atomics.sub(h, WATCHERS, 1)
      }
    } finally {
      this.#watchLoop = undefined
      // A watch opened while this loop was finishing.
      if (this.#watches.size > 0 && !this.#closed) this.#watchLoop = this.#runWatches()
    }
  }

  #changed (event: WatchEvent): void {
    if (this.#watches.size === 0 || this.#muted) return
    if (this.#events.length === 0) queueMicrotask(() => { this.#dispatch() })
    this.#events.push(event)
  }

  #dispatch (): void {
    const events = this.#events
    this.#events = []
    for (const event of events) {
      for (const w of [...this.#watches]) {
        if (!this.#watches.has(w)) continue
        if (event.type !== 'clear') {
          const key = event.key as Key
          if (w.bytes !== (typeof key !== 'string')) continue
          const k = typeof key === 'string' ? key : latin1(key)
          if (w.prefix ? !k.startsWith(w.key) : k !== w.key) continue
        }
        w.callback(event)
      }
    }
  }

  // ---- lifetime ----------------------------------------------------------

  get closed (): boolean {
    return this.#closed
  }

  /** Lets go of the file. Idempotent. */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    this.#watches.clear()
    this.#waitAbort?.abort()
    this.#unmap()
    dropped.unregister(this)
    fs.closeSync(this.#fd)
    this.#fd = -1
    this.#h = UNMAPPED
    this.#words = UNMAPPED
    this.#buf = EMPTY
  }

  [Symbol.dispose] (): void {
    this.close()
  }

  // ---- internals ---------------------------------------------------------

  #checkOpen (): void {
    if (this.#closed) throw new ShmChannelError('ERR_STORE_CLOSED', `the store ${this.path} is closed`)
  }

  #refresh (): void {
    this.#checkOpen()
    if (Atomics.load(this.#h, COMMIT) !== this.#applied) this.#catchUp()
  }

  /** Applies the records committed since this index last looked; follows the file when it was replaced. */
  #catchUp (): void {
    this.#checkOpen()
    for (;;) {
      const commit = Atomics.load(this.#h, COMMIT) >>> 0
      if (commit === this.#applied) return
      if (commit === 0 || Atomics.load(this.#h, RETIRED) !== 0) {
        // Replaced by compaction (or its header was wiped): open what is at the path now.
        this.#reattach()
        continue
      }
      let end = commit * COMMIT_UNIT
      if (end > this.#buf.length) this.#remap()
      const from = this.#applied * COMMIT_UNIT
      if (end > this.#buf.length) {
        this.#damage.push({ offset: this.#buf.length, length: end - this.#buf.length, reason: 'truncated' })
        end = this.#buf.length
      }
      if (end > from) scanRecords(this.#buf, from, end, (p) => { this.#apply(p) }, (d) => { this.#damage.push(d) })
      this.#applied = commit
      return
    }
  }

  /**
   * Applies the whole record at `p` to the index. `own`: the record as this
   * process just wrote it, whose key (and, for the utf8 codec, value) the
   * index takes as they are instead of decoding them from the file again.
   */
  #apply (p: number, own?: Prepared): void {
    const words = this.#words
    // The header as 32-bit little-endian words (see #append).
    const w = p >>> 2
    const head = words[w + 1]
    const kind = head & 0xff
    if (kind === KIND_CLEAR) {
      this.#strings.clear()
      this.#bytes.clear()
      this.#records = []
      this.#live = 0
      this.#expiring = 0
      this.#cachedBytes = 0
      this.#changed({ type: 'clear', key: undefined })
      return
    }
    const isBytes = ((head >>> 8) & FLAG_BYTES_KEY) !== 0
    const keyLength = head >>> 16
    const key = own?.name ?? this.#buf.toString(isBytes ? 'latin1' : 'utf8', p + RECORD_HEADER, p + RECORD_HEADER + keyLength)
    const map = isBytes ? this.#bytes : this.#strings
    const old = map.get(key)
    if (old !== undefined) {
      this.#live -= old.size
      if (old.expiry !== 0) this.#expiring--
      if (old.cached !== undefined) this.#cachedBytes -= old.valueLength
      this.#records[old.ordinal] = undefined
    }
    if (kind === KIND_SET) {
      const valueLength = words[w + 2] >>> 0
      // Updated in place: one lookup, no allocation. Nothing holds an entry across a call.
      const entry: Entry = old ?? { offset: 0, size: 0, valueStart: 0, valueLength: 0, codec: 0, expiry: 0, sequence: 0, cached: undefined, key, bytes: isBytes, ordinal: 0 }
      entry.offset = p
      entry.size = recordSize(keyLength, valueLength)
      entry.valueStart = p + RECORD_HEADER + keyLength
      entry.valueLength = valueLength
      entry.codec = words[w + 3] & 0xff
      entry.expiry = loadU64(words, w + 6)
      entry.sequence = loadU64(words, w + 4)
      entry.cached = undefined
      entry.ordinal = this.#records.length
      this.#records.push(entry)
      if (old === undefined) map.set(key, entry)
      this.#live += entry.size
      if (entry.expiry !== 0) this.#expiring++
    } else {
      map.delete(key)
    }
    if (this.#watches.size > 0) this.#changed({ type: kind === KIND_SET ? 'set' : 'delete', key: isBytes ? Buffer.from(key, 'latin1') : key })
  }

  /** Keeps `value`, the decoded value of `entry`, while the cache has room. */
  #cache (entry: Entry, value: string): void {
    if (this.#cachedBytes + entry.valueLength > this.#settings.cacheSize) return
    entry.cached = value
    this.#cachedBytes += entry.valueLength
  }

  #prepareSet (key: Key, value: T, ttl: number | undefined, codecOption: Codec<any> | CodecName | undefined): Prepared {
    const length = keyLength(key)
    const codec = codecOption === undefined ? this.#settings.codec : resolveCodec(codecOption)
    const encoded = codec.encode(value as never)
    let valueLength: number
    // A string's UTF-8 is at most 3 bytes per unit: below 2 GiB for any string V8 can hold (2^29 units).
    if (typeof encoded === 'string') valueLength = UNMEASURED
    else if (encoded instanceof Uint8Array) valueLength = encoded.length
    else throw invalidType('the encoded value', 'a Uint8Array or a string', encoded)
    if (valueLength > 0x7fffffff) throw outOfRange('value', 'at most 2 GiB once encoded', valueLength)
    const tag = codecOption === undefined ? this.#codecTag : codecTag(codec as Codec<unknown>)
    return { kind: KIND_SET, flags: typeof key !== 'string' ? FLAG_BYTES_KEY : 0, name: indexName(key), key, keyLength: length, value: encoded, valueLength, codec: tag, expiry: ttl === undefined ? 0 : checkTtl(ttl) }
  }

  /**
   * Takes the writer lock of the current file, brings the index up to date,
   * runs `work`, releases. Follows the file if compaction replaced it.
   */
  #locked (work: () => Outcome): void {
    this.#checkOpen()
    for (;;) {
      const h = this.#h
      const how = acquire(h)
      this.#held = h
      let replaced = Atomics.load(h, RETIRED) !== 0
      if (!replaced && how === 'recovered') replaced = this.#finishDeadCompaction(h)
      if (replaced) {
        release(h)
        this.#held = undefined
        this.#reattach()
        continue
      }
      try {
        this.#catchUp()
        // Another file now (its header was wiped and rebuilt meanwhile): take that one's lock.
        if (this.#held !== this.#h) continue
        const outcome = work()
        if (outcome === 'moved') continue
        if (outcome === 'wrote') this.#maybeCompact()
      } finally {
        release(this.#held as Int32Array)
        this.#held = undefined
        if (this.#retired !== undefined) {
          this.#unmap(this.#retired)
          this.#retired = undefined
        }
      }
      return
    }
  }

  /**
   * A writer that took the lock from a dead holder: if that holder was a
   * compaction that renamed its new file in but died before retiring this
   * one, retire it now (true).
   */
  #finishDeadCompaction (h: Int32Array): boolean {
    let current: fs.Stats
    try {
      current = fs.statSync(this.path)
    } catch {
      return false
    }
    const mine = fs.fstatSync(this.#fd)
    if (current.ino === mine.ino && current.dev === mine.dev) return false
    Atomics.store(h, RETIRED, 1)
    Atomics.store(h, COMMIT, 0)
    futexWake(h, COMMIT)
    return true
  }

  #write (ops: Prepared[], late?: () => Prepared[]): void {
    this.#locked(() => {
      const records = late === undefined ? ops : late()
      if (records.length === 0) return 'nothing'
      return this.#append(records)
    })
  }

  /**
   * Appends `records` as one commit. Holds the lock; the index is up to
   * date. 'moved': the file was full and compacted instead of grown; write
   * again in the new one.
   */
  #append (records: Prepared[]): Outcome {
    const start = this.#applied * COMMIT_UNIT
    let end = start
    for (const r of records) end += maxRecordSize(r)
    if (end > this.#buf.length) {
      // Near the end of the file: the exact sizes decide whether it must grow.
      end = start
      for (const r of records) {
        measure(r)
        end += recordSize(r.keyLength, r.valueLength)
      }
      if (end > this.#buf.length) {
        if (this.#compactWhenFull()) return 'moved'
        this.#grow(end)
      }
    }
    if (end > this.#prefaulted) this.#prefault(start, end)
    // After growing: the views of the new mapping.
    const h = this.#h
    const buf = this.#buf
    const words = this.#words
    let sequence = loadU64(h, SEQUENCE)
    let p = start
    for (let i = 0; i < records.length; i++) {
      const r = records[i]
      // Key, then value, each written straight from the caller's string or bytes; a string's length is what the write took.
      const k = p + RECORD_HEADER
      if (typeof r.key === 'string') r.keyLength = buf.write(r.key, k, 'utf8')
      else buf.set(r.key, k)
      const v = k + r.keyLength
      if (typeof r.value === 'string') r.valueLength = buf.write(r.value, v, 'utf8')
      else if (r.value !== undefined) buf.set(r.value, v)
      const valueEnd = v + r.valueLength
      const next = p + recordSize(r.keyLength, r.valueLength)
      // Zero the padding: a writer that died here may have left other bytes.
      for (let q = valueEnd; q < next; q++) buf[q] = 0
      // The header as 32-bit little-endian words (records start on 8-byte boundaries; see layout.ts).
      const w = p >>> 2
      words[w + 1] = r.kind | ((r.flags | (i < records.length - 1 ? FLAG_MORE : 0)) << 8) | (r.keyLength << 16)
      words[w + 2] = r.valueLength
      words[w + 3] = r.codec
      storeU64(words, w + 4, sequence++)
      storeU64(words, w + 6, r.expiry)
      words[w] = crc32c(buf, p + 4, valueEnd)
      p = next
    }
    end = p
    storeU64(h, SEQUENCE, sequence)
    // The commit: sequentially consistent, so a reader that loads the new
    // word sees every record byte written above. Before it, nothing of this
    // write is visible; after it, all of it.
    Atomics.store(h, COMMIT, end / COMMIT_UNIT)
    if (Atomics.load(h, WATCHERS) > 0) futexWake(h, COMMIT)
    if (this.#settings.durable) fs.fsyncSync(this.#fd)
    // Our own records, into our index directly: they were whole when we wrote them (no second CRC), and we know their keys.
    p = start
    for (const r of records) {
      this.#apply(p, r)
      p += recordSize(r.keyLength, r.valueLength)
    }
    this.#applied = end / COMMIT_UNIT
    return 'wrote'
  }

  /** Fills [max(start, what is filled), end + PREFAULT) with zeros through the fd, within the file; `start` is the committed end. */
  #prefault (start: number, end: number): void {
    const from = Math.max(start, this.#prefaulted)
    const to = Math.min(this.#buf.length, Math.ceil((end + PREFAULT) / PAGE) * PAGE)
    let p = from
    while (p < to) p += fs.writeSync(this.#fd, ZEROS, 0, Math.min(PREFAULT, to - p), p)
    this.#prefaulted = to
  }

  /** Makes the file at least `needed` bytes: reserved with posix_fallocate before any byte is written there (ENOSPC is thrown, never SIGBUS). */
  #grow (needed: number): void {
    if (needed > MAX_FILE_SIZE) throw new ShmChannelError('ERR_STORE_FULL', `the store ${this.path} would pass ${MAX_FILE_SIZE} bytes`)
    const size = fs.fstatSync(this.#fd).size
    if (size < needed) {
      const exact = Math.ceil(needed / PAGE) * PAGE
      const doubled = Math.min(MAX_FILE_SIZE, Math.ceil(Math.max(needed, size * 2) / PAGE) * PAGE)
      try {
        binding.allocate(this.#fd, doubled, this.path)
      } catch (err) {
        // No room to double: what this write needs may still fit.
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC' || doubled === exact) throw err
        binding.allocate(this.#fd, exact, this.path)
      }
    }
    this.#remap()
  }

  /**
   * A full file with at least FULL_GARBAGE of its records garbage is
   * compacted rather than grown (true: compacted), so under steady
   * overwrites it stays at 1.5x its live records instead of doubling.
   * Growing is the fallback if compaction fails.
   */
  #compactWhenFull (): boolean {
    const used = this.#applied * COMMIT_UNIT - DATA_START
    if (used < this.#settings.compactMinSize || used - this.#live < used * FULL_GARBAGE) return false
    try {
      this.#compactLocked(AUTOMATIC_HEADROOM)
      return true
    } catch (err) {
      process.emitWarning(`shm-channel store ${this.path}: compaction of a full file failed, growing it: ${(err as Error).message}`, { code: 'SHM_CHANNEL_STORE_COMPACTION' })
      return false
    }
  }

  /**
   * Compacts past the garbage ratio, after a write has committed: if it
   * fails (ENOSPC for the new file) the write still stands, so the failure
   * is a warning, and the next write tries again.
   */
  #maybeCompact (): void {
    const used = this.#applied * COMMIT_UNIT - DATA_START
    if (used < this.#settings.compactMinSize) return
    if (used - this.#live <= used * this.#settings.compactRatio) return
    try {
      this.#compactLocked(AUTOMATIC_HEADROOM)
    } catch (err) {
      process.emitWarning(`shm-channel store ${this.path}: automatic compaction failed: ${(err as Error).message}`, { code: 'SHM_CHANNEL_STORE_COMPACTION' })
    }
  }

  /**
   * Writes the live records to `<path>.compact`, renames it over the path,
   * then retires this file (RETIRED, commit word 0, wake): processes still
   * on it follow to the new one. Holds this file's lock throughout, so no
   * write lands here meanwhile. A crash before the rename leaves this file
   * as it was; after it, the next writer here finishes the retirement.
   */
  #compactLocked (headroom: number): void {
    const tmp = this.path + '.compact'
    fs.rmSync(tmp, { force: true })
    const now = this.#expiring > 0 ? Date.now() : 0
    const old = this.#records
    const source = this.#buf
    // #live counts every entry, expired ones too: an upper bound of what is copied.
    const size = Math.ceil(Math.max(this.#settings.initialSize, DATA_START + this.#live + this.#live * headroom) / PAGE) * PAGE
    const region = Region.createFile(tmp, size, { mode: this.#settings.mode })
    // Entries move to their new offsets as they are copied; the old ones are
    // kept to put them back if the new file does not make it.
    const kept: Entry[] = []
    const before = new Float64Array(old.length)
    const expired: Entry[] = []
    let fd = -1
    let live = 0
    let expiring = 0
    let end = DATA_START
    try {
      fd = fs.openSync(tmp, O_RDWR | O_NOFOLLOW)
      // Written through the descriptor, not the new mapping (see spool.ts);
      // live records that lie back to back are copied as one run.
      const spool = new Spool(fd, DATA_START, size)
      // A record of a batch (MORE set) stays one if the next record of the
      // old file, the next of its batch, is copied right after it: the
      // batch's chain then ends in the new file as in the old. The last
      // record of a run loses MORE (and gets a new CRC), in the staging
      // buffer if it is still there, else through the new mapping below.
      const unbatched: number[] = []
      let runStart = 0
      let runEnd = 0
      let lastMore = false
      let lastSize = 0
      const endRun = (): void => {
        spool.copy(source, runStart, runEnd)
        if (!lastMore) return
        const p = spool.position - lastSize
        const at = spool.stagedAt(p, lastSize)
        if (at >= 0) unbatch(spool.staged, at)
        else unbatched.push(p)
      }
      for (let i = 0; i < old.length; i++) {
        const entry = old[i]
        if (entry === undefined) continue
        if (entry.expiry !== 0) {
          if (entry.expiry <= now) {
            expired.push(entry)
            continue
          }
          expiring++
        }
        if (entry.offset !== runEnd) {
          endRun()
          runStart = entry.offset
        }
        runEnd = entry.offset + entry.size
        lastMore = (source[entry.offset + R_FLAGS] & FLAG_MORE) !== 0
        lastSize = entry.size
        const p = spool.position + (entry.offset - runStart)
        before[kept.length] = entry.offset
        entry.valueStart += p - entry.offset
        entry.offset = p
        entry.ordinal = kept.length
        kept.push(entry)
        live += entry.size
      }
      endRun()
      spool.flush()
      end = spool.position
      const out = Buffer.from(region.buffer)
      for (const p of unbatched) unbatch(out, p)
      const nh = new Int32Array(region.buffer, 0, HEADER_SIZE / 4)
      writeIdentity(nh, STORE_KIND)
      storeU64(nh, SEQUENCE, loadU64(this.#h, SEQUENCE))
      nh[COMMIT] = end / COMMIT_UNIT
      publishIdentity(nh, STORE_KIND)
      if (this.#settings.durable) fs.fsyncSync(fd)
      fs.renameSync(tmp, this.path)
    } catch (err) {
      for (let i = 0; i < kept.length; i++) {
        const entry = kept[i]
        entry.valueStart += before[i] - entry.offset
        entry.offset = before[i]
      }
      for (let i = 0; i < old.length; i++) {
        const entry = old[i]
        if (entry !== undefined) entry.ordinal = i
      }
      region.close()
      if (fd !== -1) fs.closeSync(fd)
      fs.rmSync(tmp, { force: true })
      throw err
    }
    const h = this.#h
    Atomics.store(h, RETIRED, 1)
    Atomics.store(h, COMMIT, 0)
    futexWake(h, COMMIT)
    // This process moves to the new file with its index as it is, the offsets
    // changed: it wrote the file, so it need not read it back (other processes do).
    // The old mapping stays until #locked has released the old file's lock through it.
    this.#retired = this.#region
    this.#region = undefined
    dropped.unregister(this)
    fs.closeSync(this.#fd)
    this.#fd = fd
    dropped.register(this, fd, this)
    this.#region = region
    this.#prefaulted = 0
    this.#buf = Buffer.from(region.buffer)
    this.#words = new Int32Array(region.buffer, 0, region.buffer.byteLength >>> 2)
    this.#h = new Int32Array(region.buffer, 0, HEADER_SIZE / 4)
    for (const entry of expired) {
      if (entry.cached !== undefined) this.#cachedBytes -= entry.valueLength
      ;(entry.bytes ? this.#bytes : this.#strings).delete(entry.key)
    }
    this.#records = kept
    this.#live = live
    this.#expiring = expiring
    this.#damage = []
    this.#applied = end / COMMIT_UNIT
    this.#waitAbort?.abort()
  }

  /** Maps the whole file again (it grew), through our fd: the same file even if the path was renamed over. */
  #remap (): void {
    const region = Region.openFile(fdPath(this.#fd), { followSymlinks: true })
    const held = this.#held !== undefined && this.#held === this.#h
    this.#unmap()
    this.#region = region
    this.#prefaulted = 0
    this.#buf = Buffer.from(region.buffer)
    this.#words = new Int32Array(region.buffer, 0, region.buffer.byteLength >>> 2)
    this.#h = new Int32Array(region.buffer, 0, HEADER_SIZE / 4)
    if (held) this.#held = this.#h
    this.#waitAbort?.abort()
  }

  #unmap (old = this.#region): void {
    if (old === this.#region) this.#region = undefined
    if (old === undefined) return
    // A watch may still sleep on the old mapping: unmap once it is back.
    if (this.#pendingWait !== undefined) void this.#pendingWait.finally(() => { old.close() })
    else old.close()
  }

  /** Leaves the current file and opens what is at the path now, with a fresh index; watchers hear of what differs. */
  #reattach (): void {
    const before = new Map<string, Entry>()
    if (this.#watches.size > 0) {
      for (const [k, e] of this.#strings) before.set('s' + k, e)
      for (const [k, e] of this.#bytes) before.set('b' + k, e)
    }
    const watching = this.#watches
    // Under the lock of the file left (#locked): its mapping stays until the release.
    if (this.#held !== undefined && this.#held === this.#h) this.#retired = this.#region
    else this.#unmap()
    this.#region = undefined
    this.#h = UNMAPPED
    fs.closeSync(this.#fd)
    dropped.unregister(this)
    this.#fd = -1
    this.#strings.clear()
    this.#bytes.clear()
    this.#records = []
    this.#live = 0
    this.#expiring = 0
    this.#cachedBytes = 0
    this.#applied = 0
    this.#damage = []
    this.#muted = true
    try {
      this.#attach(true)
    } finally {
      this.#muted = false
    }
    this.#waitAbort?.abort()
    if (watching.size === 0) return
    const after = new Map<string, Entry>()
    for (const [k, e] of this.#strings) after.set('s' + k, e)
    for (const [k, e] of this.#bytes) after.set('b' + k, e)
    const toKey = (k: string): Key => k[0] === 's' ? k.slice(1) : Buffer.from(k.slice(1), 'latin1')
    for (const [k, e] of after) if (before.get(k)?.sequence !== e.sequence) this.#changed({ type: 'set', key: toKey(k) })
    for (const k of before.keys()) if (!after.has(k)) this.#changed({ type: 'delete', key: toKey(k) })
  }

  /** Opens (or creates) the file at the path and builds the index from its records. */
  #attach (quiet = false): void {
    const { mode, initialSize, openTimeout, allowForeignOwner } = this.#settings
    let fd: number
    let created = false
    try {
      fd = fs.openSync(this.path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, mode)
      created = true
      try {
        binding.allocate(fd, initialSize, this.path)
      } catch (err) {
        fs.closeSync(fd)
        fs.rmSync(this.path, { force: true })
        throw err
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      fd = fs.openSync(this.path, O_RDWR | O_NOFOLLOW)
    }
    this.#fd = fd
    dropped.register(this, fd, this)
    try {
      const st = fs.fstatSync(fd)
      checkOwnerOf(this.path, st.uid, allowForeignOwner)
      if (!created) this.#awaitSized(openTimeout)
      this.#remap()
      const h = this.#h
      if (created) {
        writeIdentity(h, STORE_KIND)
        storeU64(h, SEQUENCE, 1)
        h[COMMIT] = DATA_START / COMMIT_UNIT
        publishIdentity(h, STORE_KIND)
      } else {
        this.#awaitHeader(openTimeout)
      }
      this.#applied = DATA_START / COMMIT_UNIT
      this.#catchUp()
      if (!quiet && this.#damage.length > 0) process.emitWarning(`shm-channel store ${this.path}: ${this.#damage.length} damaged stretch(es) skipped; see store.verify()`, { code: 'SHM_CHANNEL_STORE_DAMAGE' })
    } catch (err) {
      this.#unmap()
      dropped.unregister(this)
      fs.closeSync(fd)
      this.#fd = -1
      throw err
    }
  }

  /** A file still too small for a header: its creator is sizing it, or died before: size it ourselves. */
  #awaitSized (timeout: number): void {
    const deadline = performance.now() + timeout
    while (fs.fstatSync(this.#fd).size < HEADER_SIZE) {
      if (performance.now() >= deadline) {
        binding.allocate(this.#fd, this.#settings.initialSize, this.path)
        return
      }
      sleepSync(1)
    }
  }

  /** Waits for the magic; rebuilds a header that stays zero (a creator that died, or a wiped header) from the records. */
  #awaitHeader (timeout: number): void {
    const deadline = performance.now() + timeout
    for (;;) {
      const magic = Atomics.load(this.#h, 0) >>> 0
      if (magic === REPAIR_MAGIC) {
        if (performance.now() >= deadline) throw new ShmChannelError('ERR_TIMEOUT', `the store ${this.path} is being repaired by another process, still after ${timeout} ms`)
      } else if (checkIdentity(this.#h.buffer as SharedArrayBuffer, STORE_KIND) &&
        (Atomics.load(this.#h, COMMIT) !== 0 || Atomics.load(this.#h, RETIRED) !== 0)) {
        return
      } else if (performance.now() >= deadline) {
        // No magic, or a commit word wiped to 0 in a file never retired: one process rebuilds the header.
        if (Atomics.compareExchange(this.#h, 0, magic | 0, REPAIR_MAGIC | 0) === (magic | 0)) {
          this.#rebuildHeader()
          return
        }
      }
      sleepSync(1)
    }
  }

  /** Writes a fresh header whose committed end follows the last whole record. Only the process that won REPAIR_MAGIC runs it. */
  #rebuildHeader (): void {
    const h = this.#h
    const buf = this.#buf
    let end = DATA_START
    let sequence = 1
    scanRecords(buf, DATA_START, buf.length, (p) => {
      end = Math.max(end, p + recordSize(buf.readUInt16LE(p + R_KEY_LENGTH), buf.readUInt32LE(p + R_VALUE_LENGTH)))
      sequence = Math.max(sequence, readU64(buf, p + R_SEQUENCE) + 1)
    }, () => {})
    // Every field but the magic (which we hold), the lock slot included: its holder's pid was wiped with the rest.
    for (let i = 1; i < HEADER_SIZE / 4; i++) h[i] = 0
    writeIdentity(h, STORE_KIND)
    storeU64(h, SEQUENCE, sequence)
    h[COMMIT] = end / COMMIT_UNIT
    Atomics.store(h, 0, STORE_MAGIC)
  }
}

function describeKey (key: Key): string {
  return typeof key === 'string' ? JSON.stringify(key) : `<${Buffer.from(key).toString('hex')}>`
}
