// A sidecar process answering requests over shared memory, and a client that
// measures request/response latency (p50/p99/p99.9) and throughput.
//
//   node examples/sidecar/main.mjs [--requests N] [--in-flight N]
//
// The sidecar (sidecar.mjs) calls serve(name, handler); this process calls
// connect(name) (which waits for the sidecar to be up) and client.request().
import { fork } from 'node:child_process'
import { parseArgs } from 'node:util'
import { connect } from 'shm-channel'

const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '50000' },
    'in-flight': { type: 'string', default: '256' }
  }
})
const requests = Number(args.requests)
const inFlight = Number(args['in-flight'])

const name = `sidecar-example-${process.pid}`
const sidecar = fork(new URL('./sidecar.mjs', import.meta.url), [name])
const exited = new Promise((resolve) => sidecar.once('exit', (code, signal) => resolve({ code, signal })))

let started = performance.now()
const client = await connect(name, { timeout: 10_000 })
console.log(`connected to the sidecar (pid ${client.serverPid}) in ${(performance.now() - started).toFixed(1)} ms`)

// A few requests, and what failures look like.
console.log(`add(2, 3) = ${await client.request({ op: 'add', a: 2, b: 3 })}`)
console.log(`upper("shared memory") = ${await client.request({ op: 'upper', text: 'shared memory' })}`)
try {
  await client.request({ op: 'divide', a: 1, b: 0 })
} catch (err) {
  console.log(`divide(1, 0) failed: ${err.code} "${err.message}" (remote ${err.remoteName} ${err.remoteCode})`)
}
try {
  await client.request({ op: 'sleep', ms: 10_000 }, { timeout: 50 })
} catch (err) {
  console.log(`sleep(10 s) with a 50 ms timeout: ${err.code}`)
}

// Latency: one request at a time.
console.log(`measuring latency over ${requests.toLocaleString()} sequential requests`)
for (let i = 0; i < Math.min(1000, requests); i++) await client.request({ op: 'ping' }) // warm-up
const samples = new Float64Array(requests)
let done = 0
started = performance.now()
const progress = setInterval(() => {
  console.log(`  ${done.toLocaleString()} requests (${(done / ((performance.now() - started) / 1000)).toFixed(0)} req/s)`)
}, 500)
for (; done < requests; done++) {
  const t = performance.now()
  await client.request({ op: 'ping' })
  samples[done] = (performance.now() - t) * 1000
}
clearInterval(progress)
samples.sort()
const pct = (p) => samples[Math.min(samples.length - 1, Math.ceil(p * samples.length) - 1)].toFixed(1)
console.log(`latency: p50 ${pct(0.5)} µs, p99 ${pct(0.99)} µs, p99.9 ${pct(0.999)} µs`)

// Throughput: many requests in flight, replies matched by id.
console.log(`measuring throughput with ${inFlight} requests in flight`)
started = performance.now()
let answered = 0
let wrong = 0
async function lane (lane) {
  for (let i = lane; i < requests; i += inFlight) {
    if (await client.request({ op: 'add', a: i, b: 1 }) !== i + 1) wrong++
    answered++
  }
}
await Promise.all(Array.from({ length: inFlight }, (_, k) => lane(k)))
const seconds = (performance.now() - started) / 1000
console.log(`throughput: ${(answered / seconds).toFixed(0)} req/s (${answered.toLocaleString()} requests, ${wrong} wrong answers)`)

client.close()
sidecar.disconnect() // the sidecar closes its server and exits
const { code } = await exited
console.log(`sidecar exited with code ${code}`)
if (code !== 0 || wrong !== 0) process.exitCode = 1
