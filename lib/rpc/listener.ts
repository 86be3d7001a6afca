/**
 * The server's side of a listener (lib/rpc/listener-layout.ts): creates it
 * under the service's name, sleeps on the doorbell, takes ready slots and
 * answers them, and frees the slots of clients that died while connecting.
 */
import { invalidValue } from '../errors'
import { wake, waitAsync } from '../platform/futex'
import { isAlive } from '../platform/liveness'
import type { Region } from '../platform/region'
import { createOrAttach } from '../segment/attach'
import { closeEnd } from '../segment/ends'
import { loadU64 } from '../segment/words'
import {
  CODEC_NAME_MAX, SERVER_END_OFFSET, SLOT_ACCEPTED, SLOT_ACCEPTING, SLOT_CLAIMED, SLOT_FREE, SLOT_OWNER, SLOT_READY,
  SLOT_REFUSED, SLOT_STATE, SLOT_START_TIME, SLOT_CONNECTION, W_DOORBELL, listenerKind, listenerSize, slotWord, type SlotOwner
} from './listener-layout'

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
    if (codec.length > CODEC_NAME_MAX) throw invalidValue('codec', `must have a name of at most ${CODEC_NAME_MAX} bytes, got ${JSON.stringify(options.codec)}`)
    const { region } = createOrAttach(name, listenerKind({ slots: options.slots, capacity: options.capacity, codec }), {
      size: listenerSize(options.slots),
      mode: options.mode,
      openTimeout: options.openTimeout,
      // The server never joins an existing listener, it only judges whether
      // one is stale: whoever owns the object, the rules for that are the same.
      allowForeignOwner: true
    })
    return new Listener(region, options.slots)
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
      startTime: loadU64(h, slotWord(i, SLOT_START_TIME)),
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
