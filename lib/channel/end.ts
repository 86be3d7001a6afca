/**
 * What both ends of a channel do alike: take their slot in the header (by
 * name, through create-or-attach, or in a buffer), see the peer close or
 * die, and close, the last one out removing the name.
 */
import { ShmChannelError } from '../errors'
import { wake } from '../platform/futex'
import type { Region } from '../platform/region'
import { createOrAttach, unlinkQuietly, type JoinVerdict, type SegmentKind } from '../segment/attach'
import { claimEnd, closeEnd, endLive, endUsedUp, markEndOnThreadExit, readEnd } from '../segment/ends'
import { checkTimeout } from '../options'
import * as L from './layout'
import { checkCapacity, DEFAULT_CAPACITY, type ChannelOptions } from './options'
import { CHANNEL, checkSegment, writeChannelHeader } from './segment'

export type Role = 'producer' | 'consumer'

/** Each role's slot, its peer's, and where a sleeping peer parks and sleeps (as in lib/channel/ring.ts). */
const ROLES = {
  producer: {
    own: L.PRODUCER_END_OFFSET,
    peer: L.CONSUMER_END_OFFSET,
    peerParked: L.word(L.CONSUMER_PARKED_OFFSET),
    peerWaitWord: L.word(L.PRODUCER_POSITION_OFFSET)
  },
  consumer: {
    own: L.CONSUMER_END_OFFSET,
    peer: L.PRODUCER_END_OFFSET,
    peerParked: L.word(L.PRODUCER_PARKED_OFFSET),
    peerWaitWord: L.word(L.CONSUMER_POSITION_OFFSET)
  }
} as const

function headerOf (buffer: SharedArrayBuffer): Int32Array {
  return new Int32Array(buffer, 0, L.HEADER_SIZE / 4)
}

/**
 * The channel as a segment kind for `role`. Its creator takes the role's
 * end before publishing the magic. An existing channel is joined if the
 * role's end is free; it is stale if that end is used up (closed, or held by
 * a dead process), or if a producer comes to a channel whose consumer is gone.
 */
function channelKind (role: Role, capacity: number): SegmentKind {
  const { own, peer } = ROLES[role]
  return {
    ...CHANNEL,
    init (buffer) {
      writeChannelHeader(buffer, capacity)
      claimEnd(headerOf(buffer), own)
    },
    check (buffer) {
      checkSegment(buffer)
    },
    join (buffer, label): JoinVerdict {
      const h = headerOf(buffer)
      const mine = readEnd(h, own)
      const theirs = readEnd(h, peer)
      // A consumer joins even after its producer closed or died: what was
      // published is still to be read. A producer does not join a channel
      // whose consumer is gone: nobody would read it.
      const joinable = theirs.state === L.END_FREE || endLive(theirs) || role === 'consumer'
      if (mine.state === L.END_FREE && mine.pid === 0 && joinable) {
        return claimEnd(h, own) ? 'joined' : 'retry' // 'retry': another process took the end at this instant
      }
      if (endLive(mine)) throw new ShmChannelError('ERR_END_TAKEN', `channel ${label} already has a live ${role} (pid ${mine.pid})`)
      return 'stale'
    }
  }
}

/** Opens the segment behind `name` and takes the `role` end of it, creating the channel if there is none (or only a stale one). */
export function openEnd (name: string, role: Role, options: ChannelOptions<unknown>): End {
  const capacity = checkCapacity(options.capacity ?? DEFAULT_CAPACITY)
  const openTimeout = checkTimeout('openTimeout', options.openTimeout ?? 5000)
  const { region } = createOrAttach(name, channelKind(role, capacity), {
    size: L.segmentSize(capacity),
    mode: options.mode,
    openTimeout,
    allowForeignOwner: options.allowForeignOwner
  })
  return new End(role, region.name, region, region.buffer)
}

/** Takes the `role` end of a channel in a buffer from `createChannelBuffer`. */
export function bufferEnd (buffer: SharedArrayBuffer, role: Role): End {
  if (checkSegment(buffer) === 0) throw new ShmChannelError('ERR_INVALID_SEGMENT', 'invalid channel segment: header is not initialised')
  if (!claimEnd(headerOf(buffer), ROLES[role].own)) throw new ShmChannelError('ERR_END_TAKEN', `this channel already has a ${role}`)
  return new End(role, undefined, undefined, buffer)
}

/**
 * Wraps a freshly taken end in its holder (a Producer or Consumer): the end
 * is closed if making the holder fails, and when the holder is
 * garbage-collected without having closed it.
 */
export function adopt<H extends object> (end: End, make: () => H): H {
  let holder: H
  try {
    holder = make()
  } catch (err) {
    end.close()
    throw err
  }
  end.closeWhenCollected(holder)
  return holder
}

/**
 * Ends whose holder (a Producer or Consumer) was garbage-collected without
 * close(): closed then, so the peer sees a close instead of an end held by a
 * live process forever.
 */
const forgotten = new FinalizationRegistry<End>((end) => {
  try {
    end.close()
  } catch {
    // Nobody is left to tell: the name stays for the next open to reclaim.
  }
})

/** An end's slot, its liveness and its close. */
export class End {
  readonly name: string | undefined
  readonly buffer: SharedArrayBuffer
  readonly header: Int32Array
  readonly #region: Region | undefined
  readonly #role: Role
  readonly #own: number
  readonly #peer: number
  readonly #cancelThreadMark: () => void
  closed = false

  constructor (role: Role, name: string | undefined, region: Region | undefined, buffer: SharedArrayBuffer) {
    this.#role = role
    this.name = name
    this.#region = region
    this.buffer = buffer
    this.header = headerOf(buffer)
    this.#own = ROLES[role].own
    this.#peer = ROLES[role].peer
    this.#cancelThreadMark = markEndOnThreadExit(this, buffer, this.#own)
  }

  /** Closes this end when `holder` is garbage-collected without having closed it. */
  closeWhenCollected (holder: object): void {
    forgotten.register(holder, this, this)
  }

  /** The peer has closed its end. One load from a line that rarely changes. */
  peerClosed (): boolean {
    return Atomics.load(this.header, L.word(this.#peer) + L.word(L.END_STATE)) === L.END_CLOSED
  }

  /** Throws ERR_PEER_DEAD if the peer's process is gone without closing. */
  checkPeer (): void {
    const peer = readEnd(this.header, this.#peer)
    if (peer.state === L.END_OPEN && !endLive(peer)) {
      const other = this.#role === 'producer' ? 'consumer' : 'producer'
      const who = peer.pid === process.pid ? 'a worker thread of this process that held it ended without closing it' : `its process (pid ${peer.pid}) died`
      throw new ShmChannelError('ERR_PEER_DEAD', `the ${other} of channel ${this.name ?? '(buffer)'} is gone: ${who}`)
    }
  }

  assertOpen (): void {
    if (this.closed) throw new ShmChannelError('ERR_CHANNEL_CLOSED', `this ${this.#role} is closed`)
  }

  /** Wakes the peer if it is asleep, so it sees what changed (a close). */
  wakePeer (): void {
    const { peerParked, peerWaitWord } = ROLES[this.#role]
    // Read after the store that changed the state, as in RingProducer.publish.
    if (Atomics.load(this.header, peerParked) !== 0) wake(this.header, peerWaitWord, 1)
  }

  /**
   * Marks the end closed, lets `notify` wake the peer (default: wakePeer),
   * then lets go of the mapping; the last end out removes the name.
   */
  close (notify: () => void = () => { this.wakePeer() }): void {
    if (this.closed) return
    closeEnd(this.header, this.#own)
    this.#cancelThreadMark()
    forgotten.unregister(this)
    this.closed = true
    notify()
    const region = this.#region
    if (region === undefined) return
    // A peer that never attached may still come for what was sent: leave the
    // name to it (it unlinks when it closes; a later open reclaims it if not).
    try {
      if (endUsedUp(readEnd(this.header, this.#peer))) unlinkQuietly(region)
    } finally {
      region.close()
    }
  }
}
