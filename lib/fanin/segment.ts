/**
 * A fan-in's segment as a whole: its identity, a fresh header, the check an
 * opener makes before it trusts a header another process wrote, and who
 * holds which end (the consumer's slot, and one table entry per producer).
 */
import { ShmChannelError } from '../errors'
import { checkTimeout } from '../options'
import type { Region } from '../platform/region'
import { createOrAttach, unlinkQuietly, type JoinVerdict, type SegmentKind } from '../segment/attach'
import { claimEnd, endLive, endUsedUp, readEnd, END_FREE } from '../segment/ends'
import { freeUsedUpEnd } from '../segment/reuse'
import { invalidSegment, type SegmentIdentity } from '../segment/identity'
import { storeU64, word } from '../segment/words'
import { checkCapacity } from '../channel/options'
import { checkInteger } from '../options'
import * as L from './layout'

export const FANIN: SegmentIdentity = {
  kind: 'fan-in',
  magic: L.MAGIC,
  major: L.VERSION_MAJOR,
  minor: L.VERSION_MINOR,
  headerSize: L.HEADER_SIZE
}

export type FanInRole = 'producer' | 'consumer'

export interface FanInSegmentOptions {
  /** Ring size in bytes when this call creates the fan-in: a power of two from 4096 to 2^30. Default 1 MiB. */
  capacity?: number
  /** Producer table size when this call creates the fan-in: 1 to 1024. Default 16. */
  maxProducers?: number
  /** Permission bits when this call creates the fan-in. Default 0o600. */
  mode?: number
  /** How long to wait for a creator to finish the header, in milliseconds. Default 5000. */
  openTimeout?: number
  /** Join a fan-in whose shared memory object another user owns. Default false: ERR_FOREIGN_OWNER. */
  allowForeignOwner?: boolean
}

/** A checked header: what every end needs to address the segment. */
export interface Geometry {
  capacity: number
  maxProducers: number
  ringOffset: number
}

/** Validates a header against the buffer holding it (ERR_INVALID_SEGMENT). */
export function checkFanIn (buffer: SharedArrayBuffer): Geometry {
  const h = new Int32Array(buffer, 0, L.HEADER_SIZE / 4)
  const capacity = h[word(L.CAPACITY_OFFSET)] >>> 0
  if (capacity < 4096 || capacity > 2 ** 30 || (capacity & (capacity - 1)) !== 0) {
    throw invalidSegment(FANIN, `capacity ${capacity} is not a power of two from 4096 to 2^30`)
  }
  const maxProducers = h[word(L.MAX_PRODUCERS_OFFSET)] >>> 0
  if (maxProducers < 1 || maxProducers > L.MAX_MAX_PRODUCERS) {
    throw invalidSegment(FANIN, `max producers ${maxProducers} is not from 1 to ${L.MAX_MAX_PRODUCERS}`)
  }
  if (L.segmentSize(capacity, maxProducers) > buffer.byteLength) {
    throw invalidSegment(FANIN, `capacity ${capacity} and ${maxProducers} producers do not fit in ${buffer.byteLength} bytes`)
  }
  const tail = h[word(L.TAIL_OFFSET)]
  const head = h[word(L.HEAD_OFFSET)]
  if (((tail | head) & (L.RECORD_ALIGNMENT - 1)) !== 0) throw invalidSegment(FANIN, `positions ${tail >>> 0} (tail) and ${head >>> 0} (head) are not multiples of 8`)
  if (((tail - head) >>> 0) > capacity) throw invalidSegment(FANIN, `tail is ${(tail - head) >>> 0} bytes ahead of the head in a ${capacity}-byte ring`)
  return { capacity, maxProducers, ringOffset: L.ringOffset(maxProducers) }
}

/** Any producer live, or (with `consumer`) the consumer. */
function anyoneLive (h: Int32Array, maxProducers: number, consumer: boolean): boolean {
  if (consumer && endLive(readEnd(h, L.CONSUMER_END_OFFSET))) return true
  for (let i = 0; i < maxProducers; i++) {
    if (endLive(readEnd(h, L.producerEntryOffset(i)))) return true
  }
  return false
}

/**
 * Frees the entry of a closed producer, or of a dead one whose claim is
 * settled (none, or one outside [head, tail): committed or skipped), so a
 * newcomer may take it (lib/segment/reuse.ts).
 */
export function freeIfDead (h: Int32Array, index: number): boolean {
  const entry = L.producerEntryOffset(index)
  const settled = (): boolean => {
    if (Atomics.load(h, word(entry + L.CLAIM_LENGTH)) === 0) return true
    const start = Atomics.load(h, word(entry + L.CLAIM_START))
    const head = Atomics.load(h, word(L.HEAD_OFFSET))
    const tail = Atomics.load(h, word(L.TAIL_OFFSET))
    // In flight: the consumer skips it first.
    return ((start - head) >>> 0) >= ((tail - head) >>> 0)
  }
  return freeUsedUpEnd(h, entry, settled, () => {
    Atomics.store(h, word(entry + L.CLAIM_LENGTH), 0)
    storeU64(h, word(entry + L.MESSAGES_SENT), 0)
  })
}

function fanInKind (role: FanInRole, capacity: number, maxProducers: number, took: (index: number) => void): SegmentKind {
  return {
    ...FANIN,
    init (buffer) {
      const h = new Int32Array(buffer)
      h[word(L.CAPACITY_OFFSET)] = capacity
      h[word(L.MAX_PRODUCERS_OFFSET)] = maxProducers
      if (role === 'consumer') claimEnd(h, L.CONSUMER_END_OFFSET)
      else claimEnd(h, L.producerEntryOffset(0))
      took(0)
    },
    check (buffer) { checkFanIn(buffer) },
    join (buffer, label): JoinVerdict {
      const h = new Int32Array(buffer)
      const { maxProducers: max } = checkFanIn(buffer)
      const consumer = readEnd(h, L.CONSUMER_END_OFFSET)
      if (role === 'consumer') {
        if (consumer.state === END_FREE) {
          if (consumer.pid !== 0) return 'retry'
          return claimEnd(h, L.CONSUMER_END_OFFSET) ? 'joined' : 'retry'
        }
        if (endLive(consumer)) throw new ShmChannelError('ERR_END_TAKEN', `fan-in ${label} already has a live consumer (pid ${consumer.pid})`)
        return 'stale'
      }
      // A producer does not join a fan-in whose consumer is gone: nobody would read it.
      if (endUsedUp(consumer)) return 'stale'
      for (let i = 0; i < max; i++) {
        const entry = L.producerEntryOffset(i)
        const end = readEnd(h, entry)
        const free = (end.state === END_FREE && end.pid === 0) || freeIfDead(h, i)
        if (free && claimEnd(h, entry)) {
          took(i)
          return 'joined'
        }
      }
      throw new ShmChannelError('ERR_TOO_MANY_ENDS', `fan-in ${label} already has its maximum of ${max} producers (the maxProducers its creator set)`)
    }
  }
}

/** Opens (joins or creates) the fan-in `name` as `role`; returns the region and the producer table index taken. */
export function openFanIn (name: string, role: FanInRole, options: FanInSegmentOptions): { region: Region, index: number } {
  const capacity = checkCapacity(options.capacity ?? 1 << 20)
  const maxProducers = checkInteger('maxProducers', options.maxProducers ?? L.DEFAULT_MAX_PRODUCERS, 1, L.MAX_MAX_PRODUCERS)
  const openTimeout = checkTimeout('openTimeout', options.openTimeout ?? 5000)
  let index = -1
  const { region } = createOrAttach(name, fanInKind(role, capacity, maxProducers, (i) => { index = i }), {
    size: L.segmentSize(capacity, maxProducers),
    mode: options.mode,
    openTimeout,
    allowForeignOwner: options.allowForeignOwner
  })
  return { region, index }
}

/** After an end closed: the name goes once no end is live any more. */
export function unlinkIfLast (region: Region, h: Int32Array, maxProducers: number): void {
  if (!anyoneLive(h, maxProducers, true)) unlinkQuietly(region)
}
