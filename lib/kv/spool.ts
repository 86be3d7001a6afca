/**
 * Copies byte ranges of a mapping to consecutive positions of a file through
 * one staging buffer: a `pwrite` per MiB, instead of a page fault for every
 * page of a freshly mapped file. Compaction writes its new file this way; a
 * fault on a page that was never touched costs about 10 us on the virtual
 * machines measured (docs/kv.md), a `pwrite` fills the page cache without any.
 *
 * Writes through the file descriptor and the file's mapping see the same
 * page cache (Linux and macOS mappings are coherent with write(2)), so what
 * a spool wrote is in the mapping once `flush()` returns.
 */
import fs from 'node:fs'

const STAGE_SIZE = 1 << 20

/** One per thread: a compaction runs to its end synchronously, so two never share it. */
let stage: Buffer | undefined

export class Spool {
  readonly #fd: number
  /** File offset of stage[0]. */
  #base: number
  #used = 0
  readonly #limit: number
  readonly #stage: Buffer

  /** Writes to `fd` from file offset `position`, never at or past `limit` (the size reserved for it). */
  constructor (fd: number, position: number, limit: number) {
    this.#fd = fd
    this.#base = position
    this.#limit = limit
    stage ??= Buffer.allocUnsafeSlow(STAGE_SIZE)
    this.#stage = stage
  }

  /** File offset the next byte goes to. */
  get position (): number {
    return this.#base + this.#used
  }

  /** Appends source[from, to). A RangeError if that would pass the limit (nothing is written then). */
  copy (source: Buffer, from: number, to: number): void {
    if (this.position + (to - from) > this.#limit) throw new RangeError(`the spool would write past ${this.#limit} bytes`)
    while (from < to) {
      if (this.#used === STAGE_SIZE) this.flush()
      const n = Math.min(to - from, STAGE_SIZE - this.#used)
      source.copy(this.#stage, this.#used, from, from + n)
      this.#used += n
      from += n
    }
  }

  /** Where file bytes [position, position + length) are in `staged`, if they are all still there; else -1. */
  stagedAt (position: number, length: number): number {
    const at = position - this.#base
    return at >= 0 && at + length <= this.#used ? at : -1
  }

  /** The staging buffer, to change bytes found with stagedAt before they are written. */
  get staged (): Buffer {
    return this.#stage
  }

  /** Writes what is staged. */
  flush (): void {
    let done = 0
    while (done < this.#used) done += fs.writeSync(this.#fd, this.#stage, done, this.#used - done, this.#base + done)
    this.#base += this.#used
    this.#used = 0
  }
}
