// Cross-process wake-up latency: how long one Node process takes to get a
// word of shared memory noticed by another, and answered, by each mechanism.
//
//   node bench/wake.mjs [--quick] [--trips 20000] [--rounds 3] [--idle-seconds 5]
//                       [--only futex,...] [--placement free,same,split]
//
// The initiator (this process) and a responder (a forked child of this same
// script) play ping-pong through a Region: the initiator stores a sequence
// number in PING and sleeps until the responder has copied it into PONG. The
// time from the store to seeing the answer is one round trip (RTT); one-way
// latency is about half of it. Mechanisms, differing only in how a sleeping
// side is woken:
//
//   futex        both sides block in futex.wait; futex.wake wakes them.
//   waitAsync    the responder awaits futex.waitAsync (its event loop stays
//                free); the initiator blocks in futex.wait as above.
//   fifo         the responder's event loop reads a named FIFO (net.Socket on
//                the fd, so epoll, no thread pool); the initiator writes one
//                byte to it to wake it, and blocks in futex.wait as above.
//   spin         both sides spin on Atomics.load: no system calls at all, one
//                core each. The floor, not an option.
//   ipc          for reference, what a user would pick instead: process.send
//                both ways over the child_process IPC channel, no shared memory.
//
// Every sleeper uses the same protocol, as a real channel would: it raises its
// "sleeping" flag, re-checks the word, and only then sleeps; the other side
// wakes it (futex.wake or a FIFO byte) only when it finds the flag raised. So
// a wake-up costs a system call only when the other side is really asleep;
// the "wakes/trip" column counts how many were needed.
//
// Then the CPU time an idle process burns for --idle-seconds while parked in
// futex.waitAsync, compared with polling the word from setImmediate or every
// millisecond from setInterval, and with a process that waits on nothing.
//
// Each mechanism is measured in three placements: wherever the scheduler puts
// the two processes (what a user gets), both pinned to one CPU (a wake-up is
// a context switch), and pinned to two CPUs (a wake-up must reach another,
// possibly idle, CPU). The unpinned numbers swing between the other two from
// one run to the next; the pinned ones say why.
//
// Mechanisms take turns (round robin over --rounds rounds, a fresh responder
// each time), so load from other processes on a shared machine falls on all
// of them alike; the tables show the median over rounds of each percentile.
import { execFileSync, fork, spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { allowedCpus, pinProcess, pinnedCommand } from './lib/affinity.mjs'
import { onCleanup } from './lib/cleanup.mjs'
import { parseOptions } from './lib/cli.mjs'
import { shm } from './lib/native.mjs'
import { machineInfo, writeResults } from './lib/results.mjs'
import { latencySummary, median } from './lib/stats.mjs'
import { fixed, markdownTable } from './lib/table.mjs'
import { exited, nextMessage } from './lib/child.mjs'

const { Region, futex } = shm

const USAGE = `usage: node bench/wake.mjs [options]
  --trips <n>          timed round trips per mechanism per round (default 20000)
  --warmup <n>         untimed round trips before them (default 2000)
  --rounds <n>         rounds over all mechanisms (default 3)
  --idle-seconds <s>   length of the idle CPU measurement (default 5)
  --only <list>        comma-separated mechanisms: futex,waitAsync,fifo,spin,ipc
  --placement <list>   comma-separated: free (not pinned), same (one CPU),
                       split (two CPUs); default all three (needs taskset)
  --quick              3000 trips, 500 warm-up, 1 round, 1 s idle: under 20 s
  --label <text>       write bench/results/wake-<text>.json instead of wake.json`

const { values } = parseOptions(USAGE, {
  trips: { type: 'string' },
  warmup: { type: 'string' },
  rounds: { type: 'string' },
  'idle-seconds': { type: 'string' },
  only: { type: 'string' },
  placement: { type: 'string' },
  quick: { type: 'boolean', default: false },
  label: { type: 'string' },
  // Internal: how the forked children are told what to be.
  role: { type: 'string' },
  mode: { type: 'string' },
  name: { type: 'string' },
  fifo: { type: 'string' }
})

// Word indexes in the region: each on its own 128-byte line, so the two sides
// do not share a cache line for anything but the word they hand over.
const PING = 0 // initiator -> responder: sequence number, or STOP
const PONG = 32 // responder -> initiator: the last sequence number seen
const RESPONDER_SLEEPING = 64 // 1 while the responder is (about to be) asleep
const INITIATOR_SLEEPING = 96 // 1 while the initiator is (about to be) asleep
const IDLE_WORD = 128 // what the idle children wait on or poll
const REGION_SIZE = 4096
const STOP = -1

const MECHANISMS = {
  futex: 'futex.wait / futex.wake, both sides blocking',
  waitAsync: 'responder awaits futex.waitAsync, initiator futex.wait',
  fifo: 'responder: FIFO doorbell on its event loop, initiator futex.wait',
  spin: 'Atomics.load spin on both sides (floor, burns 2 cores)',
  ipc: 'child_process IPC, process.send both ways (reference)'
}

const IDLE_MODES = {
  baseline: 'waiting on nothing (just its IPC channel)',
  waitAsync: 'parked in futex.waitAsync',
  setInterval: 'polling the word every 1 ms (setInterval)',
  setImmediate: 'polling the word from setImmediate'
}

const selfPath = fileURLToPath(import.meta.url)

// ------------------------------------------------------------ helpers ----

function positive (name, text, fallback, integer = true) {
  if (text === undefined) return fallback
  const n = Number(text)
  if (!(n > 0) || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new RangeError(`"--${name}" must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(text)}`)
  }
  return n
}

function uniqueName (what) {
  return `/shm-channel-bench-${what}-${process.pid}-${crypto.randomBytes(4).toString('hex')}`
}

/** Unlinks a shared memory name; a name already gone is fine. */
function unlinkQuietly (name) {
  try {
    Region.unlink(name)
  } catch (err) {
    if (err.code !== 'ENOENT') throw err
  }
}

/** The responder gives up if its parent is gone (killed with SIGKILL, say). */
const parentPid = process.ppid
function orphaned () {
  return process.ppid !== parentPid
}

/**
 * Forks this script in `role`, on `cpus` if given; the child is killed at the
 * latest when this process ends.
 */
function forkChild (role, args, cpus) {
  /** @type {import('node:child_process').StdioOptions} */
  const stdio = ['ignore', 'inherit', 'inherit', 'ipc']
  const argv = [selfPath, '--role', role, ...args]
  // taskset execs node in place: same pid, and the IPC fd is inherited.
  const child = cpus === undefined
    ? fork(argv[0], argv.slice(1), { stdio })
    : spawn(...pinnedCommand(cpus, [process.execPath, ...process.execArgv, ...argv]), { stdio })
  const kill = onCleanup(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  child.once('exit', kill)
  return child
}

// ---------------------------------------------------------- responder ----
// Runs in the forked child: copies each PING into PONG, waking the initiator
// only if it sleeps. Sends {type: 'done', counts} when it sees STOP.

function answer (w, value, counts) {
  Atomics.store(w, PONG, value)
  // The store above is sequentially consistent and so is this exchange: either
  // the initiator's re-check after raising its flag sees the new PONG, or we
  // see the flag here. A wake-up cannot be lost between the two.
  if (Atomics.exchange(w, INITIATOR_SLEEPING, 0) === 1) {
    futex.wake(w, PONG, 1)
    counts.wakesSent++
  }
}

/** @param {Int32Array} w */
function respondFutex (w, counts) {
  let last = 0
  for (;;) {
    const value = Atomics.load(w, PING)
    if (value === STOP) return
    if (value !== last) {
      last = value
      answer(w, value, counts)
      continue
    }
    // Raise the flag, then re-check: a PING stored before the flag went up is
    // seen here; one stored after it finds the flag and wakes us.
    Atomics.store(w, RESPONDER_SLEEPING, 1)
    if (Atomics.load(w, PING) === last) {
      counts.sleeps++
      // A timeout only so that an orphaned responder notices and exits.
      if (futex.wait(w, PING, last, 1000) === 'timed-out' && orphaned()) process.exit(1)
    }
    Atomics.store(w, RESPONDER_SLEEPING, 0)
  }
}

/** @param {Int32Array} w */
async function respondWaitAsync (w, counts) {
  let last = 0
  for (;;) {
    const value = Atomics.load(w, PING)
    if (value === STOP) return
    if (value !== last) {
      last = value
      answer(w, value, counts)
      continue
    }
    Atomics.store(w, RESPONDER_SLEEPING, 1) // as in respondFutex
    if (Atomics.load(w, PING) === last) {
      counts.sleeps++
      await futex.waitAsync(w, PING, last)
    }
    Atomics.store(w, RESPONDER_SLEEPING, 0)
  }
}

/**
 * Answers every PING it finds, then raises its flag and returns to the event
 * loop, which calls it again when the FIFO becomes readable. Returns true once
 * it has seen STOP.
 */
/** @param {Int32Array} w */
function respondFifoOnce (w, state, counts) {
  for (;;) {
    const value = Atomics.load(w, PING)
    if (value === STOP) return true
    if (value !== state.last) {
      state.last = value
      answer(w, value, counts)
      continue
    }
    Atomics.store(w, RESPONDER_SLEEPING, 1) // as in respondFutex
    if (Atomics.load(w, PING) === state.last) return false
    Atomics.store(w, RESPONDER_SLEEPING, 0)
  }
}

/** @param {Int32Array} w */
function respondSpin (w) {
  let last = 0
  for (let spins = 0; ; spins++) {
    const value = Atomics.load(w, PING)
    if (value === STOP) return
    if (value !== last) {
      last = value
      Atomics.store(w, PONG, value)
    } else if ((spins & 0xffffff) === 0 && orphaned()) {
      process.exit(1)
    }
  }
}

async function responder ({ mode, name, fifo }) {
  process.on('disconnect', () => process.exit(1)) // parent gone
  if (mode === 'ipc') {
    process.on('message', (/** @type {any} */ msg) => {
      if (msg.type === 'ping') process.send({ type: 'pong', seq: msg.seq })
      else if (msg.type === 'stop') process.send({ type: 'done' }, () => process.exit(0))
    })
    process.send({ type: 'ready' })
    return
  }
  const region = Region.open(name, { size: REGION_SIZE })
  const w = new Int32Array(region.buffer)
  const counts = { sleeps: 0, wakesSent: 0, doorbellsRead: 0 }
  let doorbell
  if (mode === 'fifo') {
    // O_RDWR: opening never waits for a writer and never sees end-of-file.
    // O_NONBLOCK: libuv reads it from epoll on the loop thread.
    const fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK)
    doorbell = new net.Socket({ fd, readable: true, writable: false })
  }
  process.send({ type: 'ready' })

  if (mode === 'futex') respondFutex(w, counts)
  else if (mode === 'waitAsync') await respondWaitAsync(w, counts)
  else if (mode === 'spin') respondSpin(w)
  else if (mode === 'fifo') {
    await new Promise((resolve) => {
      const state = { last: 0 }
      const serve = () => {
        if (respondFifoOnce(w, state, counts)) resolve()
        else counts.sleeps++ // flag raised, back to the event loop
      }
      doorbell.on('data', (bytes) => {
        counts.doorbellsRead += bytes.length
        Atomics.store(w, RESPONDER_SLEEPING, 0)
        serve()
      })
      serve()
    })
    doorbell.destroy()
  } else throw new Error(`unknown mode ${mode}`)
  region.close()
  process.send({ type: 'done', counts }, () => process.exit(0))
}

// ---------------------------------------------------------- initiator ----

/** Blocks until PONG holds `seq`, sleeping in futex.wait with its flag raised. */
function awaitPongSync (w, seq, counts) {
  const deadline = performance.now() + 5000
  while (Atomics.load(w, PONG) !== seq) {
    Atomics.store(w, INITIATOR_SLEEPING, 1) // then re-check: see answer()
    const seen = Atomics.load(w, PONG)
    if (seen !== seq) {
      counts.sleeps++
      futex.wait(w, PONG, seen, 1000)
    }
    Atomics.store(w, INITIATOR_SLEEPING, 0)
    if (performance.now() > deadline) throw new Error(`no answer to ping ${seq} within 5 s`)
  }
}

function awaitPongSpin (w, seq) {
  const deadline = performance.now() + 5000
  for (let spins = 0; Atomics.load(w, PONG) !== seq; spins++) {
    if ((spins & 0xfffff) === 0 && performance.now() > deadline) throw new Error(`no answer to ping ${seq} within 5 s`)
  }
}

/**
 * One round of one shared-memory mechanism: `warmup` + `trips` round trips
 * against a fresh responder. Returns the RTT samples in microseconds.
 */
async function pingPongShared (mode, warmup, trips, childCpus) {
  const name = uniqueName('wake')
  const region = Region.create(name, REGION_SIZE)
  const unlinkName = onCleanup(() => unlinkQuietly(name))
  const w = new Int32Array(region.buffer)
  let fifoDir, fifoFd, removeFifo
  const args = ['--mode', mode, '--name', name]
  if (mode === 'fifo') {
    fifoDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shm-channel-bench-fifo-'))
    removeFifo = onCleanup(() => fs.rmSync(fifoDir, { recursive: true, force: true }))
    const fifoPath = path.join(fifoDir, 'doorbell')
    execFileSync('mkfifo', ['-m', '600', fifoPath])
    args.push('--fifo', fifoPath)
  }
  const child = forkChild('responder', args, childCpus)
  try {
    await nextMessage(child, 'ready', 10_000)
    // Both ends hold what they need now: the names can go at once, so nothing
    // is left in /dev/shm or /tmp even if this process is killed.
    unlinkName()
    if (mode === 'fifo') {
      // The child holds the FIFO open for reading, so this open succeeds at once.
      fifoFd = fs.openSync(path.join(fifoDir, 'doorbell'), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)
      removeFifo()
    }
    const done = nextMessage(child, 'done', 60_000)
    const bell = Buffer.from([1])
    const counts = { sleeps: 0, rings: 0 }
    const total = warmup + trips
    const samples = new Float64Array(trips)
    const ring = mode === 'fifo'
      ? () => {
          try {
            fs.writeSync(fifoFd, bell)
          } catch (err) {
            if (err.code !== 'EAGAIN') throw err // FIFO full: a wake-up is pending anyway
          }
        }
      : () => { futex.wake(w, PING, 1) }

    // Synchronous from here to STOP: nothing else runs on this event loop.
    for (let seq = 1; seq <= total; seq++) {
      const start = performance.now()
      Atomics.store(w, PING, seq)
      if (mode === 'spin') {
        awaitPongSpin(w, seq)
      } else {
        // See answer(): the same store-then-exchange pairing, other direction.
        if (Atomics.exchange(w, RESPONDER_SLEEPING, 0) === 1) {
          ring()
          counts.rings++
        }
        awaitPongSync(w, seq, counts)
      }
      if (seq > warmup) samples[seq - warmup - 1] = (performance.now() - start) * 1000
      if (seq === warmup) { counts.sleeps = 0; counts.rings = 0 }
    }
    Atomics.store(w, PING, STOP)
    if (mode !== 'spin') {
      if (mode === 'fifo') ring()
      else futex.wake(w, PING, 1)
    }
    const { counts: responderCounts } = await done
    await exited(child)
    return { samples, total, initiator: counts, responder: responderCounts }
  } finally {
    if (fifoFd !== undefined) fs.closeSync(fifoFd)
    region.close()
  }
}

/** One round of the child_process IPC reference: process.send both ways. */
async function pingPongIpc (warmup, trips, childCpus) {
  const child = forkChild('responder', ['--mode', 'ipc'], childCpus)
  await nextMessage(child, 'ready', 10_000)
  const total = warmup + trips
  const samples = new Float64Array(trips)
  await new Promise((resolve, reject) => {
    let seq = 0
    let start = 0
    const timer = setTimeout(() => reject(new Error('IPC ping-pong took over 60 s')), 60_000)
    child.on('exit', (code, signal) => reject(new Error(`IPC responder exited (${signal ?? code})`)))
    child.on('message', (/** @type {any} */ msg) => {
      if (msg.type !== 'pong') return
      if (msg.seq > warmup) samples[msg.seq - warmup - 1] = (performance.now() - start) * 1000
      if (msg.seq === total) {
        clearTimeout(timer)
        resolve()
        return
      }
      next()
    })
    function next () {
      seq++
      start = performance.now()
      child.send({ type: 'ping', seq })
    }
    next()
  })
  const done = nextMessage(child, 'done', 10_000)
  child.send({ type: 'stop' })
  await done
  await exited(child)
  return { samples }
}

// ---------------------------------------------------------- idle CPU ----

async function idleChild ({ mode, name }) {
  process.on('disconnect', () => process.exit(1))
  const region = Region.open(name, { size: REGION_SIZE })
  const w = new Int32Array(region.buffer)
  let stopped = false
  let polls = 0
  let start
  process.on('message', (/** @type {any} */ msg) => {
    if (msg.type === 'start') {
      start = { cpu: process.cpuUsage(), wall: performance.now() }
      if (mode === 'waitAsync') {
        futex.waitAsync(w, IDLE_WORD, 0).then((result) => { if (result !== 'ok') console.error(`idle waitAsync ended: ${result}`) })
      } else if (mode === 'setInterval') {
        const timer = setInterval(() => {
          polls++
          if (stopped || Atomics.load(w, IDLE_WORD) !== 0) clearInterval(timer)
        }, 1)
      } else if (mode === 'setImmediate') {
        const poll = () => {
          polls++
          if (!stopped && Atomics.load(w, IDLE_WORD) === 0) setImmediate(poll)
        }
        setImmediate(poll)
      } else if (mode !== 'baseline') throw new Error(`unknown idle mode ${mode}`)
    } else if (msg.type === 'stop') {
      const cpu = process.cpuUsage(start.cpu)
      const wallMs = performance.now() - start.wall
      stopped = true
      process.send({ type: 'result', cpuUserMs: cpu.user / 1000, cpuSystemMs: cpu.system / 1000, wallMs, polls }, () => {
        region.close()
        process.exit(0)
      })
    }
  })
  process.send({ type: 'ready' })
}

/**
 * Forks one idle child per mode, all at once (only the setImmediate poller
 * uses a whole core, so on 2 cores they do not starve each other), lets them
 * sit for `seconds`, then asks each for the CPU time it used.
 */
async function measureIdle (seconds) {
  const name = uniqueName('idle')
  const region = Region.create(name, REGION_SIZE)
  const unlinkName = onCleanup(() => unlinkQuietly(name))
  try {
    const children = Object.keys(IDLE_MODES).map((mode) => ({ mode, child: forkChild('idle', ['--mode', mode, '--name', name]) }))
    await Promise.all(children.map(({ child }) => nextMessage(child, 'ready', 10_000)))
    unlinkName()
    for (const { child } of children) child.send({ type: 'start' })
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
    const results = await Promise.all(children.map(async ({ mode, child }) => {
      const result = nextMessage(child, 'result', 10_000)
      child.send({ type: 'stop' })
      const msg = await result
      await exited(child)
      return { mode, label: IDLE_MODES[mode], cpuUserMs: msg.cpuUserMs, cpuSystemMs: msg.cpuSystemMs, wallMs: msg.wallMs, polls: msg.polls }
    }))
    return results
  } finally {
    region.close()
  }
}

// --------------------------------------------------------------- main ----

/**
 * Where the two processes of a ping-pong run. `free` is what a user gets; the
 * pinned ones explain its spread: one CPU makes every wake-up a context
 * switch, two CPUs make it a wake-up of another, possibly idle, CPU.
 */
function placements (cpus) {
  const all = {
    free: { label: 'scheduler\'s choice of CPUs (not pinned)' },
    same: { label: `both processes pinned to CPU ${cpus?.[0]}`, parent: cpus?.slice(0, 1), child: cpus?.slice(0, 1) },
    split: { label: `initiator on CPU ${cpus?.[0]}, responder on CPU ${cpus?.[1]}`, parent: cpus?.slice(0, 1), child: cpus?.slice(1, 2) }
  }
  if (cpus === undefined) return { free: all.free } // no taskset
  if (cpus.length < 2) return { free: all.free, same: all.same }
  return all
}

async function main () {
  const quick = values.quick
  const trips = positive('trips', values.trips, quick ? 3000 : 20_000)
  const warmup = positive('warmup', values.warmup, quick ? 500 : 2000)
  const rounds = positive('rounds', values.rounds, quick ? 1 : 3)
  const idleSeconds = positive('idle-seconds', values['idle-seconds'], quick ? 1 : 5, false)
  const modes = values.only !== undefined ? values.only.split(',') : Object.keys(MECHANISMS)
  for (const mode of modes) if (!(mode in MECHANISMS)) throw new RangeError(`"--only": unknown mechanism ${JSON.stringify(mode)}`)
  const cpus = allowedCpus()
  const available = placements(cpus)
  const wanted = values.placement !== undefined ? values.placement.split(',') : Object.keys(available)
  for (const p of wanted) if (!(p in available)) throw new RangeError(`"--placement": ${JSON.stringify(p)} is not available here (have: ${Object.keys(available).join(', ')})`)
  // Both spinning on one CPU measures the time slice, not a wake-up.
  const combos = wanted.flatMap((placement) => modes.filter((mode) => !(mode === 'spin' && placement === 'same')).map((mode) => ({ placement, mode })))
  if (cpus !== undefined) onCleanup(() => pinProcess(cpus)) // leave no pin behind, even on Ctrl-C

  const machine = machineInfo()
  const started = performance.now()
  console.log(`# wake: ${trips} round trips (after ${warmup} warm-up) x ${rounds} rounds per mechanism and placement`)
  console.log(`${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}, ${machine.date}`)

  // Round robin: every (placement, mechanism) once per round, so a burst of
  // load from elsewhere is shared out rather than landing on one of them.
  const perCombo = new Map(combos.map((c) => [`${c.placement}/${c.mode}`, []]))
  for (let round = 0; round < rounds; round++) {
    for (const { placement, mode } of combos) {
      const where = available[placement]
      if (where.parent !== undefined) pinProcess(where.parent)
      let run
      try {
        run = mode === 'ipc' ? await pingPongIpc(warmup, trips, where.child) : await pingPongShared(mode, warmup, trips, where.child)
      } finally {
        if (where.parent !== undefined) pinProcess(cpus)
      }
      perCombo.get(`${placement}/${mode}`).push({
        round,
        rttUs: latencySummary(run.samples),
        // Initiator counts restart after the warm-up; the responder's cover every trip.
        wakesPerTrip: run.initiator === undefined ? undefined : run.initiator.rings / trips + (run.responder.wakesSent ?? 0) / run.total,
        initiator: run.initiator,
        responder: run.responder
      })
    }
  }

  const latency = combos.map(({ placement, mode }) => {
    const runs = perCombo.get(`${placement}/${mode}`)
    const med = (key) => median(runs.map((r) => r.rttUs[key]))
    return {
      placement,
      mode,
      label: MECHANISMS[mode],
      medianOfRounds: {
        p50: med('p50'),
        p99: med('p99'),
        p999: med('p999'),
        mean: med('mean'),
        oneWayP50: med('p50') / 2,
        wakesPerTrip: runs[0].wakesPerTrip === undefined ? undefined : median(runs.map((r) => r.wakesPerTrip))
      },
      p50OfEachRound: runs.map((r) => r.rttUs.p50),
      rounds: runs
    }
  })

  for (const placement of wanted) {
    console.log(`\n## Round trip, ${available[placement].label} (µs, median over rounds)\n`)
    console.log(markdownTable(
      ['mechanism', 'RTT p50', 'RTT p99', 'RTT p99.9', 'one-way ≈ p50/2', 'wakes/trip', 'p50 of each round'],
      latency.filter((l) => l.placement === placement).map(({ label, medianOfRounds: m, p50OfEachRound }) =>
        [label, fixed(m.p50), fixed(m.p99), fixed(m.p999), fixed(m.oneWayP50), fixed(m.wakesPerTrip, 2), p50OfEachRound.map((v) => fixed(v)).join(' ')])
    ))
  }

  const idle = await measureIdle(idleSeconds)
  console.log(`\n## CPU used by an idle process in ${idleSeconds} s (user + system)\n`)
  console.log(markdownTable(
    ['waiting by', 'CPU ms', '% of a core', 'polls'],
    idle.map((r) => {
      const cpu = r.cpuUserMs + r.cpuSystemMs
      return [r.label, fixed(cpu, 1), fixed((cpu / r.wallMs) * 100, 2), r.polls === 0 ? '—' : String(r.polls)]
    })
  ))

  const seconds = (performance.now() - started) / 1000
  const file = writeResults('wake', {
    bench: 'wake',
    machine,
    options: { trips, warmup, rounds, idleSeconds, quick, modes, placements: Object.fromEntries(wanted.map((p) => [p, available[p]])) },
    unit: 'microseconds (round trip)',
    latency,
    idle,
    seconds
  }, values.label)
  console.log(`\n${seconds.toFixed(1)} s; raw results in ${path.relative(process.cwd(), file)}`)
}

if (values.role === 'responder') await responder(/** @type {any} */ (values))
else if (values.role === 'idle') await idleChild(/** @type {any} */ (values))
else await main()
