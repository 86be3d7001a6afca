/**
 * The store's kill loop: hundreds of times, a writer process performs a
 * seeded stream of sets, deletes, batches and compactions on one store file
 * (small enough that it grows and compacts itself every few dozen writes)
 * and is SIGKILLed at a random moment: mid-record, mid-batch, mid-growth,
 * mid-compaction. After each kill the file is reopened here, and its state
 * must be exactly what the acknowledged operations left, or that plus the
 * one in flight (all of a batch or none of it); every value whole; nothing
 * damaged. The next cycle's writer carries on from there (taking over the
 * lock the dead one may hold).
 *
 * KV_KILL_SEED replays one seed; KV_KILL_CYCLES sets the cycle count.
 */
import { fork } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import t, { type Test } from 'tap'

import { Region, Store } from '../../lib/index'
import { applyOp, OpStream } from '../fixtures/kv-ops'
import { Prng, seedsFromEnv } from '../support/prng'
import { leavesNothingInDevShm, shmName, tempDir } from '../support/shm'
import { transpileFixtures } from '../support/transpiled'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

function same (a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false
  for (const [k, v] of a) if (b.get(k) !== v) return false
  return true
}

t.test('kill loop: a writer SIGKILLed at random moments loses nothing whose set returned, and never leaves a torn value', async (t) => {
  const [writer] = transpileFixtures(t, ['kv-ops.ts', 'kv-writer.ts']).slice(1)
  const cycles = Number(process.env.KV_KILL_CYCLES ?? 300)
  // Two lanes (two files, two writers) at once: a cycle is mostly a process start, and the machine has two cores.
  const lanes = 2
  for (const seed of seedsFromEnv('KV_KILL_SEED', [0x5eed])) {
    const started = performance.now()
    const results = await Promise.all(Array.from({ length: lanes }, async (_, lane) => await runLane(t, writer, (seed + lane * 0x1000193) >>> 0, Math.ceil(cycles / lanes))))
    const seconds = (performance.now() - started) / 1000
    for (const [lane, { failures, totals }] of results.entries()) {
      t.same(failures, [], `seed ${seed} lane ${lane}: ${Math.ceil(cycles / lanes)} cycles; ${JSON.stringify(totals)}`)
    }
    t.comment(`${cycles} cycles in ${seconds.toFixed(1)} s`)
    t.ok(results.some((r) => r.totals.midCompaction > 0), 'some kills landed mid-compaction (a .compact file was left)')
    t.ok(results.every((r) => r.totals.largestFile > 16 * 1024), 'the files grew')
  }
})

interface Totals { ops: number, inFlightLanded: number, midCompaction: number, killedBeforeOpen: number, largestFile: number }

async function runLane (t: Test, writer: string, seed: number, cycles: number): Promise<{ failures: string[], totals: Totals }> {
  const random = new Prng(seed)
  const file = path.join(tempDir(t), 'killed.kv')
  const counterName = shmName(t)
  const counterRegion = Region.create(counterName, 4096)
  t.teardown(() => { counterRegion.close() })
  const counter = new Int32Array(counterRegion.buffer)
  let state = new Map<string, string>()
  const totals: Totals = { ops: 0, inFlightLanded: 0, midCompaction: 0, killedBeforeOpen: 0, largestFile: 0 }
  const failures: string[] = []
  for (let cycle = 0; cycle < cycles && failures.length < 5; cycle++) {
    const cycleSeed = (seed + cycle * 0x9e3779b9) >>> 0
    Atomics.store(counter, 0, 0)
    Atomics.store(counter, 1, 0)
    const child = fork(writer, [file, counterName, String(cycleSeed), String(cycle)], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const exited = new Promise<void>((resolve) => child.on('exit', () => { resolve() }))
    if (random.chance(0.05)) {
      await sleep(random.int(50))
    } else {
      while (Atomics.load(counter, 1) === 0 && child.exitCode === null) await sleep(1)
      await sleep(random.int(30))
    }
    child.kill('SIGKILL')
    await exited
    if (child.signalCode !== 'SIGKILL') failures.push(`cycle ${cycle}: the writer exited with ${child.exitCode}`)
    if (Atomics.load(counter, 1) === 0) totals.killedBeforeOpen++
    if (fs.existsSync(file + '.compact')) totals.midCompaction++
    const acked = Atomics.load(counter, 0)
    totals.ops += acked
    // What the acknowledged operations leave, and that plus the one in flight.
    const ops = new OpStream(cycleSeed, cycle)
    const expected = new Map(state)
    for (let j = 0; j < acked; j++) applyOp(expected, ops.next())
    const withNext = new Map(expected)
    applyOp(withNext, ops.next())
    let store: Store<string> | undefined
    try {
      store = Store.open<string>(file, { codec: 'utf8', openTimeout: 200 })
      const actual = new Map<string, string>()
      for (const [key, value] of store.entries()) actual.set(String(key), value)
      const damaged = store.verify().damaged
      totals.largestFile = Math.max(totals.largestFile, store.fileSize)
      if (damaged.length > 0) failures.push(`cycle ${cycle}: damage reported after a kill: ${JSON.stringify(damaged)}`)
      if (same(actual, expected)) {
        state = expected
      } else if (same(actual, withNext)) {
        state = withNext
        totals.inFlightLanded++
      } else {
        const diff = [...new Set([...actual.keys(), ...expected.keys()])].filter((k) => actual.get(k) !== expected.get(k))
          .map((k) => `${k}: ${String(actual.get(k)).slice(0, 24)} (expected ${String(expected.get(k)).slice(0, 24)})`)
        failures.push(`seed ${seed} cycle ${cycle}: after ${acked} acknowledged ops the state differs: ${diff.slice(0, 5).join('; ')}`)
        state = actual
      }
    } catch (err) {
      failures.push(`seed ${seed} cycle ${cycle}: reopening failed: ${String(err)}`)
    } finally {
      store?.close()
    }
  }
  return { failures, totals }
}

leavesNothingInDevShm(t)
