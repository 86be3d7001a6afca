/**
 * The server's side of a listener (lib/rpc/listener-layout.ts): creates it
 * under the service's name, sleeps on the doorbell, takes ready slots and
 * answers them, takes the visit bits clients set after each request, and
 * frees the slots of clients that died while connecting.
 */
import { invalidValue } from '../errors'
import { wake } from '../platform/futex'
import { isAlive } from '../platform/liveness'
import type { Region } from '../platform/region'
import { createOrAttach } from '../segment/attach'
import { closeEnd } from '../segment/ends'
import { waitAsync, type WaitSettings, type WaitSpec } from '../segment/wait'
import { loadU64Atomic } from '../segment/words'
import {
  CODEC_NAME_MAX, SERVER_END_OFFSET, SLOT_ACCEPTED, SLOT_ACCEPTING, SLOT_CLAIMED, SLOT_CLAIMS, SLOT_FREE, SLOT_INDEX, SLOT_OWNER, SLOT_READY,
  SLOT_REFUSED, SLOT_STATE, SLOT_START_TIME, SLOT_CONNECTION, W_CLIENTS_PARKED, W_DOORBELL, W_REPLY_BELL, W_SERVER_PARKED, listenerKind, listenerSize, slotWord,
  table, tableBits, type SlotOwner, type Table
} from './listener-layout'

export interface ListenOptions {
  slots: number
  /** Connections at most: the size of the connection table. */
  maxClients: number
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
  readonly #table: Table
  /** Connection indexes not in use, the lowest last (so the bitmap words in use stay few). */
  readonly #freeIndexes: number[] = []
  /** The doorbell as the last scan saw it: a change means a client readied a slot (or rang). */
  #seen = 0
  /** How the server waits on the doorbell; made at the first wait. */
  #spec: WaitSpec | undefined
  closed = false

  private constructor (region: Region, slots: number, bits: number) {
    this.#region = region
    this.name = region.name ?? ''
    this.slots = slots
    this.#h = new Int32Array(region.buffer)
    this.#table = table(slots, bits)
    for (let i = bits - 1; i >= 0; i--) this.#freeIndexes.push(i)
  }

  /**
   * Creates the listener `name` and takes its server end. A listener left by
   * a server that closed or died is reclaimed; one whose server lives is
   * ERR_END_TAKEN.
   */
  static create (name: string, options: ListenOptions): Listener {
    const codec = Buffer.from(options.codec, 'utf8')
    if (codec.length > CODEC_NAME_MAX) throw invalidValue('codec', `must have a name of at most ${CODEC_NAME_MAX} bytes, got ${JSON.stringify(options.codec)}`)
    const bits = tableBits(options.maxClients)
    const { region } = createOrAttach(name, listenerKind({ slots: options.slots, bits, capacity: options.capacity, codec }), {
      size: listenerSize(options.slots, bits),
      mode: options.mode,
      openTimeout: options.openTimeout,
      // The server never joins an existing listener, it only judges whether
      // one is stale: whoever owns the object, the rules for that are the same.
      allowForeignOwner: true
    })
    return new Listener(region, options.slots, bits)
  }

  /** Loads the doorbell before a scan of the slots: a client that readies its slot later also changes it. */
  mark (): void {
    this.#seen = Atomics.load(this.#h, W_DOORBELL)
  }

  /** True when a client rang since mark() or set a visit bit: what ends the server's wait. */
  readonly #due = (): boolean => {
    const h = this.#h
    if (Atomics.load(h, W_DOORBELL) !== this.#seen) return true
    const { visit, words } = this.#table
    for (let w = visit; w < visit + words; w++) if (Atomics.load(h, w) !== 0) return true
    return false
  }

  /**
   * Waits until a client rings or sets a visit bit (spinning first, then
   * parked on the doorbell: lib/segment/wait.ts; see the top of
   * lib/rpc/listener-layout.ts for why no ring is lost), `timeout` ms pass
   * (ERR_TIMEOUT) or `signal` aborts (AbortError).
   */
  async sleep (settings: WaitSettings, timeout: number, signal: AbortSignal): Promise<void> {
    this.#spec ??= {
      header: this.#h,
      parkedFlag: W_SERVER_PARKED,
      waitWord: W_DOORBELL,
      strategy: settings.wait,
      spinMicros: settings.spinMicros,
      peerCheckInterval: timeout,
      ready: this.#due,
      checkPeer: () => {}
    }
    await waitAsync(this.#spec, timeout, signal)
  }

  /**
   * Calls `visit(index)` for each connection whose client set its visit bit,
   * clearing the bits first (a bit set again after the exchange means a
   * later request: the next call sees it).
   */
  takeVisits (visit: (index: number) => void): void {
    const h = this.#h
    const { visit: first, words } = this.#table
    for (let w = 0; w < words; w++) {
      if (Atomics.load(h, first + w) === 0) continue
      let bits = Atomics.exchange(h, first + w, 0)
      while (bits !== 0) {
        const bit = 31 - Math.clz32(bits & -bits)
        bits &= bits - 1
        visit(w * 32 + bit)
      }
    }
  }

  /** True while the client of connection `index` has a message its channel publishes without ringing. */
  streaming (index: number): boolean {
    return (Atomics.load(this.#h, this.#table.streaming + (index >>> 5)) & (1 << (index & 31))) !== 0
  }

  /** Marks connection `index` answering (a reply its channel publishes later, without a ring) or not. */
  answering (index: number, on: boolean): void {
    const w = this.#table.answering + (index >>> 5)
    if (on) Atomics.or(this.#h, w, 1 << (index & 31))
    else Atomics.and(this.#h, w, ~(1 << (index & 31)))
  }

  /**
   * After writing replies (or ending connections): adds 1 to the reply bell,
   * then wakes the clients' reply waiters only if one is parked (see the top
   * of lib/rpc/listener-layout.ts). One call per pass, whatever the replies.
   */
  ringReplies (): void {
    if (this.closed) return
    Atomics.add(this.#h, W_REPLY_BELL, 1)
    if (Atomics.load(this.#h, W_CLIENTS_PARKED) !== 0) wake(this.#h, W_REPLY_BELL)
  }

  /** A free connection index, or -1 when the table is full. */
  takeIndex (): number {
    return this.#freeIndexes.pop() ?? -1
  }

  /** Gives back a connection's index; its bits are cleared, so a dead client's streaming bit does not outlive it. */
  freeIndex (index: number): void {
    const mask = ~(1 << (index & 31))
    Atomics.and(this.#h, this.#table.visit + (index >>> 5), mask)
    Atomics.and(this.#h, this.#table.streaming + (index >>> 5), mask)
    Atomics.and(this.#h, this.#table.answering + (index >>> 5), mask)
    this.#freeIndexes.push(index)
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
      startTime: loadU64Atomic(h, slotWord(i, SLOT_START_TIME)),
      connection: h[slotWord(i, SLOT_CONNECTION)] >>> 0
    }
  }

  /** Answers a taken slot (ACCEPTED with the connection's index, or REFUSED) and wakes its client, who frees the slot. */
  answer (i: number, state: typeof SLOT_ACCEPTED | typeof SLOT_REFUSED, index = -1): void {
    // The index before the state: the client that sees ACCEPTED sees its index.
    Atomics.store(this.#h, slotWord(i, SLOT_INDEX), index)
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
      const claims = Atomics.load(h, slotWord(i, SLOT_CLAIMS))
      const pid = Atomics.load(h, slotWord(i, SLOT_OWNER)) >>> 0
      if (pid === 0) continue
      const state = Atomics.load(h, slotWord(i, SLOT_STATE))
      // Before CLAIMED the start time may not be written yet: judge by pid alone.
      const owner = this.#owner(i)
      // Claimed again meanwhile: these loads may pair one client's pid with
      // another's start time. Its owner has just claimed it: the next sweep looks.
      if (Atomics.load(h, slotWord(i, SLOT_CLAIMS)) !== claims || owner.pid !== pid) continue
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
