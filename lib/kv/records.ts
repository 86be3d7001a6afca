/**
 * Reading records back: whether the bytes at an offset are one whole record
 * (its CRC-32C matches), and a scan that applies whole records and skips
 * damaged ones, resynchronising on the next 8-byte boundary where a whole
 * record starts. A damaged record costs itself and nothing else; a batch
 * counts only if all of its records are whole.
 */
import { crc32c } from './crc32c'
import {
  FLAG_MORE, KIND_CLEAR, KIND_DELETE, KIND_SET, RECORD_HEADER, R_CRC, R_FLAGS, R_KEY_LENGTH, R_KIND, R_VALUE_LENGTH,
  recordSize
} from './layout'

/** Bytes that did not hold a whole record (or held an incomplete batch), as a scan found them. */
export interface Damage {
  /** File offset of the first damaged byte. */
  offset: number
  /** Bytes skipped. */
  length: number
  reason: 'checksum' | 'incomplete batch' | 'truncated'
}

/** Size of the whole record at `p` if bytes[p, limit) start with one, else 0. */
export function recordAt (bytes: Buffer, p: number, limit: number): number {
  if (p + RECORD_HEADER > limit) return 0
  const kind = bytes[p + R_KIND]
  if (kind !== KIND_SET && kind !== KIND_DELETE && kind !== KIND_CLEAR) return 0
  const keyLength = bytes.readUInt16LE(p + R_KEY_LENGTH)
  const valueLength = bytes.readUInt32LE(p + R_VALUE_LENGTH)
  const size = recordSize(keyLength, valueLength)
  if (size > limit - p) return 0
  if (crc32c(bytes, p + 4, p + RECORD_HEADER + keyLength + valueLength) !== bytes.readUInt32LE(p + R_CRC)) return 0
  return size
}

/**
 * Walks bytes[from, to): calls `apply(offset)` for each whole record, a
 * batch's records together once its last one is seen, and `damaged` for
 * each stretch that is not. Never reads outside [from, to).
 */
export function scanRecords (bytes: Buffer, from: number, to: number, apply: (offset: number) => void, damaged: (damage: Damage) => void): void {
  const batch: number[] = []
  let batchStart = 0
  let p = from
  while (p < to) {
    const size = recordAt(bytes, p, to)
    if (size === 0) {
      // Resynchronise: the next 8-byte boundary where a whole record starts.
      let q = p + 8
      while (q < to && recordAt(bytes, q, to) === 0) q += 8
      if (batch.length > 0) {
        damaged({ offset: batchStart, length: p - batchStart, reason: 'incomplete batch' })
        batch.length = 0
      }
      damaged({ offset: p, length: Math.min(q, to) - p, reason: 'checksum' })
      p = q
      continue
    }
    if ((bytes[p + R_FLAGS] & FLAG_MORE) !== 0) {
      if (batch.length === 0) batchStart = p
      batch.push(p)
    } else if (batch.length > 0) {
      for (const q of batch) apply(q)
      apply(p)
      batch.length = 0
    } else {
      apply(p)
    }
    p += size
  }
  if (batch.length > 0) damaged({ offset: batchStart, length: to - batchStart, reason: 'incomplete batch' })
}
