/**
 * Self-checking topic messages for test/pubsub and its fixtures: message
 * number `seq` of `size` bytes (12 or more) is a pure function of both, so
 * a reader can tell a whole message from a torn one.
 *
 *   +0 u32 seq   +4 u32 size   +8 u32 checksum of the bytes from 12   +12 pattern
 *
 * No imports from tap: fixtures use this too.
 */
export function topicMessage (seq: number, size: number): Buffer {
  const out = Buffer.allocUnsafe(size)
  out.writeUInt32LE(seq >>> 0, 0)
  out.writeUInt32LE(size, 4)
  let sum = seq >>> 0
  for (let i = 12; i < size; i++) {
    const b = (seq * 31 + i * 7) & 0xff
    out[i] = b
    sum = (Math.imul(sum, 33) + b) >>> 0
  }
  out.writeUInt32LE(sum, 8)
  return out
}

/** The message number of a whole message, or -1 if it is torn. */
export function checkTopicMessage (data: Uint8Array): number {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  if (b.length < 12 || b.readUInt32LE(4) !== b.length) return -1
  const seq = b.readUInt32LE(0)
  let sum = seq
  for (let i = 12; i < b.length; i++) {
    if (b[i] !== ((seq * 31 + i * 7) & 0xff)) return -1
    sum = (Math.imul(sum, 33) + b[i]) >>> 0
  }
  return sum === b.readUInt32LE(8) ? seq : -1
}

/** Size of message `seq` in tests that vary sizes: 12 to 12 + spread - 1 bytes. */
export function topicMessageSize (seq: number, spread: number): number {
  return 12 + ((seq * 2654435761) >>> 0) % spread
}
