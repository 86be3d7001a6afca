/**
 * Channels seen from outside: what the header of a segment says, read
 * through a read-only mapping without taking an end. The `shm-channel`
 * command (lib/tools/cli.ts) is built on this; nothing here writes a byte of a
 * segment (a write through a read-only mapping would kill the process).
 *
 * Every value is a snapshot: the two ends keep writing their own lines while
 * it is taken, so fields of different lines may be a moment apart. Counters
 * are single-writer u64s written as two u32s, read here until two reads agree.
 */
import fs from 'node:fs'
import path from 'node:path'

import { ShmChannelError } from '../errors'
import { isAlive, isRunning } from '../platform/liveness'
import { Region, checkName } from '../platform/region'
import { endLive, readEnd, takeoverCount, type EndInfo } from '../segment/ends'
import { loadU64 } from '../segment/words'
import * as L from '../channel/layout'
import { checkSegment } from '../channel/segment'

/** Where Linux shows POSIX shared memory objects. */
export const SHM_DIR = '/dev/shm'

/**
 * What an end's slot says about its holder:
 * - `free`: never taken;
 * - `alive`: open, and its process runs (same pid and start time);
 * - `dead`: open (or half-taken) by a process that is gone;
 * - `closed`: its holder closed it;
 * - `claiming`: a live process is taking it (or taking it over) at this instant;
 * - `unknown`: a state word this version does not know.
 */
export type EndStatus = 'free' | 'alive' | 'dead' | 'closed' | 'claiming' | 'unknown'

export interface EndSnapshot extends EndInfo {
  status: EndStatus
}

/** Everything a channel's header holds, plus where it lives. */
export interface ChannelSnapshot {
  /** The name without its leading slash, as it appears in /dev/shm. */
  name: string
  /** Size of the shared memory object in bytes (header + capacity). */
  size: number
  /** Protocol version, "major.minor". */
  version: string
  headerSize: number
  capacity: number
  flags: number
  producerPosition: number
  consumerPosition: number
  /** Bytes published and not yet released: (producer − consumer) mod 2^32. */
  used: number
  /** used / capacity, as a percentage rounded to 0.01. */
  usedPercent: number
  messagesSent: number
  bytesSent: number
  messagesReceived: number
  bytesReceived: number
  timesFull: number
  /** Wake-ups the producer sent to a parked consumer. */
  wakeupsToConsumer: number
  /** Wake-ups the consumer sent to a parked producer. */
  wakeupsToProducer: number
  consumerParked: boolean
  producerParked: boolean
  producer: EndSnapshot
  consumer: EndSnapshot
  /** Times a new process took over each end from a dead holder (protocol 1.1; 0 in 1.0 segments). */
  producerTakeovers: number
  consumerTakeovers: number
  /** When the last takeover of each end happened (ISO 8601), null if none. */
  lastProducerTakeover: string | null
  lastConsumerTakeover: string | null
  /** Messages delivered again by consumer takeovers (read, never released, by a consumer that died). */
  redelivered: number
}

/** What a shared memory object turned out to be. */
export type Probe =
  | { kind: 'channel', channel: ChannelSnapshot }
  /** Not a shm-channel segment at all (other magic, too small, not a regular file). */
  | { kind: 'foreign', reason: string }
  /** All zero where the magic goes: a channel still being created, or some other object. */
  | { kind: 'uninitialised', reason: string }
  /** A shm-channel segment of a protocol major version this one cannot read. */
  | { kind: 'unsupported', version: string, reason: string }
  /** shm-channel's magic and version, but a header that breaks the protocol. */
  | { kind: 'invalid', reason: string }

/** What is still worth reporting about an object `probe` could not read. */
export interface Skipped {
  name: string
  reason: string
  code?: string
}

/**
 * Reads the shared memory object `name` (with or without its slash).
 * Failing system calls throw as `fs` does (`ENOENT`, `EACCES`); the object
 * is mapped read-only and unmapped before this returns.
 */
export function probe (name: string): Probe {
  const shmName = checkName(name)
  const bare = shmName.slice(1)
  // Look before mapping where the object shows as a file: a tiny object is
  // no channel (and mapping one that is still being sized would wait for its
  // creator), and opening a FIFO or device someone put there could block.
  const st = lstatShm(bare)
  if (st !== undefined) {
    if (!st.isFile()) return { kind: 'foreign', reason: 'not a regular shared memory object' }
    if (st.size < L.HEADER_SIZE) return { kind: 'foreign', reason: `${st.size} bytes, smaller than a channel header (${L.HEADER_SIZE})` }
  }
  let region: Region
  try {
    region = Region.open(shmName, { readOnly: true })
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_REGION_TOO_SMALL') return { kind: 'foreign', reason: 'empty' }
    throw err
  }
  try {
    return read(bare, region.buffer)
  } finally {
    region.close()
  }
}

/** Reads a segment's header from `buffer` (any mapping of it, read-only is enough). */
export function read (name: string, buffer: SharedArrayBuffer): Probe {
  if (buffer.byteLength < L.HEADER_SIZE) return { kind: 'foreign', reason: `${buffer.byteLength} bytes, smaller than a channel header (${L.HEADER_SIZE})` }
  const h = new Int32Array(buffer, 0, L.HEADER_SIZE / 4)
  const magic = Atomics.load(h, L.word(L.MAGIC_OFFSET)) >>> 0
  if (magic === 0) return { kind: 'uninitialised', reason: 'no header yet (a channel still being created, or not a channel)' }
  if (magic !== L.MAGIC) return { kind: 'foreign', reason: `magic is 0x${magic.toString(16).padStart(8, '0')}, not shm-channel's 0x${L.MAGIC.toString(16)}` }
  const versionWord = h[L.word(L.VERSION_OFFSET)] >>> 0
  const version = `${versionWord >>> 16}.${versionWord & 0xffff}`
  if (versionWord >>> 16 !== L.VERSION_MAJOR) {
    return { kind: 'unsupported', version, reason: `protocol version ${version} is not supported (this shm-channel reads ${L.VERSION_MAJOR}.x)` }
  }
  try {
    checkSegment(buffer)
  } catch (err) {
    if (err instanceof ShmChannelError && err.code === 'ERR_INVALID_SEGMENT') return { kind: 'invalid', reason: err.message }
    throw err
  }
  const capacity = h[L.word(L.CAPACITY_OFFSET)] >>> 0
  // Positions last, consumer before producer: the producer only moves ahead,
  // so the difference never comes out negative (it may be a moment stale).
  const consumerPosition = Atomics.load(h, L.word(L.CONSUMER_POSITION_OFFSET)) >>> 0
  const producerPosition = Atomics.load(h, L.word(L.PRODUCER_POSITION_OFFSET)) >>> 0
  const used = Math.min((producerPosition - consumerPosition) >>> 0, capacity)
  const producer = readEnd(h, L.PRODUCER_END_OFFSET)
  const consumer = readEnd(h, L.CONSUMER_END_OFFSET)
  return {
    kind: 'channel',
    channel: {
      name,
      size: buffer.byteLength,
      version,
      headerSize: h[L.word(L.HEADER_SIZE_OFFSET)] >>> 0,
      capacity,
      flags: h[L.word(L.FLAGS_OFFSET)] >>> 0,
      producerPosition,
      consumerPosition,
      used,
      usedPercent: Math.round(used / capacity * 10000) / 100,
      messagesSent: stableU64(h, L.MESSAGES_SENT_OFFSET),
      bytesSent: stableU64(h, L.BYTES_SENT_OFFSET),
      messagesReceived: stableU64(h, L.MESSAGES_RECEIVED_OFFSET),
      bytesReceived: stableU64(h, L.BYTES_RECEIVED_OFFSET),
      timesFull: h[L.word(L.TIMES_FULL_OFFSET)] >>> 0,
      wakeupsToConsumer: h[L.word(L.CONSUMER_WAKEUPS_OFFSET)] >>> 0,
      wakeupsToProducer: h[L.word(L.PRODUCER_WAKEUPS_OFFSET)] >>> 0,
      consumerParked: Atomics.load(h, L.word(L.CONSUMER_PARKED_OFFSET)) !== 0,
      producerParked: Atomics.load(h, L.word(L.PRODUCER_PARKED_OFFSET)) !== 0,
      producer: { ...producer, status: endStatus(producer) },
      consumer: { ...consumer, status: endStatus(consumer) },
      producerTakeovers: takeoverCount(h, L.PRODUCER_TAKEOVERS_OFFSET),
      consumerTakeovers: takeoverCount(h, L.CONSUMER_TAKEOVERS_OFFSET),
      lastProducerTakeover: when(stableU64(h, L.PRODUCER_TAKEOVER_TIME_OFFSET)),
      lastConsumerTakeover: when(stableU64(h, L.CONSUMER_TAKEOVER_TIME_OFFSET)),
      redelivered: stableU64(h, L.REDELIVERED_OFFSET)
    }
  }
}

/** A takeover time (ms since the epoch, 0 for none) as ISO 8601. */
function when (ms: number): string | null {
  return ms === 0 ? null : new Date(ms).toISOString()
}

/** A u64 counter its single writer may be updating: read until two reads agree (a few tries; the writer stores both halves back to back). */
function stableU64 (h: Int32Array, byteOffset: number): number {
  let value = loadU64(h, L.word(byteOffset))
  for (let i = 0; i < 4; i++) {
    const again = loadU64(h, L.word(byteOffset))
    if (again === value) break
    value = again
  }
  return value
}

/** Classifies an end's slot; see `EndStatus`. */
export function endStatus (end: EndInfo): EndStatus {
  switch (end.state) {
    case L.END_FREE:
      // claimEnd sets the pid first and the state last: a pid without a
      // state is a claim in progress, or one whose taker died half way.
      if (end.pid === 0) return 'free'
      return isAlive(end.pid, 0) ? 'claiming' : 'dead'
    case L.END_OPEN:
      return endLive(end) ? 'alive' : 'dead'
    case L.END_CLOSED:
      return 'closed'
    case L.END_CLAIMING:
      // A new process is taking the end over from a dead holder (lib/segment/ends.ts).
      return isRunning(end.pid) ? 'claiming' : 'dead'
    default:
      return 'unknown'
  }
}

/** Ends in these states hold nothing: a channel with no other end may be removed. */
const GONE: ReadonlySet<EndStatus> = new Set(['free', 'dead', 'closed'])

/**
 * How long a channel with both ends free is left alone: the creator writes
 * the header and takes its end within one call, so only a creator that died
 * in between leaves one that old (the same bound as `openTimeout`'s default).
 */
export const UNCLAIMED_GRACE_MS = 5000

/**
 * Whether a channel may be removed: no end is alive or being taken. A
 * channel whose ends are both still free is spared while it is younger than
 * UNCLAIMED_GRACE_MS (`ageMs`): its creator is taking its end right now.
 */
export function collectable (channel: ChannelSnapshot, ageMs: number): boolean {
  if (!GONE.has(channel.producer.status) || !GONE.has(channel.consumer.status)) return false
  if (channel.producer.status === 'free' && channel.consumer.status === 'free') return ageMs >= UNCLAIMED_GRACE_MS
  return true
}

export interface Listing {
  /** Channels, sorted by name. */
  channels: ChannelSnapshot[]
  /** Objects that could not be read (permission denied, I/O errors); foreign ones are not reported. */
  unreadable: Skipped[]
}

/**
 * Every shm-channel segment in SHM_DIR whose name starts with `prefix`.
 * Foreign objects, objects still being created, tiny ones and those that
 * vanish while being read are skipped; unreadable ones are listed as such.
 * Throws only if SHM_DIR itself cannot be read.
 */
export function listChannels (prefix = ''): Listing {
  const listing: Listing = { channels: [], unreadable: [] }
  const entries = fs.readdirSync(SHM_DIR, { withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.startsWith(prefix))
    .map((entry) => entry.name)
    .sort()
  for (const name of entries) {
    let result: Probe
    try {
      result = probe(name)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT') continue // removed since the directory was read
      listing.unreadable.push({ name, code, reason: code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (err as Error).message })
      continue
    }
    if (result.kind === 'channel') listing.channels.push(result.channel)
  }
  return listing
}

/**
 * Milliseconds since the object's file last changed (its creation, for a
 * channel nobody has taken an end of); Infinity where there is no file.
 */
export function ageOf (bare: string): number {
  const st = lstatShm(bare)
  return st === undefined ? Infinity : Date.now() - Math.max(st.mtimeMs, st.ctimeMs)
}

/** The object's file in SHM_DIR, undefined where there is none (gone, or no such directory on this system). */
export function lstatShm (bare: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(path.join(SHM_DIR, bare))
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined
    throw err
  }
}
