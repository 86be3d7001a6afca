// Reading and writing a large file: through a mapping (Region.openFile,
// Region.createFile) versus the fs calls a user would pick instead.
//
//   node bench/file-mmap.mjs [--size 1G] [--reps 5] [--quick]
//
// Everything is measured page-cache-warm: the file being read is read once
// before any timing, and writes land in the page cache (no fsync, for any
// method). Each pass of each method is timed on its own and the methods take
// turns (round robin), so a burst of load from another process on a shared
// machine falls on all of them alike. The table shows the best and the median
// pass in MB/s (10^6 bytes per second).
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import { onCleanup } from './lib/cleanup.mjs'
import { formatSize, parseOptions, parseSize } from './lib/cli.mjs'
import { shm } from './lib/native.mjs'
import { machineInfo, writeResults } from './lib/results.mjs'
import { throughputSummary } from './lib/stats.mjs'
import { fixed, markdownTable } from './lib/table.mjs'

const { Region } = shm

const USAGE = `usage: node bench/file-mmap.mjs [options]
  --size <bytes>   file size, e.g. 1G, 512M (default 1G)
  --reps <n>       timed passes per method (default 5; 3 with --quick)
  --quick          256 MiB file, 3 passes: a smoke run in well under 30 s
  --label <text>   write bench/results/file-mmap-<text>.json instead of file-mmap.json`

const { values } = parseOptions(USAGE, {
  size: { type: 'string' },
  reps: { type: 'string' },
  quick: { type: 'boolean', default: false },
  label: { type: 'string' }
})
const quick = values.quick
const size = values.size !== undefined ? parseSize(values.size) : (quick ? 256 : 1024) * 2 ** 20
const reps = values.reps !== undefined ? Number(values.reps) : (quick ? 3 : 5)
if (!Number.isInteger(reps) || reps < 1) throw new RangeError(`"--reps" must be a positive integer, got ${values.reps}`)

const CHUNK = 2 ** 20
if (size % CHUNK !== 0) throw new RangeError(`"--size" must be a whole number of MiB, got ${size} bytes`)
// fs.readFileSync and fs.writeFileSync cannot handle 2 GiB or more in one buffer.
const WHOLE_BUFFER_LIMIT = 2 ** 31 - 1

// Everything lives in one private directory, removed however the run ends.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shm-channel-bench-files-'))
onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }))
const sourcePath = path.join(dir, 'source.bin')
const writePath = path.join(dir, 'written.bin')

// 1 MiB of random bytes, repeated: the content does not change what a copy
// costs.
const pattern = crypto.randomFillSync(Buffer.allocUnsafe(CHUNK))
const chunk = Buffer.allocUnsafe(CHUNK) // reused destination for chunked reads

/**
 * XOR of every 32-bit word of `view`, folded into `acc`: reads every byte.
 * The same loop reads the mapping and the chunks read with fs.readSync, so
 * the two "read and look at every byte" rows compare like with like. Four
 * lanes and XOR (never an overflow, so never a deoptimization) keep the loop
 * near memory speed; a naive `sum = (sum + v[i]) | 0` loop measured 1 GB/s
 * here, which would have hidden every difference between the read paths.
 * `view.length` must be a multiple of 4.
 */
function checksum (view, acc) {
  let a = acc
  let b = 0
  let c = 0
  let d = 0
  const n = view.length
  for (let i = 0; i < n; i += 4) {
    a ^= view[i]
    b ^= view[i + 1]
    c ^= view[i + 2]
    d ^= view[i + 3]
  }
  return a ^ b ^ c ^ d
}

function int32View (buffer, byteOffset = 0, byteLength = buffer.byteLength) {
  return new Int32Array(buffer, byteOffset, byteLength / 4)
}

function writeSourceFile () {
  const fd = fs.openSync(sourcePath, 'wx')
  try {
    for (let off = 0; off < size; off += CHUNK) {
      // Number each chunk, or the XOR checksum of an even number of equal
      // chunks would be zero whatever was read.
      pattern.writeUInt32LE(Math.imul(off / CHUNK + 1, 0x9e3779b1) >>> 0, 0)
      fs.writeSync(fd, pattern, 0, CHUNK, off)
    }
  } finally {
    fs.closeSync(fd)
  }
}

// ---------------------------------------------------------------- reads ----
// Each returns a checksum (or a byte count) so no work can be optimized away,
// and so the methods can be checked against each other.

const reads = [
  {
    id: 'mmap-xor',
    label: 'Region.openFile (read-only), XOR every 32-bit word, new mapping each pass',
    run () {
      const region = Region.openFile(sourcePath, { readOnly: true })
      try {
        return checksum(int32View(region.buffer), 0)
      } finally {
        region.close()
      }
    }
  },
  {
    id: 'mmap-copy',
    label: 'Region.openFile (read-only), Buffer.copy 1 MiB chunks into a reused Buffer',
    run () {
      const region = Region.openFile(sourcePath, { readOnly: true })
      try {
        const all = Buffer.from(region.buffer)
        let copied = 0
        for (let off = 0; off < size; off += CHUNK) copied += all.copy(chunk, 0, off, off + CHUNK)
        return copied
      } finally {
        region.close()
      }
    }
  },
  {
    id: 'mmap-xor-mapped',
    label: 'same mapping kept open, pages already faulted in, XOR every word',
    setup () { this.region = Region.openFile(sourcePath, { readOnly: true }) },
    run () { return checksum(int32View(this.region.buffer), 0) },
    teardown () { this.region?.close() }
  },
  {
    id: 'readFileSync',
    label: 'fs.readFileSync (a new Buffer of the whole file each pass)',
    skip: size > WHOLE_BUFFER_LIMIT ? 'file larger than fs.readFileSync can return' : undefined,
    run () { return fs.readFileSync(sourcePath).length }
  },
  {
    id: 'readSync',
    label: 'fs.readSync, 1 MiB chunks into a reused Buffer',
    run () {
      const fd = fs.openSync(sourcePath, 'r')
      try {
        let copied = 0
        for (let off = 0; off < size; off += CHUNK) copied += fs.readSync(fd, chunk, 0, CHUNK, off)
        return copied
      } finally {
        fs.closeSync(fd)
      }
    }
  },
  {
    id: 'readSync-xor',
    label: 'fs.readSync, 1 MiB chunks into a reused Buffer, XOR every word',
    run () {
      const fd = fs.openSync(sourcePath, 'r')
      const view = int32View(chunk.buffer, chunk.byteOffset, CHUNK)
      try {
        let acc = 0
        for (let off = 0; off < size; off += CHUNK) {
          fs.readSync(fd, chunk, 0, CHUNK, off)
          acc = checksum(view, acc)
        }
        return acc
      } finally {
        fs.closeSync(fd)
      }
    }
  }
]

// --------------------------------------------------------------- writes ----
// Each pass creates a new file and leaves it in the page cache; the file is
// deleted after the pass, outside the timing. Nothing calls fsync or msync.

let wholeSource // the whole file in one Buffer, for fs.writeFileSync

const writes = [
  {
    id: 'mmap-write',
    label: 'Region.createFile, Buffer.copy 1 MiB chunks into the mapping',
    run () {
      const region = Region.createFile(writePath, size)
      try {
        const all = Buffer.from(region.buffer)
        for (let off = 0; off < size; off += CHUNK) pattern.copy(all, off)
      } finally {
        region.close()
      }
    }
  },
  {
    id: 'writeFileSync',
    label: 'fs.writeFileSync of one Buffer holding the whole file',
    skip: size > WHOLE_BUFFER_LIMIT ? 'file larger than fs.writeFileSync can take' : undefined,
    setup () {
      wholeSource = Buffer.allocUnsafe(size)
      for (let off = 0; off < size; off += CHUNK) pattern.copy(wholeSource, off)
    },
    run () { fs.writeFileSync(writePath, wholeSource, { flag: 'wx' }) },
    teardown () { wholeSource = undefined }
  },
  {
    id: 'writeSync',
    label: 'fs.writeSync, 1 MiB chunks from a reused Buffer',
    run () {
      const fd = fs.openSync(writePath, 'wx')
      try {
        for (let off = 0; off < size; off += CHUNK) fs.writeSync(fd, pattern, 0, CHUNK, off)
      } finally {
        fs.closeSync(fd)
      }
    }
  }
]

function timeOnce (fn) {
  const start = process.hrtime.bigint()
  const result = fn()
  const ns = Number(process.hrtime.bigint() - start)
  return { ns, result }
}

/** Lets the event loop run, untimed: a Ctrl-C is handled (and the files removed) between passes. */
const yieldToLoop = () => new Promise((resolve) => setImmediate(resolve))

/**
 * Runs one untimed warm-up pass of each method, then `reps` timed rounds in
 * which every method runs once. `after` runs after every pass, untimed.
 */
async function measure (methods, after = () => {}) {
  const active = methods.filter((m) => m.skip === undefined)
  const samples = new Map(active.map((m) => [m.id, []]))
  const checks = new Map()
  for (const m of active) m.setup?.()
  try {
    for (const m of active) { // warm-up: JIT, page cache, mapping code paths
      checks.set(m.id, m.run())
      after()
      await yieldToLoop()
    }
    for (let r = 0; r < reps; r++) {
      for (const m of active) {
        const { ns, result } = timeOnce(() => m.run())
        if (result !== checks.get(m.id)) throw new Error(`${m.id}: pass ${r} gave ${result}, warm-up gave ${checks.get(m.id)}`)
        samples.get(m.id).push(size / (ns / 1e9) / 1e6)
        after()
        await yieldToLoop()
      }
    }
  } finally {
    for (const m of active) m.teardown?.()
  }
  return methods.map((m) => ({
    id: m.id,
    label: m.label,
    skipped: m.skip,
    check: checks.get(m.id),
    mbPerSecond: samples.has(m.id) ? throughputSummary(samples.get(m.id)) : undefined,
    samplesMBps: samples.get(m.id)
  }))
}

function rows (results) {
  return results.map((r) => r.skipped !== undefined
    ? [r.label, 'skipped', r.skipped]
    : [r.label, fixed(r.mbPerSecond.best, 0), fixed(r.mbPerSecond.median, 0)])
}

const started = Date.now()
const machine = machineInfo()
console.log(`# file-mmap: ${formatSize(size)} file in ${os.tmpdir()}, ${reps} timed passes per method`)
console.log(`${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}, ${machine.date}\n`)

writeSourceFile()
const readResults = await measure(reads)
// Both read paths must have seen the same bytes.
const sums = readResults.filter((r) => r.id.includes('xor')).map((r) => r.check)
if (new Set(sums).size !== 1) throw new Error(`checksums differ between methods: ${sums.join(', ')}`)
fs.rmSync(sourcePath)

const writeResultsList = await measure(writes, () => fs.rmSync(writePath, { force: true }))

console.log(`## Read ${formatSize(size)}, page cache warm (MB/s, higher is better)\n`)
console.log(markdownTable(['method', 'best', 'median'], rows(readResults)))
console.log(`\n## Write ${formatSize(size)} into a new file, to the page cache, no fsync (MB/s)\n`)
console.log(markdownTable(['method', 'best', 'median'], rows(writeResultsList)))

const seconds = (Date.now() - started) / 1000
const file = writeResults('file-mmap', {
  bench: 'file-mmap',
  machine,
  options: { size, reps, quick, chunk: CHUNK, tmpdir: os.tmpdir() },
  unit: 'MB/s (1e6 bytes per second)',
  reads: readResults,
  writes: writeResultsList,
  seconds
}, values.label)
console.log(`\n${seconds.toFixed(1)} s; raw results in ${path.relative(process.cwd(), file)}`)
