/**
 * A fan-in seen from outside (for `shm-channel ls`/`stat`): what its header
 * and producer table say, read without taking an end. Values are snapshots.
 */
import { endLive, readEnd, END_CLOSED, END_FREE, type EndInfo } from '../segment/ends'
import { loadMagic } from '../segment/identity'
import { loadU64, word } from '../segment/words'
import * as L from './layout'
import { checkFanIn } from './segment'

export type HolderStatus = 'free' | 'alive' | 'dead' | 'closed'

export function holderStatus (end: EndInfo): HolderStatus {
  if (end.state === END_FREE) return 'free'
  if (end.state === END_CLOSED) return 'closed'
  return endLive(end) ? 'alive' : 'dead'
}

export interface FanInProducerSnapshot {
  index: number
  pid: number
  status: HolderStatus
  messagesSent: number
  /** The claim in flight (claimed, not committed yet), or null. */
  claim: { start: number, length: number } | null
}

export interface FanInSnapshot {
  kind: 'fan-in'
  name: string
  capacity: number
  maxProducers: number
  tail: number
  head: number
  /** Bytes claimed and not yet read. */
  used: number
  messagesReceived: number
  claimsSkipped: number
  bytesSkipped: number
  /** Fragmented messages dropped because their producer died or closed before their last fragment. */
  partialsDropped: number
  consumer: { pid: number, status: HolderStatus }
  /** Producers whose entry is not free. */
  producers: FanInProducerSnapshot[]
}

/** The fan-in in `buffer`, or undefined if it is not one (ERR_INVALID_SEGMENT if its header is broken). */
export function inspectFanIn (name: string, buffer: SharedArrayBuffer): FanInSnapshot | undefined {
  if (buffer.byteLength < L.HEADER_SIZE || loadMagic(new Int32Array(buffer, 0, 1)) !== L.MAGIC) return undefined
  const { capacity, maxProducers } = checkFanIn(buffer)
  const h = new Int32Array(buffer)
  const head = Atomics.load(h, word(L.HEAD_OFFSET)) >>> 0
  const tail = Atomics.load(h, word(L.TAIL_OFFSET)) >>> 0
  const consumer = readEnd(h, L.CONSUMER_END_OFFSET)
  const producers: FanInProducerSnapshot[] = []
  for (let index = 0; index < maxProducers; index++) {
    const entry = L.producerEntryOffset(index)
    const end = readEnd(h, entry)
    if (end.state === END_FREE && end.pid === 0) continue
    const length = Atomics.load(h, word(entry + L.CLAIM_LENGTH)) >>> 0
    producers.push({
      index,
      pid: end.pid,
      status: holderStatus(end),
      messagesSent: loadU64(h, word(entry + L.MESSAGES_SENT)),
      claim: length === 0 ? null : { start: Atomics.load(h, word(entry + L.CLAIM_START)) >>> 0, length }
    })
  }
  return {
    kind: 'fan-in',
    name,
    capacity,
    maxProducers,
    tail,
    head,
    used: Math.min((tail - head) >>> 0, capacity),
    messagesReceived: loadU64(h, word(L.MESSAGES_RECEIVED_OFFSET)),
    claimsSkipped: h[word(L.CLAIMS_SKIPPED_OFFSET)] >>> 0,
    bytesSkipped: loadU64(h, word(L.BYTES_SKIPPED_OFFSET)),
    partialsDropped: h[word(L.PARTIALS_DROPPED_OFFSET)] >>> 0,
    consumer: { pid: consumer.pid, status: holderStatus(consumer) },
    producers
  }
}

/** `stat` text for a fan-in. */
export function describeFanIn (f: FanInSnapshot): string {
  const lines = [
    `fan-in     ${f.name}`,
    `capacity   ${f.capacity} bytes, up to ${f.maxProducers} producers`,
    `used       ${f.used} bytes (tail ${f.tail}, head ${f.head})`,
    `received   ${f.messagesReceived} messages`,
    `skipped    ${f.claimsSkipped} claims of dead producers, ${f.bytesSkipped} bytes`,
    `dropped    ${f.partialsDropped} partial messages (producer gone before the last fragment)`,
    `consumer   pid ${f.consumer.pid} (${f.consumer.status})`
  ]
  for (const p of f.producers) {
    const claim = p.claim === null ? 'no claim in flight' : `claim in flight: ${p.claim.length} bytes at ${p.claim.start}`
    lines.push(`producer ${p.index}: pid ${p.pid} (${p.status}), ${p.messagesSent} sent, ${claim}`)
  }
  return lines.join('\n') + '\n'
}
