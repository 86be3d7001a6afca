/**
 * The restart loops of test/channel/restart.*.test.ts and
 * test/slow/restart.*.test.ts: one end lives here for the whole run, the
 * other is a process (test/fixtures/restart-*.ts, as plain JavaScript)
 * SIGKILLed at random moments and started again under the same name, where
 * it takes the dead end over. Each loop returns its counts for the test to
 * assert on and print.
 */
import { fork, type ChildProcess } from 'node:child_process'
import type { Test } from 'tap'

import { Consumer, Producer, Region } from '../../lib/index'
import { StreamVerifier, makeMessage, type SizeSpec } from './channel-helpers'
import { Prng } from './prng'
import { channelName, unlinkIfPresent } from './shm'
import { transpileFixtures } from './transpiled'

const KiB = 1024
const LOG_START = 16 // test/fixtures/restart-consumer.ts

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** Starts `fixture` with `args`; resolves `exited` when it is gone. */
function start (fixture: string, args: string[]): { child: ChildProcess, exited: Promise<void> } {
  const child = fork(fixture, args, { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const exited = new Promise<void>((resolve) => child.on('exit', () => { resolve() }))
  return { child, exited }
}

/** Polls `ready` every millisecond for up to `ms`; false if it never held (the process died first, say). */
async function poll (ready: () => boolean, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms
  while (!ready()) {
    if (performance.now() > deadline) return false
    await sleep(1)
  }
  return true
}

export interface ConsumerLoopCounts {
  cycles: number
  /** Incarnations that took the end over from a dead one. */
  takeovers: number
  /** Messages the producer sent. */
  sent: number
  /** Messages received, across incarnations, repeats included. */
  received: number
  /** Messages received again by a new incarnation: counted from the logs. */
  repeats: number
  /** Redeliveries the new incarnations announced (Consumer.redelivered). */
  announced: number
  /** Numbers never received. */
  lost: number
  /** Messages out of order within an incarnation, or a repeat not announced. */
  disorder: number
  torn: number
  problems: string[]
}

/**
 * Consumer restart loop: a producer here streams `messages` numbered,
 * checksummed messages with onPeerDeath 'wait'; a consumer process is
 * SIGKILLed at a random moment and restarted, `cycles` times, then one last
 * incarnation drains to the producer's close.
 */
export async function consumerRestartLoop (t: Test, cycles: number, seed: number): Promise<ConsumerLoopCounts> {
  const [fixture] = transpileFixtures(t, ['restart-consumer.ts'])
  const random = new Prng(seed)
  const name = channelName()
  const logName = channelName()
  const logRegion = Region.create(logName, 4 * (LOG_START + 4_000_000))
  const log = new Int32Array(logRegion.buffer)
  t.teardown(() => { logRegion.close(); unlinkIfPresent(logName); unlinkIfPresent(name) })
  const producer = Producer.open<Uint8Array>(name, { codec: 'bytes', capacity: 16 * KiB, onPeerDeath: 'wait', peerDeathTimeout: 60_000, peerCheckInterval: 20 })
  const counts: ConsumerLoopCounts = { cycles: 0, takeovers: 0, sent: 0, received: 0, repeats: 0, announced: 0, lost: 0, disorder: 0, torn: 0, problems: [] }
  const run = { stopping: false }
  // Small messages only: one that comes in fragments is released as it is reassembled (at-most-once, README "Restarts").
  const sending = (async () => {
    while (!run.stopping) {
      await producer.send(makeMessage(seed, counts.sent, 8 + random.int(400)))
      counts.sent++
    }
    producer.close()
  })()
  let read = 0 // log entries examined
  let last = -1 // highest number received so far
  const problem = (text: string): void => { if (counts.problems.length < 10) counts.problems.push(text) }
  /** Checks the entries incarnation `cycle` logged. */
  const examine = (cycle: number): void => {
    const n = Atomics.load(log, 0)
    const tookOver = log[2] === 1
    const announced = log[3]
    if (tookOver) counts.takeovers++
    counts.announced += announced
    counts.torn += log[4]
    let repeats = 0
    for (let i = read; i < n; i++) {
      const seq = log[LOG_START + i] >>> 0
      counts.received++
      if (i === read) {
        repeats = Math.max(0, last + 1 - seq)
        if (seq > last + 1) { counts.lost += seq - last - 1; problem(`cycle ${cycle}: first message ${seq} after ${last}`) }
      } else if (seq !== (log[LOG_START + i - 1] >>> 0) + 1) {
        counts.disorder++
        problem(`cycle ${cycle}: ${seq} after ${log[LOG_START + i - 1] >>> 0}`)
      }
      last = Math.max(last, seq)
    }
    // Only what the dead incarnation read and did not release comes again, and the new one says how many.
    if (repeats > announced) { counts.disorder++; problem(`cycle ${cycle}: ${repeats} repeated, ${announced} announced`) }
    counts.repeats += repeats
    read = n
  }
  for (let cycle = 0; cycle <= cycles; cycle++) {
    Atomics.store(log, 1, 0)
    Atomics.store(log, 2, 0)
    Atomics.store(log, 3, 0)
    const final = cycle === cycles
    const { child, exited } = start(fixture, [name, logName, String(seed)])
    if (final) {
      await poll(() => Atomics.load(log, 1) === 1, 30_000)
      run.stopping = true
      await sending
      await exited
    } else {
      // One kill in ten lands while the process starts, before its end may be open.
      if (!random.chance(0.1)) await poll(() => Atomics.load(log, 1) === 1, 30_000)
      await sleep(random.int(40))
      child.kill('SIGKILL')
      await exited
      counts.cycles++
    }
    examine(cycle)
  }
  counts.lost += Math.max(0, counts.sent - 1 - last)
  return counts
}

export interface ProducerLoopCounts {
  cycles: number
  takeovers: number
  /** Messages the consumer here received: one gapless stream. */
  received: number
  /** Of which larger than a quarter of the ring (in fragments). */
  fragmented: number
  lost: number
  duplicated: number
  torn: number
  /** Errors the consumer's receive saw (ERR_PEER_DEAD must not be one under 'wait'). */
  errors: string[]
  problems: string[]
}

/**
 * Producer restart loop: a consumer here, opened once with onPeerDeath
 * 'wait', receives while a producer process streams from the number the
 * consumer reports; the producer is SIGKILLed at a random moment, the
 * consumer drains what it had published, and a new producer takes over from
 * the next number. `cycles` times.
 */
export async function producerRestartLoop (t: Test, cycles: number, seed: number): Promise<ProducerLoopCounts> {
  const [fixture] = transpileFixtures(t, ['restart-producer.ts'])
  const spec: SizeSpec = { min: 8, max: 600, rareEvery: 30, rareMax: 12 * KiB }
  const random = new Prng(seed)
  const name = channelName()
  const stateName = channelName()
  const stateRegion = Region.create(stateName, 4096)
  const state = new Int32Array(stateRegion.buffer)
  t.teardown(() => { stateRegion.close(); unlinkIfPresent(stateName); unlinkIfPresent(name) })
  const consumer = Consumer.open<Uint8Array>(name, { codec: 'bytes', capacity: 16 * KiB, onPeerDeath: 'wait', peerDeathTimeout: 60_000, peerCheckInterval: 20 })
  const verifier = new StreamVerifier(seed, spec)
  const counts: ProducerLoopCounts = { cycles: 0, takeovers: 0, received: 0, fragmented: 0, lost: 0, duplicated: 0, torn: 0, errors: [], problems: [] }
  const take = (message: Uint8Array): void => {
    verifier.check(message)
    if (message.length > consumer.capacity / 4 - 8) counts.fragmented++
  }
  for (let cycle = 0; cycle < cycles; cycle++) {
    Atomics.store(state, 0, 0)
    Atomics.store(state, 1, 0)
    const { child, exited } = start(fixture, [name, stateName, String(seed), JSON.stringify(spec), String(verifier.next), String(random.u32())])
    if (!random.chance(0.1)) await poll(() => Atomics.load(state, 0) === 1, 30_000)
    // Receive for a while, then kill: the producer may be writing, waiting for room, or idle.
    const killAt = performance.now() + random.int(40)
    for (;;) {
      const left = killAt - performance.now()
      if (left <= 0) break
      try {
        take(await consumer.receive({ timeout: left }))
      } catch (err) {
        const code = (err as { code?: string }).code ?? String(err)
        if (code === 'ERR_TIMEOUT') break
        counts.errors.push(code)
        break
      }
    }
    child.kill('SIGKILL')
    await exited
    if (Atomics.load(state, 1) === 1) counts.takeovers++
    // The dead producer published what it published: drain it, so the next starts after it.
    for (;;) {
      let message: Uint8Array | undefined
      try {
        message = consumer.tryReceive()
      } catch (err) {
        counts.errors.push((err as { code?: string }).code ?? String(err))
        break
      }
      if (message === undefined) break
      take(message)
    }
    counts.cycles++
  }
  const report = verifier.report
  counts.received = report.received
  counts.lost = report.lost
  counts.duplicated = report.duplicated
  counts.torn = report.torn
  counts.problems = report.problems
  consumer.close()
  return counts
}

export interface BothLoopCounts {
  cycles: number
  producerKills: number
  consumerKills: number
  /** Messages the producers published (the last number + 1). */
  published: number
  /** Log entries across consumer incarnations, repeats included. */
  received: number
  /** Entries that repeated a number already received. */
  repeats: number
  /** Numbers below `published` never received. */
  lost: number
  /** An entry more than one past the highest received before it. */
  gaps: number
  torn: number
  problems: string[]
}

/**
 * Both ends restarted: a producer process and a consumer process, and each
 * cycle SIGKILLs one of them or both at a random moment and starts them
 * again. A new producer resumes after the last message its predecessor
 * counted as published (it may have published one more: that one comes
 * twice). Small messages only (see consumerRestartLoop). Checks that no
 * number is skipped and every one arrives.
 */
export async function bothRestartLoop (t: Test, cycles: number, seed: number): Promise<BothLoopCounts> {
  const [consumerFixture, producerFixture] = transpileFixtures(t, ['restart-consumer.ts', 'restart-producer.ts'])
  const spec: SizeSpec = { min: 8, max: 600 }
  const random = new Prng(seed)
  const name = channelName()
  const logName = channelName()
  const stateName = channelName()
  const logRegion = Region.create(logName, 4 * (LOG_START + 4_000_000))
  const stateRegion = Region.create(stateName, 4096)
  const log = new Int32Array(logRegion.buffer)
  const state = new Int32Array(stateRegion.buffer)
  t.teardown(() => { logRegion.close(); stateRegion.close(); unlinkIfPresent(logName); unlinkIfPresent(stateName); unlinkIfPresent(name) })
  const counts: BothLoopCounts = { cycles: 0, producerKills: 0, consumerKills: 0, published: 0, received: 0, repeats: 0, lost: 0, gaps: 0, torn: 0, problems: [] }
  const startProducer = (): { child: ChildProcess, exited: Promise<void> } => {
    Atomics.store(state, 0, 0)
    return start(producerFixture, [name, stateName, String(seed), JSON.stringify(spec), String(Atomics.load(state, 2)), String(random.u32())])
  }
  const startConsumer = (): { child: ChildProcess, exited: Promise<void> } => {
    Atomics.store(log, 1, 0)
    return start(consumerFixture, [name, logName, String(seed)])
  }
  let producer = startProducer()
  let consumer = startConsumer()
  for (let cycle = 0; cycle < cycles; cycle++) {
    // One cycle in ten kills while the processes may still be starting.
    if (!random.chance(0.1)) await poll(() => Atomics.load(state, 0) === 1 && Atomics.load(log, 1) === 1, 30_000)
    await sleep(random.int(60))
    const which = random.int(5) // 0, 1: producer; 2, 3: consumer; 4: both
    if (which <= 1 || which === 4) {
      producer.child.kill('SIGKILL')
      await producer.exited
      counts.producerKills++
    }
    if (which >= 2) {
      consumer.child.kill('SIGKILL')
      await consumer.exited
      counts.consumerKills++
    }
    if (which <= 1 || which === 4) producer = startProducer()
    if (which >= 2) consumer = startConsumer()
    counts.cycles++
  }
  // Stop the producer, then let the consumer read everything it published.
  producer.child.kill('SIGKILL')
  await producer.exited
  counts.published = Atomics.load(state, 2)
  const highest = (): number => {
    const n = Atomics.load(log, 0)
    let max = -1
    for (let i = Math.max(0, n - 64); i < n; i++) max = Math.max(max, log[LOG_START + i] >>> 0)
    return max
  }
  await poll(() => highest() >= counts.published - 1, 60_000)
  consumer.child.kill('SIGKILL')
  await consumer.exited
  const n = Atomics.load(log, 0)
  const seen = new Uint8Array(counts.published + 2)
  let max = -1
  for (let i = 0; i < n; i++) {
    const seq = log[LOG_START + i] >>> 0
    counts.received++
    if (seq > max + 1) {
      counts.gaps++
      if (counts.problems.length < 10) counts.problems.push(`entry ${i}: ${seq} after a highest of ${max}`)
    }
    if (seq < seen.length && seen[seq] === 1) counts.repeats++
    if (seq < seen.length) seen[seq] = 1
    max = Math.max(max, seq)
  }
  for (let seq = 0; seq < counts.published; seq++) if (seen[seq] === 0) counts.lost++
  counts.torn = log[4]
  return counts
}
