// A parent hands jobs to N worker processes and gathers the results: once
// over shm-channel duplexes (one per worker), once over child_process IPC
// (process.send), and compares their throughput.
//
//   node examples/worker-processes/main.mjs [--workers N] [--jobs N] [--window N]
//
// Each worker gets up to `window` jobs at a time; a new job goes to a worker
// as soon as one of its results comes back. The results are checked against
// the same work done here.
import { fork } from 'node:child_process'
import os from 'node:os'
import { parseArgs } from 'node:util'
import { Duplex } from 'shm-channel'
import { makeJob, work } from './job.mjs'

const { values: args } = parseArgs({
  options: {
    workers: { type: 'string', default: String(Math.max(1, Math.min(4, os.availableParallelism()))) },
    jobs: { type: 'string', default: '500000' },
    window: { type: 'string', default: '256' }
  }
})
const workers = Number(args.workers)
const jobs = Number(args.jobs)
const window = Number(args.window)
const workerUrl = new URL('./worker.mjs', import.meta.url)

let expected = 0
for (let id = 0; id < jobs; id++) expected += work(makeJob(id)).steps

console.log(`${workers} worker processes, ${jobs.toLocaleString()} jobs, up to ${window} in flight per worker`)

/** Runs `body` with a progress line every 500 ms; returns jobs per second. */
async function timed (label, body) {
  console.log(label)
  const progress = { done: 0 }
  const started = performance.now()
  const timer = setInterval(() => {
    console.log(`  ${progress.done.toLocaleString()} jobs done (${(progress.done / ((performance.now() - started) / 1000)).toFixed(0)} jobs/s)`)
  }, 500)
  const total = await body(progress)
  clearInterval(timer)
  const seconds = (performance.now() - started) / 1000
  const rate = jobs / seconds
  console.log(`  ${jobs.toLocaleString()} jobs in ${seconds.toFixed(2)} s: ${rate.toFixed(0)} jobs/s; results ${total === expected ? 'check out' : `DO NOT check out (${total} != ${expected})`}`)
  if (total !== expected) process.exitCode = 1
  return rate
}

const exited = (child) => new Promise((resolve) => child.once('exit', (code) => resolve(code)))

// shm-channel: one duplex per worker; the parent listens, the worker connects.
const shmRate = await timed('over shm-channel duplexes:', async (progress) => {
  let next = 0
  let total = 0
  const children = []
  const drive = async (duplex) => {
    let inFlight = 0
    for (;;) {
      while (inFlight < window && next < jobs) {
        const job = makeJob(next++)
        if (!duplex.trySend(job)) await duplex.send(job)
        inFlight++
      }
      if (inFlight === 0) return
      // Wait for one result, then take whatever else has arrived.
      let result = await duplex.receive()
      do {
        total += result.steps
        inFlight--
        progress.done++
      } while ((result = duplex.tryReceive()) !== undefined)
    }
  }
  const drivers = []
  for (let w = 0; w < workers; w++) {
    const name = `worker-processes-${process.pid}-${w}`
    const duplex = Duplex.listen(name)
    children.push(exited(fork(workerUrl, ['shm', name])))
    drivers.push(drive(duplex).finally(() => duplex.close())) // closing ends the worker's loop
  }
  await Promise.all(drivers)
  const codes = await Promise.all(children)
  if (codes.some((code) => code !== 0)) throw new Error(`a worker exited with ${codes}`)
  return total
})

// child_process IPC: the same protocol with process.send / 'message'.
const ipcRate = await timed('over child_process IPC (process.send):', async (progress) => {
  let next = 0
  let total = 0
  const runs = []
  for (let w = 0; w < workers; w++) {
    const child = fork(workerUrl, ['ipc'])
    const code = exited(child)
    runs.push(new Promise((resolve) => {
      let inFlight = 0
      const fill = () => {
        while (inFlight < window && next < jobs) {
          child.send(makeJob(next++))
          inFlight++
        }
        if (inFlight === 0) {
          child.disconnect()
          resolve(code)
        }
      }
      child.on('message', (/** @type {any} */ result) => {
        total += result.steps
        inFlight--
        progress.done++
        fill()
      })
      fill()
    }))
  }
  const codes = await Promise.all(runs)
  if (codes.some((code) => code !== 0)) throw new Error(`a worker exited with ${codes}`)
  return total
})

console.log(`shm-channel: ${(shmRate / ipcRate).toFixed(1)}x the throughput of child_process IPC`)
