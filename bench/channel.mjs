// Channel throughput and round-trip latency between two Node processes.
//
//   node bench/channel.mjs [--quick]
//
// Throughput: 64-byte messages, raw-bytes codec, the producer in this process
// and the consumer in a child. Round trips: 64-byte ping/pong over two
// channels for each waiting strategy, with blocking receiveSync on both sides
// ("sync") and with event-loop receive() on both sides ("async"), each with
// the two processes placed by the scheduler and again pinned to one CPU
// each (a diagnostic: where the tail comes from), with the round trips over
// the adaptive spin budget and both processes' garbage-collection pauses.
import { fork } from 'node:child_process'
import fs from 'node:fs'
import { PerformanceObserver } from 'node:perf_hooks'
import { Producer, Consumer } from 'shm-channel'
import { allowedCpus, pinProcess } from './lib/affinity.mjs'

const quick = process.argv.includes('--quick')
const role = process.argv[2]

function percentile (sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

/** Counts this process's garbage-collection pauses from now until the returned function is called. */
function watchGc () {
  const gc = { pauses: 0, ms: 0, maxMs: 0 }
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gc.pauses++
      gc.ms += entry.duration
      gc.maxMs = Math.max(gc.maxMs, entry.duration)
    }
  })
  observer.observe({ entryTypes: ['gc'] })
  return () => { observer.disconnect(); return gc }
}

if (role === 'stream-consumer') {
  const consumer = Consumer.open(process.argv[3], { codec: 'bytes', wait: 'adaptive' })
  process.send('ready')
  let n = 0
  let start = 0
  for (;;) {
    try { consumer.receiveSync() } catch (err) { if (err.code === 'ERR_CHANNEL_CLOSED') break; throw err }
    if (n++ === 0) start = performance.now()
  }
  process.send({ n, ms: performance.now() - start })
  consumer.close()
} else if (role === 'echo') {
  const [name, wait, mode] = process.argv.slice(3)
  const pings = Consumer.open(`${name}-ping`, { codec: 'bytes', wait: /** @type {import('shm-channel').WaitStrategy} */ (wait) })
  const pongs = Producer.open(`${name}-pong`, { codec: 'bytes', wait: /** @type {import('shm-channel').WaitStrategy} */ (wait) })
  const gcDone = watchGc()
  process.send('ready')
  try {
    if (mode === 'sync') for (;;) pongs.trySend(pings.receiveSync())
    else for await (const m of pings) pongs.trySend(m)
  } catch (err) {
    if (err.code !== 'ERR_CHANNEL_CLOSED') throw err
  }
  pongs.close()
  pings.close()
  // The observer reports from the event loop: let it run once.
  await new Promise((resolve) => setImmediate(resolve))
  process.send({ gc: gcDone() }, () => process.disconnect())
} else {
  const results = { machine: `${process.platform} ${process.arch}, ${(await import('node:os')).cpus().length} cores`, node: process.version, date: new Date().toISOString(), throughput: {}, roundTrip: [] }
  const ready = (child) => new Promise((resolve, reject) => {
    child.once('message', resolve)
    child.once('exit', (code) => reject(new Error(`child exited ${code}`)))
  })

  // Throughput.
  const count = quick ? 1_000_000 : 5_000_000
  const name = `bench-${process.pid}`
  const producer = Producer.open(name, { codec: 'bytes' })
  const child = fork(new URL(import.meta.url), ['stream-consumer', name])
  await ready(child)
  const message = Buffer.alloc(64)
  const t0 = performance.now()
  for (let i = 0; i < count; i++) if (!producer.trySend(message)) producer.sendSync(message)
  producer.close()
  const done = await new Promise((resolve) => child.once('message', resolve))
  const seconds = (performance.now() - t0) / 1000
  results.throughput = { size: 64, messages: done.n, msgPerSec: Math.round(done.n / seconds) }
  console.log(`64-byte messages, bytes codec: ${(done.n / seconds / 1e6).toFixed(2)} M msg/s (${done.n} in ${seconds.toFixed(2)} s)`)

  // Round trips.
  const trips = quick ? 10_000 : 50_000
  const cpus = allowedCpus()
  const placements = cpus !== undefined && cpus.length >= 2 ? ['scheduler', 'pinned'] : ['scheduler']
  console.log('\n| wait | mode | placement | p50 µs | p99 µs | p99.9 µs | trips > 50 µs | gc pauses (ms, longest) here / echo |\n|---|---|---|---:|---:|---:|---:|---|')
  for (const wait of ['spin', 'adaptive', 'block']) {
    for (const mode of ['sync', 'async']) {
      for (const placement of placements) {
        const n = `${name}-${wait}-${mode}-${placement}`
        const pings = Producer.open(`${n}-ping`, { codec: 'bytes', wait: /** @type {import('shm-channel').WaitStrategy} */ (wait) })
        const pongs = Consumer.open(`${n}-pong`, { codec: 'bytes', wait: /** @type {import('shm-channel').WaitStrategy} */ (wait) })
        const echo = fork(new URL(import.meta.url), ['echo', n, wait, mode])
        await ready(echo)
        if (placement === 'pinned') {
          pinProcess([cpus[0]])
          pinProcess([cpus[1]], echo.pid)
        }
        const echoGc = new Promise((resolve) => echo.once('message', (m) => resolve(/** @type {{ gc: object }} */ (m).gc)))
        const ping = Buffer.alloc(64)
        const samples = new Float64Array(trips)
        let gcDone
        for (let i = -2000; i < trips; i++) {
          if (i === 0) gcDone = watchGc()
          const t = performance.now()
          pings.trySend(ping)
          if (mode === 'sync') pongs.receiveSync()
          else await pongs.receive()
          if (i >= 0) samples[i] = (performance.now() - t) * 1000
        }
        await new Promise((resolve) => setImmediate(resolve))
        const gc = gcDone()
        pings.close()
        const theirGc = await echoGc
        await new Promise((resolve) => echo.once('exit', resolve))
        pongs.close()
        if (placement === 'pinned') pinProcess(cpus)
        const over = samples.reduce((k, us) => k + (us > 50 ? 1 : 0), 0)
        samples.sort()
        const row = { wait, mode, placement, p50: percentile(samples, 0.5), p99: percentile(samples, 0.99), p999: percentile(samples, 0.999), over50us: over, trips, gc, echoGc: theirGc }
        results.roundTrip.push(row)
        const gcText = (g) => `${g.pauses} (${g.ms.toFixed(1)}, longest ${g.maxMs.toFixed(1)})`
        console.log(`| ${wait} | ${mode} | ${placement} | ${row.p50.toFixed(1)} | ${row.p99.toFixed(1)} | ${row.p999.toFixed(1)} | ${(100 * over / trips).toFixed(2)} % | ${gcText(gc)} / ${gcText(theirGc)} |`)
      }
    }
  }
  fs.mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
  fs.writeFileSync(new URL('./results/channel.json', import.meta.url), JSON.stringify(results, null, 2) + '\n')
}
