// Many-to-one: several worker processes report into one collector through
// one fan-in ring. Each worker's reports arrive in the order it sent them.
//
//   node examples/fan-in/main.mjs [--workers N] [--reports N]
import { fork } from 'node:child_process'
import { parseArgs } from 'node:util'
import { FanInConsumer } from 'shm-channel'

const { values: args } = parseArgs({
  options: {
    workers: { type: 'string', default: '4' },
    reports: { type: 'string', default: '100000' }
  }
})
const workers = Number(args.workers)
const reports = Number(args.reports)

const name = `reports-${process.pid}`
/** @type {FanInConsumer<{ worker: number, seq: number, value: number }>} */
const collector = FanInConsumer.open(name, { maxProducers: workers })
const children = Array.from({ length: workers }, (_, id) => fork(new URL('./worker.mjs', import.meta.url), [name, String(id), String(reports)]))
const exited = children.map((child) => new Promise((resolve) => child.once('exit', resolve)))

const start = performance.now()
const next = new Array(workers).fill(0)
let inOrder = true
for (let n = 0; n < workers * reports; n++) {
  const report = collector.tryReceive() ?? await collector.receive()
  if (report.seq !== next[report.worker]) inOrder = false
  next[report.worker]++
}
const seconds = (performance.now() - start) / 1000
await Promise.all(exited)
collector.close()
console.log(`collected ${(workers * reports).toLocaleString()} reports from ${workers} workers, each in order: ${inOrder}`)
console.log(`  ${(workers * reports / seconds / 1e6).toFixed(2)} M reports/s, claims skipped: ${collector.skipped}`)
