// The key-value store against what a Node user would pick instead, in one run:
// lmdb-js (mmap B-tree), better-sqlite3 in WAL mode as a key-value table, and
// a JSON file rewritten on every change.
//
//   npm run compile && node bench/kv.mjs [--quick] [--out bench/results/kv.json]
//
// 100k keys of 16-32 bytes; values of 64 B and 1 KiB (strings, decoded on
// every get by each store's own string path). Prints ops/s and ratios.
import { fork } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Store } from 'shm-channel'

const quick = process.argv.includes('--quick')
const outIndex = process.argv.indexOf('--out')
const out = outIndex > 0 ? process.argv[outIndex + 1] : undefined
const role = process.argv[2]
const KEYS = quick ? 20_000 : 100_000

/** mulberry32: the same keys and values in every process. */
function prng (seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function makeKeys () {
  const r = prng(1)
  const keys = []
  for (let i = 0; i < KEYS; i++) {
    const len = 16 + Math.floor(r() * 17)
    keys.push(`key:${i}:`.padEnd(len, 'abcdefghijklmnopqrstuvwxyz'[i % 26]))
  }
  return keys
}

function valueOf (size, i) {
  return `v${i}:`.padEnd(size, 'x')
}

// ---- the stores, behind one small interface ---------------------------------

async function openShm (dir, { durable = false } = {}) {
  const store = Store.open(path.join(dir, 'shm.kv'), { codec: 'utf8', durable, initialSize: 1 << 24 })
  return {
    name: 'shm-channel',
    get: (k) => store.get(k),
    set: (k, v) => store.set(k, v),
    setBatch: (entries) => store.batch(entries.map(([key, value]) => ({ type: 'set', key, value }))),
    load: (entries) => { for (let i = 0; i < entries.length; i += 1000) store.batch(entries.slice(i, i + 1000).map(([key, value]) => ({ type: 'set', key, value }))) },
    size: () => store.fileSize,
    close: () => store.close(),
    store
  }
}

async function openLmdb (dir, { durable = false } = {}) {
  const { open } = await import('lmdb')
  const db = open({ path: path.join(dir, 'lmdb.mdb'), encoding: 'string', noSync: !durable, mapSize: 2 ** 32 })
  return {
    name: 'lmdb-js',
    get: (k) => db.get(k),
    set: (k, v) => db.putSync(k, v),
    setBatch: (entries) => db.transactionSync(() => { for (const [k, v] of entries) db.putSync(k, v) }),
    load: (entries) => { for (let i = 0; i < entries.length; i += 1000) db.transactionSync(() => { for (const [k, v] of entries.slice(i, i + 1000)) db.putSync(k, v) }) },
    size: () => fs.statSync(path.join(dir, 'lmdb.mdb')).size,
    close: () => db.close()
  }
}

async function openSqlite (dir, { durable = false } = {}) {
  const Database = (await import('better-sqlite3')).default
  const db = new Database(path.join(dir, 'sqlite.db'))
  db.pragma('journal_mode = WAL')
  db.pragma(`synchronous = ${durable ? 'FULL' : 'OFF'}`)
  db.pragma('busy_timeout = 10000')
  db.exec('CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID')
  const get = db.prepare('SELECT v FROM kv WHERE k = ?').pluck()
  const put = db.prepare('INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)')
  const many = db.transaction((entries) => { for (const [k, v] of entries) put.run(k, v) })
  return {
    name: 'better-sqlite3',
    get: (k) => get.get(k),
    set: (k, v) => put.run(k, v),
    setBatch: (entries) => many(entries),
    load: (entries) => many(entries),
    size: () => fs.statSync(path.join(dir, 'sqlite.db')).size,
    close: () => db.close()
  }
}

async function openJson (dir, { durable = false } = {}) {
  const file = path.join(dir, 'store.json')
  const data = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : {}
  const save = () => {
    fs.writeFileSync(file + '.tmp', JSON.stringify(data))
    if (durable) { const fd = fs.openSync(file + '.tmp', 'r+'); fs.fsyncSync(fd); fs.closeSync(fd) }
    fs.renameSync(file + '.tmp', file)
  }
  return {
    name: 'JSON file',
    get: (k) => data[k],
    set: (k, v) => { data[k] = v; save() },
    setBatch: (entries) => { for (const [k, v] of entries) data[k] = v; save() },
    load: (entries) => { for (const [k, v] of entries) data[k] = v; save() },
    size: () => fs.statSync(file).size,
    close: () => {}
  }
}

const OPENERS = { shm: openShm, lmdb: openLmdb, sqlite: openSqlite, json: openJson }

// ---- measurement ------------------------------------------------------------

/** Runs fn(i) for about `ms` milliseconds (at least `min` calls); ops per second. */
function rate (fn, ms, min = 1) {
  let n = 0
  const start = performance.now()
  let now = start
  while (n < min || now - start < ms) {
    for (let k = 0; k < 64; k++) fn(n++)
    now = performance.now()
  }
  return n / ((now - start) / 1000)
}

function rateOnce (fn, count) {
  const start = performance.now()
  for (let i = 0; i < count; i++) fn(i)
  return count / ((performance.now() - start) / 1000)
}

function tempDir () {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'shm-channel-bench-kv-'))
}

async function fresh (kind, options, keys, size) {
  const dir = tempDir()
  const db = await OPENERS[kind](dir, options)
  db.load(keys.map((k, i) => [k, valueOf(size, i)]))
  return { db, dir }
}

function cleanup ({ db, dir }) {
  db.close()
  fs.rmSync(dir, { recursive: true, force: true })
}

// ---- child roles --------------------------------------------------------------

if (role === 'mixed') {
  // 90% gets, 10% sets on random keys for `ms`; reports ops.
  const [kind, dir, size, ms, seed] = process.argv.slice(3)
  const keys = makeKeys()
  const db = await OPENERS[kind](dir, {})
  const r = prng(Number(seed))
  process.send('ready')
  process.once('message', () => {
    let ops = 0
    const start = performance.now()
    const deadline = start + Number(ms)
    while (performance.now() < deadline) {
      for (let k = 0; k < 32; k++) {
        const i = Math.floor(r() * KEYS)
        if (r() < 0.9) db.get(keys[i])
        else db.set(keys[i], valueOf(Number(size), i))
        ops++
      }
    }
    process.send({ ops, seconds: (performance.now() - start) / 1000 })
    db.close()
    process.disconnect()
  })
} else if (role === 'echo') {
  // Watches 'ping' and answers each change by setting 'pong' to the same value (watch), or polls with get (poll).
  const [dir, mode] = process.argv.slice(3)
  const store = Store.open(path.join(dir, 'shm.kv'), { codec: 'utf8' })
  if (mode === 'watch') {
    const w = store.watch('ping', () => {
      const v = store.get('ping')
      if (v === 'stop') { w.close(); store.close(); process.disconnect(); return }
      store.set('pong', v)
    })
    process.send('ready')
  } else {
    // The busy loop blocks the event loop: start it once 'ready' is written.
    let last = store.get('ping')
    process.send('ready', () => {
      for (;;) {
        const v = store.get('ping')
        if (v === last) continue
        last = v
        if (v === 'stop') break
        store.set('pong', v)
      }
      store.close()
      process.disconnect()
    })
  }
} else {
  const only = { latency: latencyOnly, set: setOnly }[process.env.KV_BENCH_ONLY ?? '']
  await (only ?? main)()
}

async function mixed (kind, processes, size, ms) {
  const { db, dir } = await fresh(kind, {}, makeKeys(), size)
  db.close()
  const children = Array.from({ length: processes }, (_, i) => fork(new URL(import.meta.url).pathname, ['mixed', kind, dir, String(size), String(ms), String(i + 7)]))
  await Promise.all(children.map((c) => new Promise((resolve) => c.once('message', resolve))))
  const results = children.map((c) => new Promise((resolve) => c.once('message', resolve)))
  for (const c of children) c.send('go')
  const done = await Promise.all(results)
  await Promise.all(children.map((c) => new Promise((resolve) => c.exitCode !== null ? resolve() : c.once('exit', resolve))))
  fs.rmSync(dir, { recursive: true, force: true })
  return done.reduce((sum, r) => sum + r.ops / r.seconds, 0)
}

async function latency (mode, rounds) {
  const dir = tempDir()
  const store = Store.open(path.join(dir, 'shm.kv'), { codec: 'utf8' })
  store.set('ping', '-1')
  const child = fork(new URL(import.meta.url).pathname, ['echo', dir, mode])
  await new Promise((resolve) => child.once('message', resolve))
  const samples = []
  /** @type {(value?: unknown) => void} */
  let answered = () => {}
  const w = mode === 'watch' ? store.watch('pong', () => answered()) : undefined
  for (let i = 0; i < rounds; i++) {
    const v = String(i)
    const start = process.hrtime.bigint()
    if (mode === 'watch') {
      let heard = new Promise((resolve) => { answered = resolve })
      store.set('ping', v)
      await heard
      // Events are dispatched in microtasks: nothing lands between this check and the next promise.
      while (store.get('pong') !== v) {
        heard = new Promise((resolve) => { answered = resolve })
        await heard
      }
    } else {
      store.set('ping', v)
      while (store.get('pong') !== v) { // spin: the other process answers within microseconds
      }
    }
    samples.push(Number(process.hrtime.bigint() - start) / 1000 / 2)
  }
  store.set('ping', 'stop')
  w?.close()
  await new Promise((resolve) => child.exitCode !== null ? resolve() : child.once('exit', resolve))
  store.close()
  fs.rmSync(dir, { recursive: true, force: true })
  samples.sort((a, b) => a - b)
  const p = (q) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]
  return { p50: p(0.5), p99: p(0.99), p999: p(0.999) }
}

async function fileSizes () {
  const keys = makeKeys()
  const overwrites = quick ? 200_000 : 1_000_000
  const live = keys.reduce((sum, k) => sum + Buffer.byteLength(k) + 64, 0)
  const r = prng(3)
  const result = {}
  for (const auto of [false, true]) {
    const dir = tempDir()
    const store = Store.open(path.join(dir, 'shm.kv'), { codec: 'utf8', compactMinSize: auto ? 1 << 20 : 2 ** 45 })
    for (let i = 0; i < keys.length; i++) store.set(keys[i], valueOf(64, i))
    for (let n = 0; n < overwrites; n++) {
      const i = Math.floor(r() * KEYS)
      store.set(keys[i], valueOf(64, n))
    }
    if (auto) result.liveRecordBytes = store.verify().live
    if (!auto) {
      result.beforeCompaction = store.fileSize
      store.compact()
      result.afterExplicitCompaction = store.fileSize
    } else {
      result.withAutomaticCompaction = store.fileSize
    }
    store.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
  const dir = tempDir()
  const lm = await openLmdb(dir)
  lm.load(keys.map((k, i) => [k, valueOf(64, i)]))
  for (let n = 0; n < overwrites; n += 100) {
    const batch = []
    for (let k = 0; k < 100; k++) { const i = Math.floor(r() * KEYS); batch.push([keys[i], valueOf(64, n + k)]) }
    lm.setBatch(batch)
  }
  result.lmdb = lm.size()
  lm.close()
  fs.rmSync(dir, { recursive: true, force: true })
  return { overwrites, liveBytes: live, ...result }
}

async function main () {
  const loadAtStart = os.loadavg()
  const keys = makeKeys()
  const r = prng(2)
  const order = Array.from({ length: 1 << 16 }, () => Math.floor(r() * KEYS))
  const MS = quick ? 300 : 1000
  const results = { machine: `${os.cpus()[0]?.model} x${os.cpus().length}, ${os.platform()} ${os.release()}, Node ${process.version}; shared with other jobs`, keys: KEYS, rows: [] }
  const row = (name, values, unit = 'ops/s') => {
    results.rows.push({ name, unit, ...values })
    const base = values['shm-channel']
    const cells = Object.entries(values).map(([k, v]) => `${k} ${fmt(v)}${k !== 'shm-channel' && typeof base === 'number' && typeof v === 'number' ? ` (x${(base / v).toFixed(2)})` : ''}`)
    console.log(`${name.padEnd(44)} ${cells.join('  ')}`)
  }
  console.log(`${KEYS} keys; ratios are shm-channel / other (higher is better for ops/s)`)
  for (const size of [64, 1024]) {
    const gets = {}
    const sets = {}
    for (const kind of ['shm', 'lmdb', 'sqlite', 'json']) {
      const f = await fresh(kind, {}, keys, size)
      gets[f.db.name] = rate((i) => f.db.get(keys[order[i & 0xffff]]), MS)
      if (kind === 'shm') {
        // The same file through a Store that keeps no decoded strings: every get decodes from the mapping.
        const bare = Store.open(path.join(f.dir, 'shm.kv'), { codec: 'utf8', cacheSize: 0 })
        gets['shm-channel, cacheSize 0'] = rate((i) => bare.get(keys[order[i & 0xffff]]), MS)
        bare.close()
      }
      sets[f.db.name] = kind === 'json' ? rateOnce((i) => f.db.set(keys[order[i]], valueOf(size, i)), quick ? 3 : 10) : rate((i) => f.db.set(keys[order[i & 0xffff]], valueOf(size, i)), MS)
      cleanup(f)
    }
    row(`get, ${size} B values`, gets)
    row(`set, not durable, ${size} B values`, sets)
  }
  {
    const perWrite = {}
    const perBatch = {}
    for (const kind of ['shm', 'lmdb', 'sqlite', 'json']) {
      const f = await fresh(kind, { durable: true }, keys, 64)
      perWrite[f.db.name] = rateOnce((i) => f.db.set(keys[order[i]], valueOf(64, i)), kind === 'json' ? 3 : quick ? 50 : 300)
      const batches = kind === 'json' ? 3 : quick ? 20 : 100
      perBatch[f.db.name] = rateOnce((b) => f.db.setBatch(Array.from({ length: 100 }, (_, k) => [keys[order[(b * 100 + k) & 0xffff]], valueOf(64, k)])), batches) * 100
      cleanup(f)
    }
    row('set, durable, one fsync per write, 64 B', perWrite)
    row('set, durable, batches of 100, 64 B', perBatch)
  }
  for (const processes of [1, 2, 4]) {
    const mix = {}
    for (const kind of ['shm', 'lmdb', 'sqlite']) mix[{ shm: 'shm-channel', lmdb: 'lmdb-js', sqlite: 'better-sqlite3' }[kind]] = await mixed(kind, processes, 64, MS)
    row(`mixed 90/10 get/set, ${processes} process(es), 64 B`, mix)
  }
  const poll = await latency('poll', quick ? 500 : 3000)
  const watch = await latency('watch', quick ? 500 : 3000)
  row('set -> watcher in another process (µs, p50/p99/p99.9)', { 'shm-channel': watch.p50, p99: watch.p99, 'p99.9': watch.p999 }, 'µs')
  row('set -> get polling in another process (µs)', { 'shm-channel': poll.p50, p99: poll.p99, 'p99.9': poll.p999 }, 'µs')
  const sizes = await fileSizes()
  results.fileSizes = sizes
  console.log(`file size after ${sizes.overwrites} overwrites of ${KEYS} keys (live ${fmt(sizes.liveBytes)} B, as records ${fmt(sizes.liveRecordBytes)} B): no compaction ${fmt(sizes.beforeCompaction)} B, compacted ${fmt(sizes.afterExplicitCompaction)} B, automatic compaction ${fmt(sizes.withAutomaticCompaction)} B (${(sizes.withAutomaticCompaction / sizes.liveBytes).toFixed(2)}x the live keys and values); lmdb-js ${fmt(sizes.lmdb)} B`)
  results.targets = targets(results.rows, sizes)
  results.loadAverage = { start: loadAtStart, end: os.loadavg() }
  console.log(`\ntargets (load average ${loadAtStart.map((l) => l.toFixed(2)).join(' / ')} at the start, ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')} at the end; meaningful on an idle machine only):`)
  for (const t of results.targets) console.log(`  ${t.name.padEnd(52)} ${t.measured.padEnd(28)} target ${t.target.padEnd(16)} ${t.met ? 'met' : 'MISSED'}`)
  if (out !== undefined) fs.writeFileSync(out, JSON.stringify(results, null, 2) + '\n')
}

/** Each target of the store against the rows of this run: what was measured, the goal, met or not. */
function targets (rows, sizes) {
  const find = (name) => rows.find((r) => r.name === name)
  const ratio = (name, other) => find(name)['shm-channel'] / find(name)[other]
  const list = []
  const atLeast = (name, other, factor) => {
    const x = ratio(name, other)
    list.push({ name: `${name} vs ${other}`, measured: `${x.toFixed(2)}x`, target: `>= ${factor}x`, met: x >= factor })
  }
  for (const size of [64, 1024]) {
    atLeast(`get, ${size} B values`, 'lmdb-js', 3)
    atLeast(`get, ${size} B values`, 'better-sqlite3', 10)
  }
  atLeast('set, not durable, 64 B values', 'lmdb-js', 5)
  atLeast('set, not durable, 1024 B values', 'lmdb-js', 5)
  const batches = ratio('set, durable, batches of 100, 64 B', 'lmdb-js')
  list.push({ name: 'set, durable, batches of 100, 64 B vs lmdb-js', measured: `${batches.toFixed(2)}x`, target: 'within 1.5x', met: batches >= 1 / 1.5 })
  const watch = find('set -> watcher in another process (µs, p50/p99/p99.9)')['shm-channel']
  list.push({ name: 'set -> watcher in another process, p50', measured: `${watch.toFixed(1)} µs`, target: '<= 20 µs', met: watch <= 20 })
  const file = sizes.withAutomaticCompaction / sizes.liveBytes
  list.push({ name: `file after ${sizes.overwrites} overwrites, automatic compaction`, measured: `${file.toFixed(2)}x live keys+values`, target: '<= 2x', met: file <= 2 })
  return list
}

function fmt (v) {
  if (typeof v !== 'number') return String(v)
  if (v >= 100) return Math.round(v).toLocaleString('en-US')
  return v.toFixed(1)
}

/** KV_BENCH_ONLY=set: the two not-durable set rows against lmdb-js, three rounds each, and the file size row. */
async function setOnly () {
  const keys = makeKeys()
  const r = prng(2)
  const order = Array.from({ length: 1 << 16 }, () => Math.floor(r() * KEYS))
  console.log(`load average ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')}`)
  for (const size of [64, 1024]) {
    for (let round = 0; round < 3; round++) {
      const sets = {}
      for (const kind of ['shm', 'lmdb']) {
        const f = await fresh(kind, {}, keys, size)
        sets[f.db.name] = rate((i) => f.db.set(keys[order[i & 0xffff]], valueOf(size, i)), quick ? 300 : 1000)
        cleanup(f)
      }
      const x = sets['shm-channel'] / sets['lmdb-js']
      console.log(`set, not durable, ${size} B: shm-channel ${fmt(sets['shm-channel'])}/s, lmdb-js ${fmt(sets['lmdb-js'])}/s: ${x.toFixed(2)}x (target >= 5x: ${x >= 5 ? 'met' : 'MISSED'})`)
    }
  }
  const sizes = await fileSizes()
  const file = sizes.withAutomaticCompaction / sizes.liveBytes
  console.log(`file after ${sizes.overwrites} overwrites with automatic compaction: ${fmt(sizes.withAutomaticCompaction)} B for ${fmt(sizes.liveBytes)} B of live keys and values: ${file.toFixed(2)}x (target <= 2x: ${file <= 2 ? 'met' : 'MISSED'})`)
  console.log(`load average ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')}`)
}

async function latencyOnly () {
  console.log('poll', await latency('poll', 300))
  console.log('watch', await latency('watch', 300))
}
