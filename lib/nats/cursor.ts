/**
 * A bridge's durable cursor: a few words in a small shared memory object of
 * its own (`<channel>.nats-out` / `<channel>.nats-in`), beside the channel.
 * It lives as long as the machine does, like the channel's ring: a bridge
 * killed at any instant finds it as it left it.
 *
 * A cursor is written in one of two slots, then made current by one store
 * of the generation word: a bridge killed half way through a write leaves
 * the previous slot current, never a torn one.
 *
 *   word 0  magic "SNBC"
 *   word 1  generation: slot (generation & 1) is current
 *   word 2  identity: a random number fixed when the cursor is made, part
 *           of every message id the bridge gives JetStream
 *   words 4..11 and 12..19: the two slots, each
 *           0-1  sequence (u64, two u32 words, low first)
 *           2    ring position of the channel end the bridge holds
 *           3    count of messages pending (see lib/nats/bridge.ts)
 *           4-5  inode of the channel's shared memory object (u64)
 *           6-7  base: the sequence before `sequence` (u64; see lib/nats/bridge.ts)
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

import { Region } from '../platform/region'

const MAGIC = 0x43424e53
const SIZE = 128
const SLOT = [4, 12]

export interface CursorState {
  /** The sequence number the cursor counts (whose, see the bridge). */
  sequence: number
  /** Ring position the sequence refers to. */
  position: number
  /** Messages in flight from `position` on when the cursor was written. */
  pending: number
  /** Inode of the channel's shared memory object, 0 if unknown. */
  inode: number
  /** A second sequence, when the bridge needs one (default 0). */
  base?: number
}

export class Cursor {
  readonly #region: Region
  readonly #words: Int32Array
  /** Random per cursor: message ids stay unique across a cursor removed and made again. */
  readonly identity: string

  private constructor (region: Region) {
    this.#region = region
    this.#words = new Int32Array(region.buffer, 0, SIZE / 4)
    const w = this.#words
    if (Atomics.compareExchange(w, 0, 0, -1) === 0) {
      // First opener: a random identity, then the magic (last) says the cursor is ready.
      w[2] = crypto.randomBytes(4).readInt32LE(0)
      Atomics.store(w, 0, MAGIC)
    }
    this.identity = (w[2] >>> 0).toString(36)
  }

  /** Opens the cursor object `name`, creating it (empty) if there is none. */
  static open (name: string): Cursor {
    return new Cursor(Region.openOrCreate(name, SIZE))
  }

  /** Removes the cursor object `name`, if any. */
  static remove (name: string): void {
    try { fs.rmSync(path.join('/dev/shm', name.replace(/^\//, ''))) } catch {}
  }

  /** The current state; undefined for a cursor never written. */
  read (): Required<CursorState> | undefined {
    const w = this.#words
    const generation = Atomics.load(w, 1)
    if (generation === 0) return undefined
    const s = SLOT[generation & 1]
    return {
      sequence: (w[s] >>> 0) + (w[s + 1] >>> 0) * 2 ** 32,
      position: w[s + 2] >>> 0,
      pending: w[s + 3] >>> 0,
      inode: (w[s + 4] >>> 0) + (w[s + 5] >>> 0) * 2 ** 32,
      base: (w[s + 6] >>> 0) + (w[s + 7] >>> 0) * 2 ** 32
    }
  }

  /**
   * Writes a state in the other slot, then makes it current with one store.
   * Positional (no object): the from-stream bridge writes once per message.
   */
  write (sequence: number, position: number, pending: number, inode: number, base = 0): void {
    const w = this.#words
    const generation = Atomics.load(w, 1)
    const next = generation + 1 === 0x7fffffff ? 1 : generation + 1
    const s = SLOT[next & 1]
    w[s] = sequence % 2 ** 32
    w[s + 1] = Math.floor(sequence / 2 ** 32)
    w[s + 2] = position | 0
    w[s + 3] = pending
    w[s + 4] = inode % 2 ** 32
    w[s + 5] = Math.floor(inode / 2 ** 32)
    w[s + 6] = base % 2 ** 32
    w[s + 7] = Math.floor(base / 2 ** 32)
    // The store that publishes the slot: everything above is in memory before it.
    Atomics.store(w, 1, next)
  }

  close (): void {
    this.#region.close()
  }
}
