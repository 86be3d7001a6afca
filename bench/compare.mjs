// shm-channel against what a user would pick instead, in one run on one
// machine, side by side, between two real processes.
//
//   node bench/compare.mjs [--quick] [--only shm,unix,ipc,port,c,js] [--label <text>]
//
// Every measurement runs in fresh processes: this script forks itself as
// the driver ("A": producer / initiator), which forks the peer ("B":
// consumer / echo) — or, for MessagePort, starts a worker thread, and for
// the C reference runs a program that forks itself. Transports live in
// bench/alt/<name>.mjs, each with an `a` and a `b` side:
//
//   shm    shm-channel: each wait strategy; raw bytes and the default json
//          codec; the code people write (await send / for await, await
//          receive()), the simple API and the batching / zero-copy one
//   unix   net over a Unix domain socket, prebuilt length-prefixed frames,
//          per-message writes or corked bursts, parsed in place; and
//          newline-delimited JSON objects, corked
//   ipc    child_process IPC, serialization 'json' and 'advanced'
//   port   worker_threads MessagePort (in-process reference)
//   c      bench/c/ref.c, built with `cc -O2`: spin and futex ping-pong, and
//          an SPSC ring over a shared mapping
//   js     the same spin ping-pong as the C one, in plain JavaScript over a
//          shared mapping: the floor of any JavaScript library
//
// Measured: one-way throughput for 16 B .. 1 MiB messages (time-bounded, the
// receiver counts and checks length and first byte of each message, the rate
// is taken after a 20 % warm-up), round-trip latency percentiles for 64 B,
// 4 KiB and 1 MiB, the CPU a parked consumer burns while idle, and peak RSS
// of both ends with a slow consumer. Prints Markdown; writes
// bench/results/compare.json (or compare-<label>.json).
import { fork } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { onCleanup } from './lib/cleanup.mjs'
import { parseOptions } from './lib/cli.mjs'
import { machineInfo, writeResults } from './lib/results.mjs'
import { latencySummary } from './lib/stats.mjs'
import { fixed, markdownTable } from './lib/table.mjs'
import { exited, nextMessage } from './lib/child.mjs'

const USAGE = `usage: node bench/compare.mjs [options]
  --quick          short runs (under a minute): 0.2 s per throughput point,
                   3000 round trips, 1 s idle
  --only <list>    comma-separated transports: shm,unix,ipc,port,c,js
  --rows <list>    comma-separated row ids (e.g. shm-simple,shm-spin,unix-cork)
  --sizes <list>   comma-separated message sizes in bytes (e.g. 64,4096)
  --cpu-prof-dir <dir>  run every process with node --cpu-prof into <dir>
                   (to see which side is the bottleneck)
  --label <text>   write bench/results/compare-<text>.json instead of compare.json`

const { values } = parseOptions(USAGE, {
  quick: { type: 'boolean', default: false },
  only: { type: 'string' },
  label: { type: 'string' },
  rows: { type: 'string' },
  sizes: { type: 'string' },
  'cpu-prof-dir': { type: 'string' },
  role: { type: 'string' },
  spec: { type: 'string' }
})

const selfPath = fileURLToPath(import.meta.url)
const altDir = path.join(path.dirname(selfPath), 'alt')

// ------------------------------------------------------ process plumbing ----

// The driver's children inherit its execArgv (fork's default), --cpu-prof included.
const execArgv = values['cpu-prof-dir'] === undefined ? process.execArgv : [...process.execArgv, '--cpu-prof', `--cpu-prof-dir=${path.resolve(values['cpu-prof-dir'])}`]

function forkRole (role, spec, options = {}) {
  const child = fork(selfPath, ['--role', role, '--spec', JSON.stringify(spec)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: role === 'A' ? execArgv : process.execArgv, ...options })
  const kill = onCleanup(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  child.once('exit', kill)
  return child
}

async function roleA (spec) {
  const mod = await import(path.join(altDir, `${spec.transport}.mjs`))
  const peers = []
  const ctx = {
    onCleanup,
    nextMessage,
    exited,
    forkB (bSpec, options) {
      const b = forkRole('B', bSpec, options)
      process.send({ type: 'peer', pid: b.pid })
      peers.push(b)
      return b
    }
  }
  let message
  try {
    message = { type: 'result', result: await mod.a(spec, ctx) }
    // Let the peer finish on its own (and write its --cpu-prof profile).
    let timer
    await Promise.race([Promise.all(peers.map(exited)), new Promise((resolve) => { timer = setTimeout(resolve, 5000) })])
    clearTimeout(timer)
  } catch (err) {
    message = { type: 'result', error: String(err?.stack ?? err) }
  }
  process.send(message, () => process.exit(0))
}

async function roleB (spec) {
  const mod = await import(path.join(altDir, `${spec.transport}.mjs`))
  const pending = []
  // A dead driver leaves nobody to report to.
  process.on('disconnect', () => setTimeout(() => process.exit(0), 1000).unref())
  const ctx = {
    send (msg) { pending.push(new Promise((resolve) => process.send(msg, resolve))) }
  }
  await mod.b(spec, ctx)
  await Promise.all(pending)
  if (process.connected) process.disconnect()
}

/** Removes what a driver with pid `pid` may have left: shm names, socket directories. */
function sweep (pid) {
  const prefix = `shm-channel-compare-${pid}-`
  for (const dir of ['/dev/shm', os.tmpdir()]) {
    let names = []
    try { names = fs.readdirSync(dir) } catch {}
    for (const name of names) if (name.startsWith(prefix)) fs.rmSync(path.join(dir, name), { recursive: true, force: true })
  }
}

/** Runs one measurement in a fresh driver process; { error } if it fails or overruns `budgetMs`. */
async function measure (spec, budgetMs) {
  const a = forkRole('A', spec)
  const peers = []
  a.on('message', (/** @type {any} */ m) => { if (m?.type === 'peer') peers.push(m.pid) })
  // Also when this process is interrupted: the driver's peers and leftovers.
  const reap = onCleanup(() => {
    for (const pid of peers) { try { process.kill(pid, 'SIGKILL') } catch {} }
    sweep(a.pid)
  })
  try {
    const m = await nextMessage(a, 'result', budgetMs)
    if (m.error !== undefined) return { error: m.error }
    return m.result
  } catch (err) {
    return { error: err.message }
  } finally {
    if (a.exitCode === null && a.signalCode === null) {
      const timer = setTimeout(() => a.kill('SIGKILL'), 2000)
      await exited(a)
      clearTimeout(timer)
    }
    reap()
  }
}

// -------------------------------------------------------------- the plan ----

function plan (quick) {
  const SIZES = [16, 64, 256, 4096, 65536, 1 << 20]
  // Objects whose JSON is this long: small and medium ones.
  const OBJECT_SIZES = [64, 256, 4096]
  const RTT_SIZES = [64, 4096, 1 << 20]
  const tput = [
    { id: 'shm-await', label: 'shm-channel bytes, idiomatic: await send / for await (adaptive)', transport: 'shm', codec: 'bytes', wait: 'adaptive', variant: 'await' },
    { id: 'shm-await-receive', label: 'shm-channel bytes, await send / await receive() (adaptive)', transport: 'shm', codec: 'bytes', wait: 'adaptive', variant: 'await-receive' },
    { id: 'shm-json-objects', label: 'shm-channel json objects, idiomatic: await send / for await (adaptive)', transport: 'shm', codec: 'json', wait: 'adaptive', variant: 'await', payload: 'object', sizes: OBJECT_SIZES },
    { id: 'shm-simple', label: 'shm-channel bytes, simple: trySend / receiveSync (adaptive)', transport: 'shm', codec: 'bytes', wait: 'adaptive', variant: 'simple' },
    { id: 'shm-batch-spin', label: 'shm-channel bytes, batch: cork+trySend / readEach (spin)', transport: 'shm', codec: 'bytes', wait: 'spin', variant: 'batch' },
    { id: 'shm-batch-adaptive', label: 'shm-channel bytes, batch: cork+trySend / readEach (adaptive)', transport: 'shm', codec: 'bytes', wait: 'adaptive', variant: 'batch' },
    { id: 'shm-batch-block', label: 'shm-channel bytes, batch: cork+trySend / readEach (block)', transport: 'shm', codec: 'bytes', wait: 'block', variant: 'batch' },
    { id: 'shm-json', label: 'shm-channel json (string), simple (adaptive)', transport: 'shm', codec: 'json', wait: 'adaptive', variant: 'simple' },
    { id: 'unix-write', label: 'Unix socket, write per message', transport: 'unix', variant: 'write' },
    { id: 'unix-cork', label: 'Unix socket, corked bursts (writev)', transport: 'unix', variant: 'cork' },
    { id: 'unix-ndjson', label: 'Unix socket, newline-delimited JSON objects, corked bursts', transport: 'unix', variant: 'ndjson', sizes: OBJECT_SIZES },
    { id: 'ipc-json', label: "child_process IPC 'json' (string)", transport: 'ipc', serialization: 'json' },
    { id: 'ipc-advanced', label: "child_process IPC 'advanced' (Buffer)", transport: 'ipc', serialization: 'advanced' },
    { id: 'port', label: 'MessagePort, worker thread (in-process)', transport: 'port' },
    { id: 'c-ring', label: 'C SPSC ring, spin (reference)', transport: 'c' }
  ]
  const rtt = [
    { id: 'shm-spin', label: 'shm-channel bytes, spin', transport: 'shm', codec: 'bytes', wait: 'spin' },
    { id: 'shm-adaptive', label: 'shm-channel bytes, adaptive', transport: 'shm', codec: 'bytes', wait: 'adaptive' },
    { id: 'shm-block', label: 'shm-channel bytes, block', transport: 'shm', codec: 'bytes', wait: 'block' },
    { id: 'shm-json', label: 'shm-channel json (string), adaptive', transport: 'shm', codec: 'json', wait: 'adaptive' },
    { id: 'unix', label: 'Unix socket', transport: 'unix' },
    { id: 'ipc-json', label: "child_process IPC 'json'", transport: 'ipc', serialization: 'json' },
    { id: 'ipc-advanced', label: "child_process IPC 'advanced'", transport: 'ipc', serialization: 'advanced' },
    { id: 'port', label: 'MessagePort (in-process)', transport: 'port' },
    { id: 'c-spin', label: 'C spin (reference)', transport: 'c', variant: 'spin' },
    { id: 'js-spin', label: 'JavaScript spin, no library (floor)', transport: 'js' },
    { id: 'c-futex', label: 'C futex (reference)', transport: 'c', variant: 'futex' }
  ]
  return {
    sizes: SIZES,
    rttSizes: RTT_SIZES,
    tput,
    rtt,
    seconds: quick ? 0.2 : 1.5,
    trips: (size) => size >= (1 << 20) ? (quick ? 100 : 2000) : (quick ? 3000 : 100_000),
    warmup: (size) => size >= (1 << 20) ? (quick ? 10 : 100) : (quick ? 300 : 5000),
    maxSeconds: (size) => size >= (1 << 20) ? (quick ? 1 : 5) : (quick ? 0.5 : 10),
    rounds: quick ? 1 : 2,
    idleSeconds: quick ? 1 : 5,
    rssSeconds: quick ? 0.5 : 3,
    rssSize: 4096
  }
}

// ------------------------------------------------------------- reporting ----

const SIZE_NAMES = { 16: '16 B', 64: '64 B', 256: '256 B', 4096: '4 KiB', 65536: '64 KiB', 1048576: '1 MiB' }

function rate (x) {
  if (x === undefined || Number.isNaN(x)) return '—'
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)}k`
  return x.toFixed(0)
}

/** Why a throughput result cannot be trusted, or undefined. */
function tputProblem (r) {
  if (r === undefined) return 'not run'
  if (r.error !== undefined) return 'error'
  if (r.bad > 0) return `${r.bad} bad`
  if (r.sent !== undefined && r.sent !== r.n) return `sent ${r.sent} got ${r.n}`
  if (!(r.measured > 0)) return 'no data'
  return undefined
}

/** Fraction of all CPUs busy over `ms` (from /proc/stat); with nothing of ours running, that is other work. */
async function foreignBusy (ms) {
  const read = () => {
    try {
      const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
      return { idle: f[3] + (f[4] ?? 0), total: f.reduce((a, b) => a + b, 0) }
    } catch { return undefined }
  }
  const a = read()
  await new Promise((resolve) => setTimeout(resolve, ms))
  const b = read()
  if (a === undefined || b === undefined || b.total === a.total) return 0
  return 1 - (b.idle - a.idle) / (b.total - a.total)
}

function verdict (ok) { return ok === undefined ? 'n/a' : ok ? '**met**' : '**missed**' }

async function main () {
  const quick = values.quick
  const only = values.only === undefined ? undefined : new Set(values.only.split(','))
  const rowIds = values.rows === undefined ? undefined : new Set(values.rows.split(','))
  const want = (row) => (only === undefined || only.has(row.transport)) && (rowIds === undefined || row.id === undefined || rowIds.has(row.id))
  const p = plan(quick)
  if (values.sizes !== undefined) {
    const sizes = values.sizes.split(',').map(Number)
    p.sizes = p.sizes.filter((s) => sizes.includes(s))
    p.rttSizes = p.rttSizes.filter((s) => sizes.includes(s))
  }
  const started = performance.now()
  const notes = []
  const errors = []

  const c = want({ transport: 'c' }) ? (await import(path.join(altDir, 'c.mjs'))).compile() : { error: 'not selected' }
  if (c.dir !== undefined) onCleanup(() => fs.rmSync(c.dir, { recursive: true, force: true }))
  if (c.error !== undefined) notes.push(`C reference skipped: ${c.error}`)
  const runnable = (row) => want(row) && (row.transport !== 'c' || c.binary !== undefined)

  const busyBefore = await foreignBusy(1000)
  if (busyBefore > 0.1) notes.push(`Before the run, the CPUs were ${(100 * busyBefore).toFixed(0)} % busy with other work: numbers are noisy.`)

  // Throughput: rounds taking turns over every row and size, so that load
  // from elsewhere falls on all alike; the best round counts.
  const tput = {}
  const tputRounds = {}
  for (let round = 0; round < p.rounds; round++) {
    for (const row of p.tput.filter(runnable)) {
      tputRounds[row.id] ??= {}
      for (const size of p.sizes.filter((s) => row.sizes === undefined || row.sizes.includes(s))) {
        const spec = { ...row, kind: 'tput', size, seconds: p.seconds, binary: c.binary }
        const r = await measure(spec, p.seconds * 1000 + 60_000)
        if (r.error !== undefined) errors.push({ id: row.id, size, kind: 'tput', round, error: r.error })
        ;(tputRounds[row.id][size] ??= []).push(r)
        process.stderr.write(`tput ${row.id} ${size}: ${rate(r.msgPerSec)} msg/s ${fixed(r.mbPerSec)} MB/s ${tputProblem(r) ?? ''}\n`)
      }
    }
  }
  for (const [id, bySize] of Object.entries(tputRounds)) {
    tput[id] = {}
    for (const [size, list] of Object.entries(bySize)) {
      // Any failed round fails the point: a check that failed once is a bug, not noise.
      const failed = list.find((r) => tputProblem(r) !== undefined)
      const best = failed ?? list.reduce((x, y) => (y.msgPerSec > x.msgPerSec ? y : x))
      tput[id][size] = { ...best, roundsMsgPerSec: list.map((r) => r.msgPerSec) }
    }
  }

  // Round trips, in rounds as well: the hypervisor places the two vCPUs
  // differently from one minute to the next (a C spin round trip is either
  // ~0.08 or ~0.5 µs here), and that should fall on all rows alike. The
  // round with the lowest p50 counts; a failed round fails the point.
  const rtt = {}
  for (let round = 0; round < p.rounds; round++) {
    for (const row of p.rtt.filter(runnable)) {
      rtt[row.id] ??= {}
      for (const size of p.rttSizes) {
        const spec = { ...row, kind: 'rtt', size, trips: p.trips(size), warmup: p.warmup(size), maxSeconds: p.maxSeconds(size), binary: c.binary }
        const r = await measure(spec, p.maxSeconds(size) * 3000 + 60_000)
        if (r.error !== undefined) errors.push({ id: row.id, size, kind: 'rtt', round, error: r.error })
        else if (r.summary === undefined) {
          r.summary = latencySummary(r.samples)
          delete r.samples
        }
        const prev = rtt[row.id][size]
        const rounds = [...(prev?.roundsP50 ?? []), r.summary?.p50]
        const keep = prev === undefined || r.error !== undefined || (prev.error === undefined && r.summary.p50 < prev.summary.p50) ? r : prev
        rtt[row.id][size] = { ...keep, roundsP50: rounds }
        process.stderr.write(`rtt ${row.id} ${size}: n=${r.n} p50=${fixed(r.summary?.p50, 2)} µs p99=${fixed(r.summary?.p99, 2)} ${r.bad > 0 ? `${r.bad} bad` : ''}\n`)
      }
    }
  }

  // Idle CPU: all at once (they are idle), nothing else running.
  const idleRows = [
    { id: 'shm-adaptive', label: 'shm-channel consumer parked in receive() (adaptive)', transport: 'shm', wait: 'adaptive', codec: 'bytes' },
    { id: 'shm-block', label: 'shm-channel consumer parked in receive() (block)', transport: 'shm', wait: 'block', codec: 'bytes' },
    { id: 'unix', label: 'Unix socket reader, idle', transport: 'unix' }
  ].filter(want)
  const idle = {}
  const idleResults = await Promise.all(idleRows.map((row) => measure({ ...row, kind: 'idle', idleSeconds: p.idleSeconds }, p.idleSeconds * 1000 + 30_000)))
  idleRows.forEach((row, i) => {
    idle[row.id] = idleResults[i]
    if (idleResults[i].error !== undefined) errors.push({ id: row.id, kind: 'idle', error: idleResults[i].error })
  })

  // RSS under backpressure.
  const rssRows = [
    { id: 'shm', label: 'shm-channel: await send() / receiveSync (adaptive), 1 MiB ring', transport: 'shm', wait: 'adaptive', codec: 'bytes' },
    { id: 'unix', label: "Unix socket: write, await 'drain' / data handler", transport: 'unix', variant: 'write' }
  ].filter(want)
  const rss = {}
  for (const row of rssRows) {
    const r = await measure({ ...row, kind: 'rss', size: p.rssSize, seconds: p.rssSeconds }, p.rssSeconds * 1000 + 60_000)
    if (r.error !== undefined) errors.push({ id: row.id, kind: 'rss', error: r.error })
    rss[row.id] = r
  }

  const busyAfter = await foreignBusy(1000)
  if (busyAfter > 0.1) notes.push(`After the run, the CPUs were ${(100 * busyAfter).toFixed(0)} % busy with other work: numbers are noisy.`)

  // ---------------------------------------------------------- output ----
  const out = []
  const machine = machineInfo()
  out.push(`## shm-channel compared (${quick ? 'quick' : 'full'} run)`, '')
  out.push(`${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}, Linux ${machine.kernel}, ${machine.date}`, '')

  const tputRows = p.tput.filter(runnable)
  const cell = (r, f) => { if (r === undefined) return '—'; const bad = tputProblem(r); return bad === undefined ? f(r) : `✗ ${bad}` }
  out.push(`### One-way throughput, messages per second (${p.seconds} s per point, best of ${p.rounds} round${p.rounds > 1 ? 's' : ''})`, '')
  out.push(markdownTable(['transport', ...p.sizes.map((s) => SIZE_NAMES[s])], tputRows.map((row) => [row.label, ...p.sizes.map((s) => cell(tput[row.id][s], (r) => rate(r.msgPerSec)))])), '')
  out.push('### One-way throughput, MB/s (payload bytes, 10^6)', '')
  out.push(markdownTable(['transport', ...p.sizes.map((s) => SIZE_NAMES[s])], tputRows.map((row) => [row.label, ...p.sizes.map((s) => cell(tput[row.id][s], (r) => fixed(r.mbPerSec, r.mbPerSec < 10 ? 2 : 0)))])), '')

  out.push(`### Round-trip latency, µs (p50 / p99 / p99.9; n round trips after warm-up; the best of ${p.rounds} round${p.rounds > 1 ? 's' : ''} by p50)`, '')
  const rttRows = p.rtt.filter(runnable)
  out.push(markdownTable(['transport', ...p.rttSizes.map((s) => SIZE_NAMES[s])], rttRows.map((row) => [row.label, ...p.rttSizes.map((s) => {
    const r = rtt[row.id][s]
    if (r.error !== undefined) return '✗ error'
    const bad = r.bad > 0 ? ` ✗ ${r.bad} bad` : ''
    return `${fixed(r.summary.p50, 2)} / ${fixed(r.summary.p99, 1)} / ${fixed(r.summary.p999, 1)} (n=${r.n})${bad}`
  })])), '')

  out.push(`### CPU of an idle reader over ${p.idleSeconds} s`, '')
  out.push(markdownTable(['reader', 'CPU s', '% of a core'], idleRows.map((row) => {
    const r = idle[row.id]
    return r.error !== undefined ? [row.label, '✗ error', ''] : [row.label, fixed(r.cpuSeconds, 4), fixed(100 * r.cpuSeconds / r.idleSeconds, 3)]
  })), '')

  out.push(`### Peak RSS under backpressure (${SIZE_NAMES[p.rssSize]} messages for ${p.rssSeconds} s; the consumer sleeps 1 ms every 64 messages)`, '')
  out.push(markdownTable(['transport', 'messages', 'producer MiB', 'consumer MiB'], rssRows.map((row) => {
    const r = rss[row.id]
    if (r.error !== undefined) return [row.label, '✗ error', '', '']
    const ok = r.bad === 0 && r.n === r.sent ? '' : ` ✗ sent ${r.sent} got ${r.n} bad ${r.bad}`
    return [row.label, `${r.n}${ok}`, fixed(r.producerMaxRssKiB / 1024, 1), fixed(r.consumerMaxRssKiB / 1024, 1)]
  })), '')

  // Ratios and targets.
  const ratios = []
  const tp = (id, size, key) => { const r = tput[id]?.[size]; return tputProblem(r) === undefined ? r[key] : undefined }
  const p50 = (id, size) => rtt[id]?.[size]?.summary?.p50
  const bestUnix = (size, key) => {
    const a = tp('unix-write', size, key)
    const b = tp('unix-cork', size, key)
    if (a === undefined || b === undefined) return { value: a ?? b, which: a === undefined ? 'unix-cork' : 'unix-write' }
    return a >= b ? { value: a, which: 'unix-write' } : { value: b, which: 'unix-cork' }
  }
  const div = (x, y) => (x === undefined || y === undefined || !(y > 0) ? undefined : x / y)
  const add = (name, value, target, ok, unit = '×') => {
    const finite = Number.isFinite(value) ? value : undefined
    ratios.push({ name, value: finite, unit, target, met: ok === undefined || finite === undefined ? undefined : ok(finite) })
  }
  // Every ratio against a Unix socket is taken against the stronger of its two ways of writing.
  add('64 B msg/s, idiomatic: await send / for await', tp('shm-await', 64, 'msgPerSec') / 1e6, '≥ 8 M msg/s', (v) => v >= 8, 'M msg/s')
  add(`64 B msg/s ÷ stronger Unix socket (${bestUnix(64, 'msgPerSec').which}), idiomatic`, div(tp('shm-await', 64, 'msgPerSec'), bestUnix(64, 'msgPerSec').value), '≥ 1×', (v) => v >= 1)
  add(`4 KiB MB/s ÷ stronger Unix socket (${bestUnix(4096, 'mbPerSec').which}), idiomatic`, div(tp('shm-await', 4096, 'mbPerSec'), bestUnix(4096, 'mbPerSec').value), '≥ 2×', (v) => v >= 2)
  add('64 B objects msg/s, json codec, idiomatic ÷ newline-delimited JSON over a corked Unix socket', div(tp('shm-json-objects', 64, 'msgPerSec'), tp('unix-ndjson', 64, 'msgPerSec')), '≥ 3×', (v) => v >= 3)
  for (const id of ['shm-simple', 'shm-batch-adaptive', 'shm-batch-spin', 'shm-batch-block']) {
    const label = p.tput.find((r) => r.id === id).label.replace('shm-channel bytes, ', '')
    const u = bestUnix(64, 'msgPerSec')
    add(`64 B msg/s, ${label}`, tp(id, 64, 'msgPerSec') / 1e6, '≥ 10 M msg/s', (v) => v >= 10, 'M msg/s')
    add(`64 B msg/s ÷ stronger Unix socket (${u.which}), ${label}`, div(tp(id, 64, 'msgPerSec'), u.value), id.startsWith('shm-batch') ? '≥ 3×' : '', id.startsWith('shm-batch') ? (v) => v >= 3 : undefined)
  }
  for (const [size, target] of [[4096, 5], [1 << 20, 3]]) {
    for (const id of ['shm-simple', 'shm-batch-adaptive']) {
      const u = bestUnix(size, 'mbPerSec')
      add(`${SIZE_NAMES[size]} MB/s ÷ Unix socket (best: ${u.which}), ${id}`, div(tp(id, size, 'mbPerSec'), u.value), `≥ ${target}×`, (v) => v >= target)
    }
  }
  add('64 B RTT p50: spin ÷ C spin', div(p50('shm-spin', 64), p50('c-spin', 64)), '≤ 2×', (v) => v <= 2)
  add('64 B RTT p50: JavaScript floor ÷ C spin', div(p50('js-spin', 64), p50('c-spin', 64)), '', undefined)
  add('64 B RTT p50: spin ÷ JavaScript floor', div(p50('shm-spin', 64), p50('js-spin', 64)), '', undefined)
  add('64 B RTT p50: adaptive ÷ Unix socket', div(p50('shm-adaptive', 64), p50('unix', 64)), '≤ 0.2× (1/5)', (v) => v <= 0.2)
  add('64 B RTT p50: block ÷ C futex', div(p50('shm-block', 64), p50('c-futex', 64)), '≤ 1.5×', (v) => v <= 1.5)
  for (const [id, r] of Object.entries(idle)) {
    if (id.startsWith('shm') && r.error === undefined) add(`parked consumer CPU, ${id}`, 100 * r.cpuSeconds / r.idleSeconds, '< 1 % of a core', (v) => v < 1, '% of a core')
  }
  // For information: against every alternative.
  for (const alt of ['unix-write', 'unix-cork', 'ipc-json', 'ipc-advanced', 'port', 'c-ring']) {
    add(`64 B msg/s: shm batch (adaptive) ÷ ${alt}`, div(tp('shm-batch-adaptive', 64, 'msgPerSec'), tp(alt, 64, 'msgPerSec')), '', undefined)
  }
  for (const alt of ['unix-write', 'unix-cork', 'ipc-advanced', 'port', 'c-ring']) {
    add(`1 MiB MB/s: shm batch (adaptive) ÷ ${alt}`, div(tp('shm-batch-adaptive', 1 << 20, 'mbPerSec'), tp(alt, 1 << 20, 'mbPerSec')), '', undefined)
  }
  for (const size of p.rttSizes) {
    for (const alt of ['unix', 'ipc-json', 'ipc-advanced', 'port', 'c-spin', 'c-futex']) {
      add(`${SIZE_NAMES[size]} RTT p50: shm adaptive ÷ ${alt}`, div(p50('shm-adaptive', size), p50(alt, size)), '', undefined)
    }
  }
  const fmtValue = (r) => r.value === undefined || Number.isNaN(r.value) ? '—' : `${r.value.toFixed(r.value < 1 ? 3 : 2)}${r.unit === '×' ? '×' : ' ' + r.unit}`
  out.push('### Ratios (shm-channel ÷ alternative) and targets', '')
  out.push(markdownTable(['ratio', 'value', 'target', ''], ratios.filter((r) => r.target !== '').map((r) => [r.name, fmtValue(r), r.target, verdict(r.met)]), ['l', 'r', 'l', 'l']), '')
  out.push('For information:', '')
  out.push(markdownTable(['ratio', 'value'], ratios.filter((r) => r.target === '').map((r) => [r.name, fmtValue(r)])), '')

  notes.push(
    'Payloads: binary transports send Buffers; the json codec and IPC \'json\' send strings of the size (the json codec adds 2 quote bytes).',
    'shm-channel rings are 1 MiB, or 8 MiB for 1 MiB messages so that no message is fragmented; Unix sockets use the kernel defaults.',
    'Throughput is measured at the receiver after 20 % of the run; every message is counted and checked (length, first byte = sequence mod 16), and the receiver\'s count must equal the sender\'s.',
    'IPC and MessagePort throughput are paced by a credit window (acks every quarter window): they have no backpressure of their own.',
    'C ring: both sides spin when blocked and publish per message; C RTT copies the payload once each way.',
    'JavaScript floor: the C spin round trip written in plain JavaScript (Atomics.load / Atomics.store, TypedArray#set) over a shm-channel Region, with no ring, record or codec.'
  )
  if (errors.length > 0) {
    out.push('### Errors', '')
    for (const e of errors) out.push(`- ${e.kind} ${e.id}${e.size !== undefined ? ' ' + e.size : ''}: ${e.error.split('\n')[0]}`)
    out.push('')
  }
  out.push('Notes:', '', ...notes.map((n) => `- ${n}`), '')
  const elapsed = (performance.now() - started) / 1000
  out.push(`Run time ${elapsed.toFixed(0)} s.`)
  console.log(out.join('\n'))

  // A partial run does not replace the full results.
  const partial = values.only !== undefined || values.rows !== undefined || values.sizes !== undefined || values['cpu-prof-dir'] !== undefined
  const file = writeResults('compare', { machine, options: { quick, only: values.only, rounds: p.rounds, busyBefore, busyAfter, seconds: p.seconds, sizes: p.sizes, rttSizes: p.rttSizes, idleSeconds: p.idleSeconds, rssSeconds: p.rssSeconds, rssSize: p.rssSize }, throughput: tput, roundTrip: rtt, idle, rss, ratios, notes, errors, elapsedSeconds: elapsed }, values.label ?? (partial ? 'partial' : undefined))
  console.error(`results: ${path.relative(process.cwd(), file)}`)
}

// Last, so that every declaration above is initialised.
if (values.role === 'A') {
  await roleA(JSON.parse(values.spec))
} else if (values.role === 'B') {
  await roleB(JSON.parse(values.spec))
} else {
  await main()
}
