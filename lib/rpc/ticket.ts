/**
 * The client's side of a listener (lib/rpc/listener-layout.ts): a ticket
 * holds one slot from claiming it to freeing it, while the client makes its
 * channels and waits for the server's answer; a bell then rings the server
 * for the connection's requests.
 */
import { setTimeout as sleep } from 'node:timers/promises'

import { AbortError, ShmChannelError } from '../errors'
import { wake, waitAsync } from '../platform/futex'
import { ownStartTime } from '../platform/liveness'
import type { Region } from '../platform/region'
import { openExisting, reclaimIfStale } from '../segment/attach'
import { END_CLOSED, endLive, readEnd } from '../segment/ends'
import { storeU64Atomic } from '../segment/words'
import {
  CAPACITY_HINT_OFFSET, CODEC_NAME_LENGTH_OFFSET, CODEC_NAME_MAX, CODEC_NAME_OFFSET, SERVER_END_OFFSET, SLOT_ACCEPTED,
  SLOT_CLAIMED, SLOT_CLAIMS, SLOT_CONNECTION, SLOT_FREE, SLOT_INDEX, SLOT_OWNER, SLOT_READY, SLOT_REFUSED, SLOT_START_TIME, SLOT_STATE,
  W_DOORBELL, W_SERVER_PARKED, LISTENER, checkListener, slotWord, table, type Table
} from './listener-layout'

/** What a client needs to know of the server, read from the listener header. */
export interface ServerInfo {
  pid: number
  startTime: number
  /** Channel capacity the server asks clients to create; 0 when it leaves it to them. */
  capacity: number
  codec: string
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
  readonly #table: Table
  #freed = false

  private constructor (region: Region, slot: number, server: ServerInfo, connection: number, layout: Table) {
    this.#region = region
    this.#h = new Int32Array(region.buffer)
    this.#slot = slot
    this.server = server
    this.connection = connection
    this.#table = layout
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
      const region = openExisting(name, LISTENER, { allowForeignOwner })
      if (region !== undefined) {
        let ticket: Ticket | undefined
        try {
          const h = new Int32Array(region.buffer)
          const { slots, bits } = checkListener(region.buffer)
          const server = readEnd(h, SERVER_END_OFFSET)
          if (!endLive(server)) {
            why = server.state === END_CLOSED ? 'its server closed' : 'its server is not running'
          } else {
            const info: ServerInfo = {
              pid: server.pid,
              startTime: server.startTime,
              capacity: h[CAPACITY_HINT_OFFSET >>> 2] >>> 0,
              codec: Buffer.from(region.buffer, CODEC_NAME_OFFSET, Math.min(CODEC_NAME_MAX, h[CODEC_NAME_LENGTH_OFFSET >>> 2] >>> 0)).toString('utf8')
            }
            for (let i = 0; i < slots && ticket === undefined; i++) {
              if (Atomics.compareExchange(h, slotWord(i, SLOT_OWNER), 0, process.pid) !== 0) continue
              Atomics.add(h, slotWord(i, SLOT_CLAIMS), 1) // see the top of lib/rpc/listener-layout.ts
              const connection = nextConnection
              nextConnection = (nextConnection + 1) >>> 0
              storeU64Atomic(h, slotWord(i, SLOT_START_TIME), ownStartTime) // not visible before the claim above, as in claimEnd
              h[slotWord(i, SLOT_CONNECTION)] = connection
              Atomics.store(h, slotWord(i, SLOT_STATE), SLOT_CLAIMED)
              ticket = new Ticket(region, i, info, connection, table(slots, bits))
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
      if (state === SLOT_ACCEPTED) {
        this.#index = Atomics.load(h, slotWord(this.#slot, SLOT_INDEX))
        return 'accepted'
      }
      if (state === SLOT_REFUSED) return 'refused'
      const server = readEnd(h, SERVER_END_OFFSET)
      let failure: Error | undefined
      if (!endLive(server)) {
        failure = server.state === END_CLOSED
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

  #index = -1

  /**
   * Frees the slot (state first, then owner: see the top of
   * lib/rpc/listener-layout.ts). Unmaps the listener, unless accepted: then
   * returns the bell of the connection, which keeps it. Idempotent.
   */
  release (): Bell | undefined {
    if (this.#freed) return undefined
    this.#freed = true
    Atomics.store(this.#h, slotWord(this.#slot, SLOT_STATE), SLOT_FREE)
    Atomics.store(this.#h, slotWord(this.#slot, SLOT_OWNER), 0)
    if (this.#index >= 0) return new Bell(this.#region, this.#table, this.#index)
    this.#region.close()
    return undefined
  }
}

/**
 * How a connected client tells its server that a request is waiting: the
 * visit bit of its connection, and a wake of the doorbell only if the
 * server is parked (see the top of lib/rpc/listener-layout.ts).
 */
export class Bell {
  readonly #region: Region
  readonly #h: Int32Array
  readonly #visit: number
  readonly #streaming: number
  readonly #answering: number
  readonly #bit: number
  /** Reply waiters using this bell's mapping of the listener: it is unmapped when closed and not held. */
  #holds = 0
  #closed = false

  constructor (region: Region, layout: Table, index: number) {
    this.#region = region
    this.#h = new Int32Array(region.buffer)
    this.#visit = layout.visit + (index >>> 5)
    this.#streaming = layout.streaming + (index >>> 5)
    this.#answering = layout.answering + (index >>> 5)
    this.#bit = 1 << (index & 31)
  }

  /** After publishing: the bit first, then the parked flag (the order the server's re-check relies on). */
  ring (): void {
    if (this.#closed) return
    const h = this.#h
    // Already set: the server has not taken it yet, and will read what we published.
    if ((Atomics.load(h, this.#visit) & this.#bit) === 0) Atomics.or(h, this.#visit, this.#bit)
    if (Atomics.load(h, W_SERVER_PARKED) !== 0) {
      Atomics.add(h, W_DOORBELL, 1)
      wake(h, W_DOORBELL, 1)
    }
  }

  /** Marks the connection streaming (see the top of lib/rpc/listener-layout.ts) while sends wait for room. */
  streaming (on: boolean): void {
    if (this.#closed) return
    if (on) Atomics.or(this.#h, this.#streaming, this.#bit)
    else Atomics.and(this.#h, this.#streaming, ~this.#bit)
  }

  /** True while the server has a reply for this connection that its channel publishes without a ring. */
  answering (): boolean {
    return (Atomics.load(this.#h, this.#answering) & this.#bit) !== 0
  }

  /** The listener's words, for a reply waiter: mapped until letGo(), even past close(). */
  hold (): Int32Array {
    this.#holds++
    return this.#h
  }

  letGo (): void {
    if (--this.#holds === 0 && this.#closed) this.#region.close()
  }

  /** Unmaps the listener (once no reply waiter holds it). Idempotent. */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    if (this.#holds === 0) this.#region.close()
  }
}

/**
 * Removes listener `name` if the server it names (pid and start time) is no
 * longer running: the clean-up a client does when it finds its server dead,
 * so a crashed server leaves nothing behind once its clients noticed.
 */
export function reclaimListener (name: string, server: { pid: number, startTime: number }): void {
  reclaimIfStale(name, LISTENER, (buffer) => {
    const end = readEnd(new Int32Array(buffer), SERVER_END_OFFSET)
    // A newer server under the name is not ours to judge.
    return end.pid === server.pid && end.startTime === server.startTime && !endLive(end)
  })
}
