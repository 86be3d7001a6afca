// A Node client of a sidecar written in C (sidecar.c, on the C library in
// c/): builds it with make, starts it, sends it requests over one channel and
// reads its answers from another, then measures request/response latency.
//
//   node examples/c-sidecar/main.mjs [--requests N]
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Consumer, Producer } from 'shm-channel'

const { values: args } = parseArgs({ options: { requests: { type: 'string', default: '20000' } } })
const requests = Number(args.requests)

// Build the C library and the sidecar (cc and make, no other dependency).
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const build = fs.mkdtempSync(path.join(os.tmpdir(), 'c-sidecar-'))
execFileSync('make', ['-s', '-C', path.join(root, 'c'), `BUILD=${build}`], { stdio: 'inherit' })

// The client makes both channels, then starts the sidecar, which joins them.
const name = `c-sidecar-example-${process.pid}`
const toSidecar = Producer.open(`${name}-req`, { codec: 'utf8' })
const fromSidecar = Consumer.open(`${name}-res`, { codec: 'utf8' })
const sidecar = spawn(path.join(build, 'c-sidecar'), [name], { stdio: ['ignore', 'inherit', 'inherit'] })
const exited = new Promise((resolve) => sidecar.once('exit', (code, signal) => resolve({ code, signal })))

async function request (text) {
  await toSidecar.send(text)
  return await fromSidecar.receive({ timeout: 10_000 })
}

console.log(`upper "shared memory" = ${await request('upper shared memory')}`)
console.log(`sum 1 2 3 39 = ${await request('sum 1 2 3 39')}`)
console.log(`hello = ${await request('hello')}`)

for (let i = 0; i < Math.min(1000, requests); i++) await request('sum 1 1') // warm-up
const samples = new Float64Array(requests)
const started = performance.now()
for (let i = 0; i < requests; i++) {
  const t = performance.now()
  await request('sum 20 22')
  samples[i] = (performance.now() - t) * 1000
}
const seconds = (performance.now() - started) / 1000
samples.sort()
const pct = (p) => samples[Math.min(samples.length - 1, Math.ceil(p * samples.length) - 1)].toFixed(1)
console.log(`${requests} requests in ${seconds.toFixed(2)} s (${(requests / seconds).toFixed(0)} req/s)`)
console.log(`latency: p50 ${pct(0.5)} µs, p99 ${pct(0.99)} µs, p99.9 ${pct(0.999)} µs`)

toSidecar.close() // the sidecar sees the close, closes its end, and exits
const { code } = await exited
fromSidecar.close()
fs.rmSync(build, { recursive: true, force: true })
console.log(`sidecar exited with code ${code}`)
process.exitCode = code
