/**
 * A topic seen from outside (for `shm-channel ls`/`stat`): what its header
 * and subscriber table say, read without taking an end. Values are snapshots.
 */
import { holderStatus, type HolderStatus } from '../fanin/inspect'
import { readEnd, END_FREE } from '../segment/ends'
import { loadMagic } from '../segment/identity'
import { loadU64, word } from '../segment/words'
import * as L from './layout'
import { checkTopic, type TopicPolicy } from './segment'

export interface SubscriberSnapshot {
  index: number
  pid: number
  status: HolderStatus
  cursor: number
  /** Bytes published that this subscriber has not read: tail − cursor, as the subscriber stores it (every capacity / 16 bytes read, and when caught up). */
  lag: number
  lost: number
  messagesReceived: number
}

export interface TopicSnapshot {
  kind: 'topic'
  name: string
  policy: TopicPolicy
  capacity: number
  maxSubscribers: number
  tail: number
  head: number
  messagesPublished: number
  publisher: { pid: number, status: HolderStatus }
  /** Subscribers whose entry is not free. */
  subscribers: SubscriberSnapshot[]
}

/** The topic in `buffer`, or undefined if it is not one (ERR_INVALID_SEGMENT if its header is broken). */
export function inspectTopic (name: string, buffer: SharedArrayBuffer): TopicSnapshot | undefined {
  if (buffer.byteLength < L.HEADER_SIZE || loadMagic(new Int32Array(buffer, 0, 1)) !== L.MAGIC) return undefined
  const { capacity, maxSubscribers, policy } = checkTopic(buffer)
  const h = new Int32Array(buffer)
  const tail = Atomics.load(h, word(L.TAIL_OFFSET)) >>> 0
  const publisher = readEnd(h, L.PUBLISHER_END_OFFSET)
  const subscribers: SubscriberSnapshot[] = []
  for (let index = 0; index < maxSubscribers; index++) {
    const entry = L.subscriberEntryOffset(index)
    const end = readEnd(h, entry)
    if (end.state === END_FREE && end.pid === 0) continue
    const cursor = Atomics.load(h, word(entry + L.CURSOR)) >>> 0
    subscribers.push({
      index,
      pid: end.pid,
      status: holderStatus(end),
      cursor,
      lag: (tail - cursor) >>> 0,
      lost: h[word(entry + L.LOST)] >>> 0,
      messagesReceived: loadU64(h, word(entry + L.RECEIVED))
    })
  }
  return {
    kind: 'topic',
    name,
    policy,
    capacity,
    maxSubscribers,
    tail,
    head: Atomics.load(h, word(L.HEAD_OFFSET)) >>> 0,
    messagesPublished: loadU64(h, word(L.PUBLISHED_OFFSET)),
    publisher: { pid: publisher.pid, status: holderStatus(publisher) },
    subscribers
  }
}

/** `stat` text for a topic. */
export function describeTopic (t: TopicSnapshot): string {
  const lines = [
    `topic      ${t.name}`,
    `policy     ${t.policy}`,
    `capacity   ${t.capacity} bytes, up to ${t.maxSubscribers} subscribers`,
    `published  ${t.messagesPublished} messages (tail ${t.tail}, oldest retained at ${t.head})`,
    `publisher  pid ${t.publisher.pid} (${t.publisher.status})`
  ]
  for (const s of t.subscribers) {
    lines.push(`subscriber ${s.index}: pid ${s.pid} (${s.status}), lag ${s.lag} bytes, ${s.messagesReceived} received, ${s.lost} lost`)
  }
  return lines.join('\n') + '\n'
}
