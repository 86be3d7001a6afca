// Several processes share one key-value store: configuration that any of
// them may change, a counter per worker, and a watcher that prints each
// configuration change as it happens in another process.
//
//   node examples/kv-config/main.mjs [--workers 3] [--increments 2000]
//
// Counters: each worker owns its key (`counters/<worker>`), so no two
// processes read-modify-write the same key; the total is their sum.
import { fork } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Store } from 'shm-channel'

const args = process.argv.slice(2)
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? Number(args[i + 1]) : fallback
}
const workers = option('workers', 3)
const increments = option('increments', 2000)

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kv-config-'))
const file = path.join(dir, 'app.kv')
/** @type {Store<any>} */
const store = Store.open(file)
store.set('config/greeting', 'hello')
store.set('config/batchSize', 100)

const start = (role, ...rest) => {
  const child = fork(path.join(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), 'worker.mjs'), [role, file, ...rest.map(String)])
  const exited = new Promise((resolve) => child.once('exit', resolve))
  const ready = new Promise((resolve) => child.once('message', resolve))
  return { child, exited, ready }
}

const watcher = start('watcher')
await watcher.ready
const running = Array.from({ length: workers }, (_, i) => start('worker', `w${i}`, increments))
await Promise.all(running.map((w) => w.ready))

// Change the configuration while the workers run: they pick it up on their next get; the watcher prints it.
store.set('config/greeting', 'bonjour')
store.set('config/batchSize', 250)
await Promise.all(running.map((w) => w.exited))

let total = 0
for (const [key, value] of store.entries('counters/')) {
  console.log(`${key} = ${value}`)
  total += value
}
console.log(`total ${total} of ${workers * increments} increments`)
store.set('config/stop', true)
await watcher.exited
store.close()
fs.rmSync(dir, { recursive: true, force: true })
