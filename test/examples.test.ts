/**
 * The examples run as written: each is started as a user would
 * (`node examples/<name>/main.mjs`, importing 'shm-channel', which resolves
 * to dist/), with small counts so it finishes in seconds. Each must exit 0,
 * print its key lines, and leave nothing in /dev/shm.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'

import { ensureCompiled } from './support/dist'

const root = path.join(__dirname, '..')

interface Run {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  pid: number
}

/** Runs an example to its end (killed after `limitMs`), collecting its output. */
async function runExample (example: string, args: string[], limitMs = 120_000): Promise<Run> {
  const child = spawn(process.execPath, [path.join(root, 'examples', example, 'main.mjs'), ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const timer = setTimeout(() => { child.kill('SIGKILL') }, limitMs)
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
    child.once('exit', (code, signal) => { resolve([code, signal]) })
  })
  clearTimeout(timer)
  return { code, signal, stdout, stderr, pid: child.pid ?? -1 }
}

/** /dev/shm entries whose name starts with `prefix`. */
function leftovers (prefix: string): string[] {
  return fs.readdirSync('/dev/shm').filter((entry) => entry.startsWith(prefix))
}

ensureCompiled()

t.test('examples/worker-processes: jobs over duplexes and over process.send, same results', async (t) => {
  const run = await runExample('worker-processes', ['--workers', '2', '--jobs', '20000', '--window', '64'])
  t.same({ code: run.code, signal: run.signal }, { code: 0, signal: null }, run.stderr)
  t.match(run.stdout, /^2 worker processes, 20,000 jobs, up to 64 in flight per worker$/m)
  t.match(run.stdout, /over shm-channel duplexes:\n(?:.*\n)*? {2}20,000 jobs in [\d.]+ s: \d+ jobs\/s; results check out\n/)
  t.match(run.stdout, /over child_process IPC \(process\.send\):\n(?:.*\n)*? {2}20,000 jobs in [\d.]+ s: \d+ jobs\/s; results check out\n/)
  t.match(run.stdout, /^shm-channel: [\d.]+x the throughput of child_process IPC$/m)
  t.same(leftovers(`worker-processes-${run.pid}-`), [])
})

t.test('examples/sidecar: requests, errors, a timeout, latency percentiles', async (t) => {
  const run = await runExample('sidecar', ['--requests', '3000', '--in-flight', '32'])
  t.same({ code: run.code, signal: run.signal }, { code: 0, signal: null }, run.stderr)
  t.match(run.stdout, /^connected to the sidecar \(pid \d+\) in [\d.]+ ms$/m)
  t.match(run.stdout, /^add\(2, 3\) = 5$/m)
  t.match(run.stdout, /^upper\("shared memory"\) = SHARED MEMORY$/m)
  t.match(run.stdout, /^divide\(1, 0\) failed: ERR_REMOTE "division by zero" \(remote RangeError E_DIV_ZERO\)$/m)
  t.match(run.stdout, /^sleep\(10 s\) with a 50 ms timeout: ERR_TIMEOUT$/m)
  t.match(run.stdout, /^latency: p50 [\d.]+ µs, p99 [\d.]+ µs, p99\.9 [\d.]+ µs$/m)
  t.match(run.stdout, /^throughput: \d+ req\/s \(3,000 requests, 0 wrong answers\)$/m)
  t.match(run.stdout, /^sidecar exited with code 0$/m)
  t.same(leftovers(`sidecar-example-${run.pid}`), [])
})

t.test('examples/producer-consumer: a stream in order, then round trips', async (t) => {
  const run = await runExample('producer-consumer', ['--count', '100000', '--round-trips', '2000'])
  t.same({ code: run.code, signal: run.signal }, { code: 0, signal: null }, run.stderr)
  t.match(run.stdout, /^consumer received 100,000 messages in order: true$/m)
  t.match(run.stdout, /round trip p50 [\d.]+ µs, p99 [\d.]+ µs, p99\.9 [\d.]+ µs$/m)
  t.same(leftovers(`demo-${run.pid}-`), [])
})

t.test('examples/kv-config: every increment counted, every configuration change heard by the watcher', async (t) => {
  const run = await runExample('kv-config', ['--workers', '2', '--increments', '500'])
  t.same({ code: run.code, signal: run.signal }, { code: 0, signal: null }, run.stderr)
  t.match(run.stdout, 'total 1000 of 1000 increments')
  t.match(run.stdout, 'watcher: config/greeting = "bonjour"')
  t.match(run.stdout, 'watcher: config/batchSize = 250')
})

t.test('examples/pubsub: every subscriber gets every tick, in order', async (t) => {
  const run = await runExample('pubsub', ['--subscribers', '2', '--ticks', '20000'])
  t.same({ code: run.code, signal: run.signal }, { code: 0, signal: null }, run.stderr)
  t.match(run.stdout, /^subscriber 0: 20,000 ticks, in order: true$/m)
  t.match(run.stdout, /^subscriber 1: 20,000 ticks, in order: true$/m)
  t.match(run.stdout, /^published 20,000 ticks once to 2 subscribers: [\d.]+ M deliveries\/s$/m)
  t.same(leftovers(`prices-${run.pid}`), [])
})

t.test('examples/fan-in: the reports of every worker collected, each in order', async (t) => {
  const run = await runExample('fan-in', ['--workers', '3', '--reports', '20000'])
  t.same({ code: run.code, signal: run.signal }, { code: 0, signal: null }, run.stderr)
  t.match(run.stdout, /^collected 60,000 reports from 3 workers, each in order: true$/m)
  t.match(run.stdout, /claims skipped: 0$/m)
  t.same(leftovers(`reports-${run.pid}`), [])
})
