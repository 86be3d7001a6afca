/**
 * A seeded crash loop: hundreds of times, a producer process streams
 * sequence-numbered, checksummed messages (some fragmented, some written in
 * place with claim/commit) and is SIGKILLed at a random moment; the consumer
 * here checks that what it delivered is exactly messages 0..k-1, whole, in
 * order, each once, with k at least what the producer had counted as
 * published and at most one more; then the name is reopened and the cycle
 * repeats. Producers run as JavaScript transpiled once here (tap's
 * TypeScript loader costs a second and a half per process).
 *
 * REL_CRASH_SEED replays one seed; REL_CRASH_CYCLES sets the cycle count.
 */
import { fork, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import t from 'tap'

import { Consumer, Region } from '../../lib/index'
import { StreamVerifier, type SizeSpec } from '../support/channel-helpers'
import { within } from '../support/peers'
import { channelName, leavesNothingInDevShm, unlinkIfPresent } from '../support/shm'
import { Prng, seedsFromEnv } from '../support/prng'
import { transpileFixtures } from '../support/transpiled'

const KiB = 1024

const SIZES: SizeSpec = { min: 8, max: 600, rareEvery: 40, rareMax: 40 * KiB }
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

t.test('crash loop: SIGKILL at random moments, restart by name, every cycle delivers exactly what was published', async (t) => {
  const [fixture] = transpileFixtures(t, ['rel-crash-producer.ts'])
  const cycles = Number(process.env.REL_CRASH_CYCLES ?? 300)
  for (const seed of seedsFromEnv('REL_CRASH_SEED', [0xc0ffee])) {
    const random = new Prng(seed)
    const name = channelName()
    const counterName = channelName()
    const counterRegion = Region.create(counterName, 4096)
    const counter = new Int32Array(counterRegion.buffer)
    t.teardown(() => { counterRegion.close(); unlinkIfPresent(counterName); unlinkIfPresent(name) })
    const started = performance.now()
    const totals = { delivered: 0, fragmentedMessages: 0, killedBeforeOpen: 0, producerFirst: 0, extra: 0 }
    const failures: string[] = []
    for (let cycle = 0; cycle < cycles && failures.length < 5; cycle++) {
      const cycleSeed = (seed + cycle * 0x9e3779b9) >>> 0
      Atomics.store(counter, 0, 0)
      Atomics.store(counter, 1, 0)
      const producerFirst = random.chance(0.3)
      let consumer: Consumer<Uint8Array> | undefined
      const open = (): Consumer<Uint8Array> => Consumer.open<Uint8Array>(name, { codec: 'bytes', capacity: 64 * KiB, peerCheckInterval: 20, openTimeout: 500 })
      if (!producerFirst) consumer = open()
      const child: ChildProcess = fork(fixture, [name, counterName, String(cycleSeed), JSON.stringify(SIZES), String(random.u32())], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      const exited = new Promise<void>((resolve) => child.on('exit', () => { resolve() }))
      const tag = `seed ${seed} cycle ${cycle}`
      try {
        // One cycle in twenty is killed while starting, before its end may even be open.
        if (random.chance(0.05)) {
          await sleep(random.int(60))
          child.kill('SIGKILL')
          await exited
          if (Atomics.load(counter, 1) === 0) {
            totals.killedBeforeOpen++
            consumer?.close()
            unlinkIfPresent(name) // a producer killed while creating leaves a name the next open would wait openTimeout for
            continue
          }
        } else {
          while (Atomics.load(counter, 1) === 0) await sleep(1)
        }
        if (producerFirst) {
          consumer = open()
          totals.producerFirst++
        }
        const verifier = new StreamVerifier(cycleSeed, SIZES)
        const killAt = performance.now() + random.int(120)
        let code: string | undefined
        for (;;) {
          if (child.exitCode === null && child.signalCode === null && performance.now() >= killAt) child.kill('SIGKILL')
          let message: Uint8Array | undefined
          try {
            message = consumer!.tryReceive() ?? await within(10_000, consumer!.receive({ timeout: 5 }).catch((err) => {
              if ((err as { code?: string }).code === 'ERR_TIMEOUT') return undefined
              throw err
            }), `${tag}: receive`)
          } catch (err) {
            code = (err as { code?: string }).code ?? String(err)
            break
          }
          if (message !== undefined) {
            if (message.length > SIZES.max) totals.fragmentedMessages++
            verifier.check(message)
          }
        }
        await exited
        const published = Atomics.load(counter, 0)
        const report = verifier.report
        totals.delivered += report.received
        if (report.received > published) totals.extra++
        const problems: string[] = []
        if (code !== 'ERR_PEER_DEAD') problems.push(`ended with ${code}, not ERR_PEER_DEAD`)
        if (report.intact !== report.received || report.lost + report.duplicated + report.reordered + report.torn > 0) problems.push(`not a clean prefix: ${JSON.stringify(report)}`)
        if (report.received < published) problems.push(`delivered ${report.received}, but ${published} were published`)
        if (report.received > published + 1) problems.push(`delivered ${report.received}, more than the ${published} published plus one in flight`)
        if (problems.length > 0) failures.push(`${tag}: ${problems.join('; ')}`)
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
        await exited
        consumer?.close()
      }
    }
    const seconds = (performance.now() - started) / 1000
    t.same(failures, [], `seed ${seed}: ${cycles} cycles in ${seconds.toFixed(1)} s; ${JSON.stringify(totals)}`)
    t.same(fs.readdirSync('/dev/shm').filter((e) => e === name.replace(/^\//, '')), [], 'the last consumer out removed the name')
  }
})

leavesNothingInDevShm(t)
