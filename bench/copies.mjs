// What a private copy of a received message costs, by size, in one process:
// the bytes codec's copy out of shared memory into a Buffer of its own
// (`Buffer.allocUnsafe`: Node's 8 KiB pool below 4 KiB, an ArrayBuffer each
// from 4 KiB) against copies cut from 64 KiB slabs, as the codec makes them
// from 256 B to 16 KiB (lib/codecs.ts). Each copy is checked; one in 1024 is
// kept a while, as a consumer keeps some of what it receives.
//
//   node bench/copies.mjs
import { codecs } from 'shm-channel'

const ring = Buffer.from(new SharedArrayBuffer(1 << 20))
for (let i = 0; i < ring.length; i++) ring[i] = i & 255

/** The copy the bytes codec made before slabs: a Buffer of its own per message. */
function ownBuffer (data, start, end) {
  const out = Buffer.allocUnsafe(end - start)
  out.set(new Uint8Array(data.buffer, data.byteOffset + start, end - start))
  return out
}

const ways = { 'Buffer.allocUnsafe': ownBuffer, 'bytes codec': (data, start, end) => codecs.bytes.decodeRange(data, start, end) }
const sizes = [64, 256, 1024, 4096, 16384, 65536]
console.log('| size | ' + Object.keys(ways).join(' ns | ') + ' ns |')
console.log('|---:|' + Object.keys(ways).map(() => '---:').join('|') + '|')
for (const size of sizes) {
  const cells = []
  for (const copy of Object.values(ways)) {
    let best = Infinity
    let kept = []
    for (let round = 0; round < 5; round++) {
      const n = Math.max(20_000, Math.floor(2e8 / size))
      const t = process.hrtime.bigint()
      for (let i = 0; i < n; i++) {
        const start = (i * 72) & 0x7fff8
        const out = copy(ring, start, start + size)
        if (out[size - 1] !== ((start + size - 1) & 255)) throw new Error('a copy is wrong')
        if ((i & 1023) === 0) kept.push(out)
        if (kept.length > 100) kept = []
      }
      best = Math.min(best, Number(process.hrtime.bigint() - t) / n)
    }
    cells.push(best.toFixed(0))
  }
  console.log(`| ${size} | ${cells.join(' | ')} |`)
}
