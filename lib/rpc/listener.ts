/**
 * Admission of clients by name for request/response (lib/rpc.ts).
 *
 * A channel has one producer, so clients cannot share one "accept" channel.
 * Instead the server makes a small *listener* region under the service's
 * name, holding a fixed number of client slots and a doorbell word. A client
 * takes a free slot, creates its own two channels (lib/duplex.ts), marks the
 * slot ready and rings the doorbell; the server, asleep on the doorbell,
 * attaches to those channels and answers in the slot. The slot is only held
 * during this handshake: the number of slots bounds connections *being made*
 * at one instant, not connected clients.
 *
 * This file is the one place the listener's bytes are written down (the
 * channel segment's are in lib/layout.ts); docs/architecture.md describes
 * the same bytes.
 *
 *   0          512                       512 + slots * 32
 *   +----------+-------------------------+
 *   | header   | slots, 32 bytes each    |
 *   +----------+-------------------------+
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +---------------------------------------------------------------+
 *   |                         magic "SHML"                          |   0 identity: written once by the
 *   |         major version         |         minor version         |   4 server, magic last
 *   |                       header size (512)                       |   8
 *   |                          slot count                           |  12
 *   |                        slot size (32)                         |  16
 *   |        channel capacity clients should create (0: theirs)     |  20
 *   |                    codec name length (bytes)                  |  24
 *   +---------------------------------------------------------------+
 *   |  server pid  |  server start time (u64)  |  server state      | 128 server: the layout of a channel end
 *   +---------------------------------------------------------------+
 *   |                           doorbell                            | 256 clients add 1 and wake; the server sleeps on it
 *   +---------------------------------------------------------------+
 *   |                  codec name, UTF-8, up to 64 bytes            | 384
 *   +---------------------------------------------------------------+
 *
 * A slot:
 *
 *   +---------------------------------------------------------------+
 *   |                owner pid (0: the slot is free)                | +0  taken by compare-and-swap 0 -> pid
 *   |                             state                             | +4
 *   |                  owner start time (u64, lo, hi)               | +8
 *   |                       connection number                       | +16 names the client's channels
 *   |                       reserved (12 bytes)                     | +20
 *   +---------------------------------------------------------------+
 *
 * Slot states, and who moves them:
 *
 *   FREE --client CAS owner--> (owner set, state FREE) --client--> CLAIMED
 *   CLAIMED --client, after creating its channels--> READY (then rings the doorbell)
 *   READY --server CAS--> ACCEPTING --server--> ACCEPTED or REFUSED (then wakes the state word)
 *   READY --client CAS, giving up--> CLAIMED
 *   any --owner, once it has its answer or gave up--> FREE: state 0, then owner 0
 *   any --server, owner process dead--> FREE
 *
 * The owner (client) frees its own slot; the server never frees a slot whose
 * owner lives. So a slot cannot change hands while a client still acts on
 * it, and the client's "give up" compare-and-swap cannot hit another
 * client's READY (no ABA). State is cleared before owner: a new owner's
 * compare-and-swap on owner can only succeed after the old state is gone.
 */
import { setTimeout as sleep } from 'node:timers/promises'

import { AbortError, ShmChannelError } from './errors'
import { wake, waitAsync } from './futex'
import * as L from './layout'
import { claimEnd, closeEnd, endLive, isAlive, ownStartTime, readEnd } from './liveness'
import { Region, checkOwner } from './region'

export const LISTENER_MAGIC = 0x4c4d4853 // "SHML" read as a little-endian u32
export const LISTENER_VERSION_MAJOR = 1
export const LISTENER_VERSION_MINOR = 0

const LINE = 128

export const LISTENER_MAGIC_OFFSET = 0
export const LISTENER_VERSION_OFFSET = LISTENER_MAGIC_OFFSET + 4
export const LISTENER_HEADER_SIZE_OFFSET = LISTENER_VERSION_OFFSET + 4
export const SLOT_COUNT_OFFSET = LISTENER_HEADER_SIZE_OFFSET + 4
export const SLOT_SIZE_OFFSET = SLOT_COUNT_OFFSET + 4
export const CAPACITY_HINT_OFFSET = SLOT_SIZE_OFFSET + 4
export const CODEC_NAME_LENGTH_OFFSET = CAPACITY_HINT_OFFSET + 4
/** The server's end: pid u32, start time u64, state u32, exactly as a channel end (L.END_*). */
export const SERVER_END_OFFSET = LINE
/** Alone on its line: every client writes it, the server sleeps on it. */
export const DOORBELL_OFFSET = 2 * LINE
export const CODEC_NAME_OFFSET = 3 * LINE
export const CODEC_NAME_MAX = 64
export const LISTENER_HEADER_SIZE = 4 * LINE

export const SLOT_SIZE = 32
export const SLOT_OWNER = 0
export const SLOT_STATE = 4
export const SLOT_START_TIME = 8
export const SLOT_CONNECTION = 16

export const SLOT_FREE = 0
export const SLOT_CLAIMED = 1
export const SLOT_READY = 2
export const SLOT_ACCEPTING = 3
export const SLOT_ACCEPTED = 4
export const SLOT_REFUSED = 5

export const MAX_SLOTS = 1024

export function listenerSize (slots: number): number {
  return LISTENER_HEADER_SIZE + slots * SLOT_SIZE
}

/** Word index of field `field` of slot `slot`, for an Int32Array over the whole region. */
function slotWord (slot: number, field: number): number {
  return (LISTENER_HEADER_SIZE + slot * SLOT_SIZE + field) >>> 2
}

const W_MAGIC = LISTENER_MAGIC_OFFSET >>> 2
const W_DOORBELL = DOORBELL_OFFSET >>> 2

/** Who is on the other side of a slot. */
export interface SlotOwner {
  pid: number
  startTime: number
  connection: number
}

/** What a client needs to know of the server, read from the listener header. */
export interface ServerInfo {
  pid: number
  startTime: number
  /** Channel capacity the server asks clients to create; 0 when it leaves it to them. */
  capacity: number
  codec: string
}

function readU64 (h: Int32Array, index: number): number {
  return (h[index] >>> 0) + (h[index + 1] >>> 0) * 0x100000000
}

/** Checks identity fields; throws ERR_INVALID_SEGMENT for anything but a listener of this major version. */
function checkListener (h: Int32Array, name: string, size: number): number {
  if ((Atomics.load(h, W_MAGIC) >>> 0) !== LISTENER_MAGIC) {
    throw new ShmChannelError('ERR_INVALID_SEGMENT', `${name} is not a shm-channel listener (bad magic)`)
  }
  const version = h[LISTENER_VERSION_OFFSET >>> 2] >>> 0
  if (version >>> 16 !== LISTENER_VERSION_MAJOR) {
    throw new ShmChannelError('ERR_INVALID_SEGMENT', `${name} is a listener of version ${version >>> 16}.${version & 0xffff}; this is ${LISTENER_VERSION_MAJOR}.x`)
  }
  const slots = h[SLOT_COUNT_OFFSET >>> 2]
  if (h[LISTENER_HEADER_SIZE_OFFSET >>> 2] !== LISTENER_HEADER_SIZE || h[SLOT_SIZE_OFFSET >>> 2] !== SLOT_SIZE ||
      slots < 1 || slots > MAX_SLOTS || listenerSize(slots) > size) {
    throw new ShmChannelError('ERR_INVALID_SEGMENT', `${name} has a listener header this version does not accept`)
  }
  return slots
}

const sleeper = new Int32Array(new SharedArrayBuffer(4))

export interface ListenOptions {
  slots: number
  capacity: number
  codec: string
  mode?: number
  openTimeout: number
}

/**
 * The server's side: owns the listener region, sleeps on the doorbell,
 * takes ready slots and answers them. One per server; only its own event
 * loop touches it.
 */
export class Listener {
  readonly name: string
  readonly slots: number
  readonly #region: Region
  readonly #h: Int32Array
  closed = false

  private constructor (region: Region, slots: number) {
    this.#region = region
    this.name = region.name ?? ''
    this.slots = slots
    this.#h = new Int32Array(region.buffer)
  }

  /**
   * Creates the listener `name` and takes its server end. A listener left by
   * a server that closed or died is reclaimed; one whose server lives is
   * ERR_END_TAKEN.
   */
  static create (name: string, options: ListenOptions): Listener {
    const codec = Buffer.from(options.codec, 'utf8')
    if (codec.length > CODEC_NAME_MAX) throw new RangeError(`codec name ${JSON.stringify(options.codec)} is longer than ${CODEC_NAME_MAX} bytes`)
    const size = listenerSize(options.slots)
    for (let attempt = 0; ; attempt++) {
      let region: Region
      try {
        region = Region.create(name, size, { mode: options.mode })
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
        Listener.#reclaim(name, options.openTimeout, attempt)
        continue
      }
      try {
        const h = new Int32Array(region.buffer)
        h[LISTENER_VERSION_OFFSET >>> 2] = (LISTENER_VERSION_MAJOR << 16) | LISTENER_VERSION_MINOR
        h[LISTENER_HEADER_SIZE_OFFSET >>> 2] = LISTENER_HEADER_SIZE
        h[SLOT_COUNT_OFFSET >>> 2] = options.slots
        h[SLOT_SIZE_OFFSET >>> 2] = SLOT_SIZE
        h[CAPACITY_HINT_OFFSET >>> 2] = options.capacity
        h[CODEC_NAME_LENGTH_OFFSET >>> 2] = codec.length
        Buffer.from(region.buffer, CODEC_NAME_OFFSET, CODEC_NAME_MAX).set(codec)
        claimEnd(h, SERVER_END_OFFSET)
        // The magic goes last, with a sequentially consistent store: a client
        // that sees it sees every field above, the server end included.
        Atomics.store(h, W_MAGIC, LISTENER_MAGIC | 0)
        return new Listener(region, options.slots)
      } catch (err) {
        region.unlinkIfSame()
        region.close()
        throw err
      }
    }
  }

  /** An existing object under `name`: ERR_END_TAKEN if a live server holds it, else unlinked so the caller can create afresh. */
  static #reclaim (name: string, openTimeout: number, attempt: number): void {
    let region: Region
    try {
      region = Region.open(name)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return // gone meanwhile: create again
      throw err
    }
    try {
      if (region.size < LISTENER_HEADER_SIZE) throw new ShmChannelError('ERR_INVALID_SEGMENT', `${name} exists and is not a shm-channel listener`)
      const h = new Int32Array(region.buffer)
      // A server that made the name is finishing its header (microseconds).
      const deadline = performance.now() + openTimeout
      while (Atomics.load(h, W_MAGIC) === 0 && performance.now() < deadline) Atomics.wait(sleeper, 0, 0, 1)
      if (Atomics.load(h, W_MAGIC) === 0) {
        if (attempt > 0) throw new ShmChannelError('ERR_TIMEOUT', `listener ${name} was not initialised within ${openTimeout} ms`)
        region.unlinkIfSame() // its creator died half way
        return
      }
      checkListener(h, name, region.size)
      const server = readEnd(h, SERVER_END_OFFSET)
      if (endLive(server)) throw new ShmChannelError('ERR_END_TAKEN', `${name} already has a live server (pid ${server.pid})`)
      region.unlinkIfSame()
    } finally {
      region.close()
    }
  }

  /** The doorbell's value now; load it before scanning, sleep on it after (see `sleep`). */
  doorbell (): number {
    return Atomics.load(this.#h, W_DOORBELL)
  }

  /**
   * Sleeps until a client rings after `seen` was loaded, `timeout` ms pass or
   * `signal` aborts (AbortError). A ring between the load and the sleep makes
   * the kernel refuse to sleep (the word no longer holds `seen`): none is lost.
   */
  async sleep (seen: number, timeout: number, signal: AbortSignal): Promise<void> {
    await waitAsync(this.#h, W_DOORBELL, seen, { timeout, signal })
  }

  /** Indexes of slots marked ready now. */
  ready (): number[] {
    const found: number[] = []
    for (let i = 0; i < this.slots; i++) {
      if (Atomics.load(this.#h, slotWord(i, SLOT_STATE)) === SLOT_READY) found.push(i)
    }
    return found
  }

  /**
   * Takes ready slot `i` for accepting, or null if its client withdrew at
   * this instant. The owner's fields were written before READY was stored,
   * so the compare-and-swap that sees READY sees them.
   */
  take (i: number): SlotOwner | null {
    if (Atomics.compareExchange(this.#h, slotWord(i, SLOT_STATE), SLOT_READY, SLOT_ACCEPTING) !== SLOT_READY) return null
    return this.#owner(i)
  }

  #owner (i: number): SlotOwner {
    const h = this.#h
    return {
      pid: Atomics.load(h, slotWord(i, SLOT_OWNER)) >>> 0,
      startTime: readU64(h, slotWord(i, SLOT_START_TIME)),
      connection: h[slotWord(i, SLOT_CONNECTION)] >>> 0
    }
  }

  /** Answers a taken slot (ACCEPTED or REFUSED) and wakes its client, who frees the slot. */
  answer (i: number, state: typeof SLOT_ACCEPTED | typeof SLOT_REFUSED): void {
    Atomics.store(this.#h, slotWord(i, SLOT_STATE), state)
    wake(this.#h, slotWord(i, SLOT_STATE))
  }

  /**
   * Frees the slots of owners whose process died, and returns those that may
   * have left channels behind (they had claimed, readied or been refused, but
   * no connection holds their channels). Only the server writes a slot whose
   * owner is gone, so plain stores do.
   */
  sweep (): SlotOwner[] {
    const h = this.#h
    const orphans: SlotOwner[] = []
    for (let i = 0; i < this.slots; i++) {
      const pid = Atomics.load(h, slotWord(i, SLOT_OWNER)) >>> 0
      if (pid === 0) continue
      const state = Atomics.load(h, slotWord(i, SLOT_STATE))
      // Before CLAIMED the start time may not be written yet: judge by pid alone.
      const owner = this.#owner(i)
      if (isAlive(pid, state === SLOT_FREE ? 0 : owner.startTime)) continue
      if (state === SLOT_CLAIMED || state === SLOT_READY || state === SLOT_REFUSED) orphans.push(owner)
      Atomics.store(h, slotWord(i, SLOT_STATE), SLOT_FREE)
      Atomics.store(h, slotWord(i, SLOT_OWNER), 0)
    }
    return orphans
  }

  /** Marks the server closed (clients still connecting give up), removes the name and unmaps. Idempotent. */
  close (): void {
    if (this.closed) return
    this.closed = true
    closeEnd(this.#h, SERVER_END_OFFSET)
    // Wake every client waiting in a slot: they see the server closed.
    for (let i = 0; i < this.slots; i++) {
      if (Atomics.load(this.#h, slotWord(i, SLOT_OWNER)) !== 0) wake(this.#h, slotWord(i, SLOT_STATE))
    }
    this.#region.unlinkIfSame()
    this.#region.close()
  }
}

let nextConnection = Math.floor(Math.random() * 0x100000000)

/**
 * A client's hold on one slot of a listener, from claiming it to freeing
 * it. Its connection number is new for each ticket; together with the pid it
 * names the client's channels, and starting from a random number keeps a
 * reused pid from meeting a dead process's names.
 */
export class Ticket {
  readonly server: ServerInfo
  readonly connection: number
  readonly #region: Region
  readonly #h: Int32Array
  readonly #slot: number
  #freed = false

  private constructor (region: Region, slot: number, server: ServerInfo, connection: number) {
    this.#region = region
    this.#h = new Int32Array(region.buffer)
    this.#slot = slot
    this.server = server
    this.connection = connection
  }

  /**
   * Takes a free slot of listener `name`, waiting (polling every few ms)
   * while there is no listener, its server is not live, or every slot is
   * busy. Rejects with ERR_TIMEOUT at `deadline` (a performance.now() time),
   * or AbortError.
   */
  static async claim (name: string, deadline: number, signal: AbortSignal | undefined, allowForeignOwner?: boolean): Promise<Ticket> {
    let why = 'no server is listening'
    for (;;) {
      if (signal?.aborted === true) throw new AbortError({ cause: signal.reason })
      const region = Ticket.#open(name, allowForeignOwner)
      if (region !== undefined) {
        let ticket: Ticket | undefined
        try {
          const h = new Int32Array(region.buffer)
          const slots = checkListener(h, name, region.size)
          const server = readEnd(h, SERVER_END_OFFSET)
          if (!endLive(server)) {
            why = server.state === L.END_CLOSED ? 'its server closed' : 'its server is not running'
          } else {
            const info: ServerInfo = {
              pid: server.pid,
              startTime: server.startTime,
              capacity: h[CAPACITY_HINT_OFFSET >>> 2] >>> 0,
              codec: Buffer.from(region.buffer, CODEC_NAME_OFFSET, Math.min(CODEC_NAME_MAX, h[CODEC_NAME_LENGTH_OFFSET >>> 2] >>> 0)).toString('utf8')
            }
            for (let i = 0; i < slots && ticket === undefined; i++) {
              if (Atomics.compareExchange(h, slotWord(i, SLOT_OWNER), 0, process.pid) !== 0) continue
              const connection = nextConnection
              nextConnection = (nextConnection + 1) >>> 0
              h[slotWord(i, SLOT_START_TIME)] = ownStartTime % 0x100000000
              h[slotWord(i, SLOT_START_TIME) + 1] = Math.floor(ownStartTime / 0x100000000)
              h[slotWord(i, SLOT_CONNECTION)] = connection
              Atomics.store(h, slotWord(i, SLOT_STATE), SLOT_CLAIMED)
              ticket = new Ticket(region, i, info, connection)
            }
            if (ticket === undefined) why = `all ${slots} of its connection slots stayed busy`
          }
        } catch (err) {
          region.close()
          throw err
        }
        if (ticket !== undefined) return ticket
        region.close()
      }
      if (performance.now() >= deadline) throw new ShmChannelError('ERR_TIMEOUT', `could not connect to ${name}: ${why}`)
      await sleep(Math.max(1, Math.min(10, deadline - performance.now())), undefined, { signal }).catch((err: unknown) => {
        throw new AbortError({ cause: (err as Error & { cause?: unknown }).cause ?? signal?.reason })
      })
    }
  }

  /** The listener region, or undefined if there is none or it is still being made. */
  static #open (name: string, allowForeignOwner: boolean | undefined): Region | undefined {
    let region: Region
    try {
      region = Region.open(name)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
    try {
      checkOwner(region, allowForeignOwner)
    } catch (err) {
      region.close()
      throw err
    }
    if (region.size < LISTENER_HEADER_SIZE) {
      region.close()
      throw new ShmChannelError('ERR_INVALID_SEGMENT', `${name} exists and is not a shm-channel listener`)
    }
    if (Atomics.load(new Int32Array(region.buffer), W_MAGIC) === 0) {
      region.close() // the server is writing its header: look again shortly
      return undefined
    }
    return region
  }

  /** The channels exist: lets the server take the slot, and rings the doorbell. */
  ready (): void {
    Atomics.store(this.#h, slotWord(this.#slot, SLOT_STATE), SLOT_READY)
    // The add comes after READY is stored: a server that sees the new count
    // and rescans finds the slot ready.
    Atomics.add(this.#h, W_DOORBELL, 1)
    wake(this.#h, W_DOORBELL, 1)
  }

  /** True while the server that published this listener lives and has not closed. */
  serverLive (): boolean {
    return endLive(readEnd(this.#h, SERVER_END_OFFSET))
  }

  /**
   * Waits for the server's answer: 'accepted' or 'refused'. At `deadline`,
   * on abort, or when the server is gone, it withdraws the slot if the
   * server has not taken it and rejects (ERR_TIMEOUT, AbortError,
   * ERR_PEER_DEAD, ERR_CHANNEL_CLOSED); once the server has taken it, the
   * answer comes within moments and is waited for while the server lives.
   */
  async answer (deadline: number, signal: AbortSignal | undefined, peerCheckInterval: number): Promise<'accepted' | 'refused'> {
    const h = this.#h
    const word = slotWord(this.#slot, SLOT_STATE)
    for (;;) {
      const state = Atomics.load(h, word)
      if (state === SLOT_ACCEPTED) return 'accepted'
      if (state === SLOT_REFUSED) return 'refused'
      const server = readEnd(h, SERVER_END_OFFSET)
      let failure: Error | undefined
      if (!endLive(server)) {
        failure = server.state === L.END_CLOSED
          ? new ShmChannelError('ERR_CHANNEL_CLOSED', `the server of ${this.#region.name ?? ''} closed before accepting`)
          : new ShmChannelError('ERR_PEER_DEAD', `the server of ${this.#region.name ?? ''} (pid ${server.pid}) died before accepting`)
      } else if (signal?.aborted === true) {
        failure = new AbortError({ cause: signal.reason })
      } else if (performance.now() >= deadline) {
        failure = new ShmChannelError('ERR_TIMEOUT', `the server of ${this.#region.name ?? ''} (pid ${server.pid}) did not accept within the connect timeout`)
      }
      if (failure !== undefined) {
        // Withdraw, unless the server is taking the slot right now; a dead
        // server will never finish, so then give up all the same.
        const withdrawn = state === SLOT_READY && Atomics.compareExchange(h, word, SLOT_READY, SLOT_CLAIMED) === SLOT_READY
        if (withdrawn || !endLive(server)) throw failure
      }
      const left = deadline - performance.now()
      const slice = left > 0 ? Math.min(left, peerCheckInterval) : peerCheckInterval
      try {
        await waitAsync(h, word, state, { timeout: slice, signal: left > 0 ? signal : undefined })
      } catch (err) {
        if ((err as Error).name !== 'AbortError') throw err
      }
    }
  }

  /** Frees the slot (state first, then owner: see the top of this file) and unmaps. Idempotent. */
  release (): void {
    if (this.#freed) return
    this.#freed = true
    Atomics.store(this.#h, slotWord(this.#slot, SLOT_STATE), SLOT_FREE)
    Atomics.store(this.#h, slotWord(this.#slot, SLOT_OWNER), 0)
    this.#region.close()
  }
}

/**
 * Removes listener `name` if the server it names (pid and start time) is no
 * longer running: the clean-up a client does when it finds its server dead,
 * so a crashed server leaves nothing behind once its clients noticed.
 */
export function reclaimListener (name: string, server: { pid: number, startTime: number }): void {
  let region: Region
  try {
    region = Region.open(name)
  } catch {
    return
  }
  try {
    if (region.size < LISTENER_HEADER_SIZE) return
    const h = new Int32Array(region.buffer)
    if ((Atomics.load(h, W_MAGIC) >>> 0) !== LISTENER_MAGIC) return
    const end = readEnd(h, SERVER_END_OFFSET)
    if (end.pid !== server.pid || end.startTime !== server.startTime) return // a newer server
    if (!endLive(end)) region.unlinkIfSame()
  } finally {
    region.close()
  }
}
