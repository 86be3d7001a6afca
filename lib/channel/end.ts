/**
 * What both ends of a channel do alike: take their slot in the header (by
 * name, through create-or-attach, or in a buffer), see the peer close or
 * die, and close, the last one out removing the name.
 */
import { ShmChannelError } from '../errors'
import { wake } from '../platform/futex'
import { Region } from '../platform/region'
import { createOrAttach, unlinkQuietly, type JoinVerdict, type SegmentKind } from '../segment/attach'
import { claimEnd, closeEnd, endDead, endLive, endOpening, endUsedUp, markEndOnThreadExit, readEnd, takeOverEnd, type EndInfo } from '../segment/ends'
import { checkTimeout } from '../options'
import * as L from './layout'
import { checkCapacity, DEFAULT_CAPACITY, peerDeathSettings, type ChannelOptions, type PeerDeathSettings } from './options'
import { CHANNEL, checkSegment, writeChannelHeader } from './segment'
import { consumerTakeover, producerTakeover, unread, worthTakingOver, type Role } from './takeover'

export type { Role } from './takeover'

/** Each role's slot, its peer's, and where a sleeping peer parks and sleeps (as in lib/channel/ring.ts). */
const ROLES = {
  producer: {
    own: L.PRODUCER_END_OFFSET,
    takeovers: L.PRODUCER_TAKEOVERS_OFFSET,
    peer: L.CONSUMER_END_OFFSET,
    peerParked: L.word(L.CONSUMER_PARKED_OFFSET),
    peerWaitWord: L.word(L.PRODUCER_POSITION_OFFSET)
  },
  consumer: {
    own: L.CONSUMER_END_OFFSET,
    takeovers: L.CONSUMER_TAKEOVERS_OFFSET,
    peer: L.PRODUCER_END_OFFSET,
    peerParked: L.word(L.PRODUCER_PARKED_OFFSET),
    peerWaitWord: L.word(L.CONSUMER_POSITION_OFFSET)
  }
} as const

function headerOf (buffer: SharedArrayBuffer): Int32Array {
  return new Int32Array(buffer, 0, L.HEADER_SIZE / 4)
}

/** How this process came to hold an end: first, or by taking it over (and how many messages it redelivers). */
export interface Arrival {
  takenOver: boolean
  /** Consumer takeovers: messages the dead consumer read but did not release, delivered again first. */
  redelivered: number
}

const FIRST: Arrival = { takenOver: false, redelivered: 0 }

/** At most this many checkPeerSoon calls between two clock reads (End.checkPeerSoon). */
const MAX_CLOCK_STRIDE = 32

/**
 * Takes over `role`'s end, whose holder died, under the claim of
 * lib/segment/ends.ts. Throws ERR_END_TAKEN when another newcomer got it first.
 */
function takeOver (h: Int32Array, buffer: SharedArrayBuffer, role: Role, label: string): Arrival {
  let redelivered = 0
  const work = role === 'producer' ? () => { producerTakeover(h) } : () => { redelivered = consumerTakeover(h, buffer) }
  const result = takeOverEnd(h, ROLES[role].own, ROLES[role].takeovers, work)
  if (result !== 'taken') {
    const mine = readEnd(h, ROLES[role].own)
    throw new ShmChannelError('ERR_END_TAKEN', `channel ${label}: another process (pid ${mine.pid}) took over the ${role} end first`)
  }
  return { takenOver: true, redelivered }
}

/**
 * The channel as a segment kind for `role`. Its creator takes the role's
 * end before publishing the magic. An existing channel is joined if the
 * role's end is free, and taken over if its holder died while the other end
 * is live or messages remain unread. It is stale (reclaimed) if the role's
 * end was closed, if a dead end is not worth taking over (nobody live on the
 * other end and nothing unread), or if a producer comes to a channel whose
 * consumer is gone. `arrived` learns how the end was taken.
 */
function channelKind (role: Role, capacity: number, arrived: (how: Arrival) => void): SegmentKind {
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
      if (endOpening(mine)) {
        // Another process is between its pid and its state (claimEnd): look
        // again. If it died there, the end is dead: handled as below.
        if (!endDead(mine)) return 'retry'
      } else if (mine.state === L.END_FREE) {
        // A consumer joins even after its producer closed or died: what was
        // published is still to be read. A producer does not join a channel
        // whose consumer is gone: nobody would read it. A peer that is
        // opening (or taking over) and runs is not gone: it is arriving.
        if (!endUsedUp(theirs) || role === 'consumer') {
          if (!claimEnd(h, own)) return 'retry' // another process took the end at this instant
          arrived(FIRST)
          return 'joined'
        }
        return 'stale'
      }
      if (endLive(mine)) throw new ShmChannelError('ERR_END_TAKEN', `channel ${label} already has a live ${role} (pid ${mine.pid})`)
      if (mine.state === L.END_CLOSED) return 'stale'
      // Dead, or a takeover under way: join it unless nothing is left to keep.
      if (!worthTakingOver(h, role, theirs.state, endUsedUp(theirs))) return 'stale'
      arrived(takeOver(h, buffer, role, label))
      return 'joined'
    }
  }
}

/**
 * Opens the segment behind `name` and takes the `role` end of it: joins it,
 * takes it over from a dead holder, or creates the channel if there is none
 * (or only a stale one, or `fresh` asks for a new one).
 */
export function openEnd (name: string, role: Role, options: ChannelOptions<unknown>): End {
  const capacity = checkCapacity(options.capacity ?? DEFAULT_CAPACITY)
  const openTimeout = checkTimeout('openTimeout', options.openTimeout ?? 5000)
  const peerDeath = peerDeathSettings(options)
  if (options.fresh === true) removeName(name)
  let arrival = FIRST
  const { region } = createOrAttach(name, channelKind(role, capacity, (how) => { arrival = how }), {
    size: L.segmentSize(capacity),
    mode: options.mode,
    openTimeout,
    allowForeignOwner: options.allowForeignOwner
  })
  return new End(role, region.name, region, region.buffer, peerDeath, arrival)
}

/** Removes the name for `fresh: true`; ends that mapped the old segment keep it, and see no newcomer. */
function removeName (name: string): void {
  try {
    Region.unlink(name)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
}

/**
 * Takes the `role` end of a channel in a buffer from `createChannelBuffer`:
 * a free end, or one whose holder (a thread that ended without closing it) is dead.
 */
export function bufferEnd (buffer: SharedArrayBuffer, role: Role, options: ChannelOptions<unknown> = {}): End {
  if (checkSegment(buffer) === 0) throw new ShmChannelError('ERR_INVALID_SEGMENT', 'invalid channel segment: header is not initialised')
  const h = headerOf(buffer)
  const peerDeath = peerDeathSettings(options)
  if (claimEnd(h, ROLES[role].own)) return new End(role, undefined, undefined, buffer, peerDeath, FIRST)
  const mine = readEnd(h, ROLES[role].own)
  if (!endDead(mine)) throw new ShmChannelError('ERR_END_TAKEN', `this channel already has a ${role}`)
  return new End(role, undefined, undefined, buffer, peerDeath, takeOver(h, buffer, role, '(buffer)'))
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
  readonly #peerDeath: PeerDeathSettings
  /** performance.now() when the peer was first seen dead, -1 while it is not. */
  #peerDeadSince = -1
  #nextPeerCheck = 0
  /** Date.now() at checkPeerSoon's last clock read: a clock the producer's deferred publish reads for free. */
  lastCallMs = 0
  /** checkPeerSoon calls left before it reads the clock again, and how many it skips now. */
  #callsToClock = 0
  #clockStride = 1
  /** How this end was taken: first, or over from a dead holder. */
  readonly arrival: Arrival
  closed = false

  constructor (role: Role, name: string | undefined, region: Region | undefined, buffer: SharedArrayBuffer, peerDeath: PeerDeathSettings, arrival: Arrival) {
    this.#role = role
    this.#peerDeath = peerDeath
    this.arrival = arrival
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

  /**
   * Throws ERR_PEER_DEAD if the peer's process is gone without closing, as
   * onPeerDeath says: at once ('error'), or once no replacement has taken
   * the end over for peerDeathTimeout ms since the death was first seen
   * ('wait'). A replacement that takes over makes the peer live again.
   */
  checkPeer (): void {
    const peer = readEnd(this.header, this.#peer)
    if (!endDead(peer)) {
      this.#peerDeadSince = -1
      return
    }
    const { onPeerDeath, peerDeathTimeout } = this.#peerDeath
    if (onPeerDeath === 'wait') {
      const now = performance.now()
      if (this.#peerDeadSince === -1) this.#peerDeadSince = now
      if (now - this.#peerDeadSince < peerDeathTimeout) return
    }
    throw this.#peerDead(peer)
  }

  /**
   * checkPeer at most once per peerCheckInterval: for calls that do not wait
   * (trySend, send that finds room), so a dead peer is noticed at most
   * peerCheckInterval ms, and MAX_CLOCK_STRIDE calls, after the first call
   * made once it died. A clock read costs 50 to 100 ns here, as much as the
   * rest of a send: calls that come less than a millisecond apart read it
   * once every few calls (the stride doubles while two reads fall in the
   * same millisecond, and is back to every call after any gap).
   */
  checkPeerSoon (): void {
    if (--this.#callsToClock > 0) return
    // Date.now(): whole milliseconds are enough here.
    const now = Date.now()
    this.#clockStride = now === this.lastCallMs ? Math.min(this.#clockStride * 2, MAX_CLOCK_STRIDE) : 1
    this.#callsToClock = this.#clockStride
    this.lastCallMs = now
    if (now < this.#nextPeerCheck) return
    this.#nextPeerCheck = now + this.#peerDeath.peerCheckInterval
    this.checkPeer()
  }

  /** The next checkPeerSoon reads the clock: for a caller that knows a pause may have begun (a run of sends ended). */
  readClockNext (): void {
    this.#callsToClock = 0
  }

  #peerDead (peer: EndInfo): ShmChannelError {
    const other = this.#role === 'producer' ? 'consumer' : 'producer'
    const who = peer.pid === process.pid ? 'a worker thread of this process that held it ended without closing it' : `its process (pid ${peer.pid}) died`
    const waited = this.#peerDeath.onPeerDeath === 'wait' ? `, and no replacement took it over within ${this.#peerDeath.peerDeathTimeout} ms` : ''
    return new ShmChannelError('ERR_PEER_DEAD', `the ${other} of channel ${this.name ?? '(buffer)'} is gone: ${who}${waited}`)
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
    // So may a replacement for a dead consumer, while messages remain unread.
    try {
      const peer = readEnd(this.header, this.#peer)
      const keptForReplacement = this.#role === 'producer' && endDead(peer) && unread(this.header)
      if (endUsedUp(peer) && !keptForReplacement) unlinkQuietly(region)
    } finally {
      region.close()
    }
  }
}
