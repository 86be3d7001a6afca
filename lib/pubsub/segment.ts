/**
 * A topic's segment as a whole: its identity, a fresh header, the check an
 * opener makes before it trusts a header another process wrote, and who
 * holds which end (the publisher's slot, one table entry per subscriber).
 */
import { ShmChannelError, invalidValue } from '../errors'
import { checkCapacity } from '../channel/options'
import { checkInteger, checkTimeout } from '../options'
import type { Region } from '../platform/region'
import { createOrAttach, unlinkQuietly, type JoinVerdict, type SegmentKind } from '../segment/attach'
import { claimEnd, endLive, endUsedUp, readEnd, END_FREE } from '../segment/ends'
import { invalidSegment, type SegmentIdentity } from '../segment/identity'
import { freeUsedUpEnd } from '../segment/reuse'
import { storeU64, word } from '../segment/words'
import * as L from './layout'

export const TOPIC: SegmentIdentity = {
  kind: 'topic',
  magic: L.MAGIC,
  major: L.VERSION_MAJOR,
  minor: L.VERSION_MINOR,
  headerSize: L.HEADER_SIZE
}

export type TopicPolicy = 'block' | 'overwrite'
export type TopicRole = 'publisher' | 'subscriber'

export interface TopicSegmentOptions {
  /** Ring size in bytes when this call creates the topic: a power of two from 4096 to 2^30. Default 1 MiB. */
  capacity?: number
  /** Subscriber table size when this call creates the topic: 1 to 1024. Default 16. */
  maxSubscribers?: number
  /** What the publisher does about a slow subscriber, when this call creates the topic: 'block' (default) or 'overwrite'. */
  policy?: TopicPolicy
  /** Permission bits when this call creates the topic. Default 0o600. */
  mode?: number
  /** How long to wait for a creator to finish the header, in milliseconds. Default 5000. */
  openTimeout?: number
  /** Join a topic whose shared memory object another user owns. Default false: ERR_FOREIGN_OWNER. */
  allowForeignOwner?: boolean
}

export interface TopicGeometry {
  capacity: number
  maxSubscribers: number
  policy: TopicPolicy
  ringOffset: number
}

export function checkPolicy (policy: unknown): TopicPolicy {
  if (policy === undefined) return 'block'
  if (policy !== 'block' && policy !== 'overwrite') throw invalidValue('policy', `must be 'block' or 'overwrite', got ${JSON.stringify(policy)}`)
  return policy
}

/** Validates a header against the buffer holding it (ERR_INVALID_SEGMENT). */
export function checkTopic (buffer: SharedArrayBuffer): TopicGeometry {
  const h = new Int32Array(buffer, 0, L.HEADER_SIZE / 4)
  const capacity = h[word(L.CAPACITY_OFFSET)] >>> 0
  if (capacity < 4096 || capacity > 2 ** 30 || (capacity & (capacity - 1)) !== 0) {
    throw invalidSegment(TOPIC, `capacity ${capacity} is not a power of two from 4096 to 2^30`)
  }
  const maxSubscribers = h[word(L.MAX_SUBSCRIBERS_OFFSET)] >>> 0
  if (maxSubscribers < 1 || maxSubscribers > L.MAX_MAX_SUBSCRIBERS) {
    throw invalidSegment(TOPIC, `max subscribers ${maxSubscribers} is not from 1 to ${L.MAX_MAX_SUBSCRIBERS}`)
  }
  if (L.segmentSize(capacity, maxSubscribers) > buffer.byteLength) {
    throw invalidSegment(TOPIC, `capacity ${capacity} and ${maxSubscribers} subscribers do not fit in ${buffer.byteLength} bytes`)
  }
  const policy = h[word(L.POLICY_OFFSET)]
  if (policy !== L.POLICY_BLOCK && policy !== L.POLICY_OVERWRITE) throw invalidSegment(TOPIC, `policy ${policy} is neither 1 (block) nor 2 (overwrite)`)
  const tail = h[word(L.TAIL_OFFSET)]
  const intent = h[word(L.INTENT_OFFSET)]
  const head = h[word(L.HEAD_OFFSET)]
  if (((tail | intent | head) & (L.RECORD_ALIGNMENT - 1)) !== 0) throw invalidSegment(TOPIC, `positions are not multiples of ${L.RECORD_ALIGNMENT}`)
  if (((tail - head) >>> 0) > capacity || ((intent - tail) >>> 0) > capacity) {
    throw invalidSegment(TOPIC, `head ${head >>> 0}, tail ${tail >>> 0} and intent ${intent >>> 0} are not in order within ${capacity} bytes`)
  }
  return { capacity, maxSubscribers, policy: policy === L.POLICY_BLOCK ? 'block' : 'overwrite', ringOffset: L.ringOffset(maxSubscribers) }
}

/** Frees the entry of a subscriber that closed or died, for a newcomer (lib/segment/reuse.ts). */
export function freeSubscriber (h: Int32Array, index: number): boolean {
  const entry = L.subscriberEntryOffset(index)
  return freeUsedUpEnd(h, entry, () => true, () => {
    Atomics.store(h, word(entry + L.LOST), 0)
    storeU64(h, word(entry + L.RECEIVED), 0)
  })
}

function topicKind (role: TopicRole, capacity: number, maxSubscribers: number, policy: TopicPolicy, took: (index: number) => void): SegmentKind {
  const takeSubscriber = (h: Int32Array, max: number): boolean => {
    for (let i = 0; i < max; i++) {
      const entry = L.subscriberEntryOffset(i)
      const end = readEnd(h, entry)
      const free = (end.state === END_FREE && end.pid === 0) || freeSubscriber(h, i)
      if (free && claimEnd(h, entry)) {
        took(i)
        return true
      }
    }
    return false
  }
  return {
    ...TOPIC,
    init (buffer) {
      const h = new Int32Array(buffer)
      h[word(L.CAPACITY_OFFSET)] = capacity
      h[word(L.MAX_SUBSCRIBERS_OFFSET)] = maxSubscribers
      h[word(L.POLICY_OFFSET)] = policy === 'block' ? L.POLICY_BLOCK : L.POLICY_OVERWRITE
      if (role === 'publisher') claimEnd(h, L.PUBLISHER_END_OFFSET)
      else takeSubscriber(h, maxSubscribers)
    },
    check (buffer) { checkTopic(buffer) },
    join (buffer, label): JoinVerdict {
      const h = new Int32Array(buffer)
      const { maxSubscribers: max } = checkTopic(buffer)
      const publisher = readEnd(h, L.PUBLISHER_END_OFFSET)
      if (role === 'publisher') {
        if (publisher.state === END_FREE) {
          if (publisher.pid !== 0) return 'retry'
          return claimEnd(h, L.PUBLISHER_END_OFFSET) ? 'joined' : 'retry'
        }
        if (endLive(publisher)) throw new ShmChannelError('ERR_END_TAKEN', `topic ${label} already has a live publisher (pid ${publisher.pid})`)
        return 'stale'
      }
      // A subscriber joins a topic whose publisher closed or died only if someone still reads it; else it starts a new one.
      if (endUsedUp(publisher) && !anyoneLive(h, max, false)) return 'stale'
      if (takeSubscriber(h, max)) return 'joined'
      throw new ShmChannelError('ERR_TOO_MANY_ENDS', `topic ${label} already has its maximum of ${max} subscribers (the maxSubscribers its creator set)`)
    }
  }
}

/** Opens (joins or creates) topic `name` as `role`; returns the region and the subscriber table index taken (-1 for the publisher). */
export function openTopic (name: string, role: TopicRole, options: TopicSegmentOptions): { region: Region, index: number } {
  const capacity = checkCapacity(options.capacity ?? 1 << 20)
  const maxSubscribers = checkInteger('maxSubscribers', options.maxSubscribers ?? L.DEFAULT_MAX_SUBSCRIBERS, 1, L.MAX_MAX_SUBSCRIBERS)
  const policy = checkPolicy(options.policy)
  const openTimeout = checkTimeout('openTimeout', options.openTimeout ?? 5000)
  let index = -1
  const { region } = createOrAttach(name, topicKind(role, capacity, maxSubscribers, policy, (i) => { index = i }), {
    size: L.segmentSize(capacity, maxSubscribers),
    mode: options.mode,
    openTimeout,
    allowForeignOwner: options.allowForeignOwner
  })
  return { region, index }
}

function anyoneLive (h: Int32Array, maxSubscribers: number, publisher: boolean): boolean {
  if (publisher && endLive(readEnd(h, L.PUBLISHER_END_OFFSET))) return true
  for (let i = 0; i < maxSubscribers; i++) {
    if (endLive(readEnd(h, L.subscriberEntryOffset(i)))) return true
  }
  return false
}

/** After an end closed: the name goes once no end is live any more. */
export function unlinkIfLast (region: Region, h: Int32Array, maxSubscribers: number): void {
  if (!anyoneLive(h, maxSubscribers, true)) unlinkQuietly(region)
}
