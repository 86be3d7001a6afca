/**
 * How long the waiters of request/response spin before they park, while
 * requests keep coming: the server on its doorbell (lib/rpc/server.ts) and a
 * process's reply waiter on the reply bell (lib/rpc/client.ts).
 *
 * A parked waiter comes back through a native thread and the event loop,
 * which costs tens of microseconds on an idle machine and more on a busy
 * one: longer than the 50 µs an 'adaptive' waiter spins by default. With
 * that budget one late round trip cascades. The client's spin runs out while
 * the server is late, the client parks; its wake-up takes longer than the
 * server's own spin, so the server parks too; the next request has to wake
 * the server, which takes longer than the client's spin... Each side's park
 * makes the other's more likely, and a tenth of back-to-back requests took
 * ten times the median.
 *
 * So a waiter whose last wait ended within LINGER_MICROS (its peer keeps
 * answering) spins up to LINGER_MICROS: long enough to cover the other
 * side's wake-up, so one late round trip stays one. A wait that took longer
 * (the peer went quiet, or answers at a slower pace) puts the budget back to
 * `spinMicros`, so an idle or slow peer costs what it did: the extra spin is
 * spent only while requests come faster than the budget itself, and only
 * in a ping-pong with one peer (see Linger.start).
 */

/** Spin budget, in microseconds, of an 'adaptive' waiter whose last wait was shorter than this. */
export const LINGER_MICROS = 200

/**
 * Times one waiter's waits and gives the spin budget of the next one: the
 * configured `spinMicros`, or LINGER_MICROS after a short wait when the
 * waiter serves one peer. A budget of 0 (the user asked for no spinning)
 * stays 0.
 */
export class Linger {
  readonly #base: number
  #started = 0
  /** The last wait was shorter than LINGER_MICROS. */
  #short = false

  constructor (spinMicros: number) {
    this.#base = spinMicros
  }

  /**
   * The spin budget for the wait about to start, in microseconds; call
   * `ended()` after it. `onePeer`: the waiter answers one peer now (the
   * server's last pass read one connection; the reply waiter has one
   * member). With several, the next message comes from whichever is ready
   * first and a longer spin only takes a core from the peers' processes.
   */
  start (onePeer: boolean): number {
    this.#started = performance.now()
    return onePeer && this.#short && this.#base > 0 ? Math.max(this.#base, LINGER_MICROS) : this.#base
  }

  /** The wait ended (whatever its outcome): remembers whether it was short. */
  ended (): void {
    this.#short = (performance.now() - this.#started) * 1000 < LINGER_MICROS
  }
}
