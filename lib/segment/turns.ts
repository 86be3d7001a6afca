/**
 * Writes that must wait for room take turns: each runs once the one before
 * it has finished (written, failed or given up), so a writer's messages keep
 * the order of its calls. Used by the fan-in producer and the topic
 * publisher (the channel's producer keeps a queue of its own, which also
 * expires waiting sends one by one).
 */
export class Turns {
  #last: Promise<void> = Promise.resolve()
  #waiting = 0

  /** How many writes are waiting or running; a write that finds room may go ahead of none of them. */
  get waiting (): number { return this.#waiting }

  /** Runs `write` after every write queued before it; settles as it does. */
  async take (write: () => Promise<void>): Promise<void> {
    this.#waiting++
    const turn = this.#last.then(write)
    this.#last = turn.catch(() => {})
    try {
      await turn
    } finally {
      this.#waiting--
    }
  }
}
