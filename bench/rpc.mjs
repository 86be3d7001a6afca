// Request/response between two Node processes: shm-channel's serve/connect
// against what a sidecar would otherwise use, in the same run.
//
//   node bench/rpc.mjs [--quick] [--scale]
//
// Every transport carries the same small JSON request ({ op, id, text }) to
// an echo handler in a child process and back:
//
// - shm-channel rpc, the server and client waiting 'adaptive' (the default)
//   and 'block' (sleep at once: no spinning on a loaded machine);
// - for scale, a bare shm-channel duplex echoing JSON in order (no ids, no
//   rpc layer): what the rpc layer adds is the difference;
// - a Unix domain socket (node:net), each message a u32 length then JSON;
// - HTTP/1.1 on loopback (node:http), POST with a keep-alive agent.
//
// "sequential": one request at a time, latency percentiles of the round trip.
// "in flight": 64 requests outstanding at all times, requests per second.
// Prints a Markdown table and writes bench/results/rpc.json.
//
// Then the server at scale (--scale: only this), in a server process that
// also runs a 100 ms timer and an IPC channel to its parent (a real process,
// not a quiet one): its threads, idle CPU, RSS and /dev/shm with 0 and 1,000
// idle clients (in 4 processes); the round trip of one active client alone
// and with the 1,000 connected (and, as a diagnostic, with the server and that
// client's process pinned to two CPUs); and requests/s of 64 active clients
// in 4 processes against the same load over a Unix socket. Writes
// bench/results/rpc-scale.json.
import { fork } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { Duplex, connect, serve } from 'shm-channel'

import { allowedCpus, pinProcess } from './lib/affinity.mjs'

const quick = process.argv.includes('--quick')
const SEQUENTIAL = quick ? 3_000 : 20_000
const WARMUP = quick ? 300 : 2_000
const IN_FLIGHT = 64
const CONCURRENT = quick ? 5_000 : 30_000

const echo = (request) => request
const scaleOnly = process.argv.includes('--scale')

// ---------------------------------------------------------------------------
// The server process

if (process.argv[2] === 'scale-server') {
  scaleServer(process.argv[3], process.argv[4])
} else if (process.argv[2] === 'scale-client') {
  scaleClient()
} else if (process.argv[2] === 'server') {
  const [name, socketPath] = process.argv.slice(3)
  const servers = [
    serve(`${name}-adaptive`, echo, { wait: 'adaptive' }),
    serve(`${name}-block`, echo, { wait: 'block' })
  ]
  const raw = Duplex.listen(`${name}-raw`)
  void (async () => {
    for await (const message of raw) if (!raw.trySend(message)) await raw.send(message)
    raw.close()
  })()
  const unix = net.createServer((socket) => {
    socket.setNoDelay(true)
    let pending = Buffer.alloc(0)
    socket.on('data', (chunk) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
      let offset = 0
      const out = []
      while (pending.length - offset >= 4) {
        const length = pending.readUInt32LE(offset)
        if (pending.length - offset - 4 < length) break
        const reply = Buffer.from(JSON.stringify(echo(JSON.parse(pending.toString('utf8', offset + 4, offset + 4 + length)))))
        const header = Buffer.allocUnsafe(4)
        header.writeUInt32LE(reply.length, 0)
        out.push(header, reply)
        offset += 4 + length
      }
      pending = pending.subarray(offset)
      if (out.length > 0) socket.write(Buffer.concat(out))
    })
    socket.on('error', () => {})
  }).listen(socketPath)
  const web = http.createServer((req, res) => {
    const chunks = []
    req.on('data', (chunk) => chunks.push(chunk))
    req.on('end', () => {
      const body = JSON.stringify(echo(JSON.parse(Buffer.concat(chunks).toString('utf8'))))
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    })
  })
  web.keepAliveTimeout = 60_000
  web.listen(0, '127.0.0.1', () => { process.send({ port: /** @type {import('node:net').AddressInfo} */ (web.address()).port }) })
  process.on('disconnect', () => {
    for (const server of servers) server.close()
    unix.close()
    web.close()
    web.closeAllConnections()
  })
} else {
  if (!scaleOnly) await main()
  await scale()
}

// ---------------------------------------------------------------------------
// Clients: each returns `request(value) => Promise<value>` and `close()`.

async function shmClient (name, wait) {
  const client = await connect(name, { wait, timeout: 10_000 })
  return { request: (value) => client.request(value), close: () => client.close() }
}

async function duplexClient (name) {
  const duplex = Duplex.connect(name)
  return {
    // Replies come in order: receive() calls are answered in the order they are made.
    request (value) {
      if (!duplex.trySend(value)) throw new Error('the ring is full')
      return duplex.receive()
    },
    close: () => duplex.close()
  }
}

async function unixClient (socketPath) {
  const socket = net.connect(socketPath)
  socket.setNoDelay(true)
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  // Replies come in request order: a FIFO of callers matches them.
  const waiting = []
  let head = 0
  let pending = Buffer.alloc(0)
  socket.on('data', (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
    let offset = 0
    while (pending.length - offset >= 4) {
      const length = pending.readUInt32LE(offset)
      if (pending.length - offset - 4 < length) break
      const value = JSON.parse(pending.toString('utf8', offset + 4, offset + 4 + length))
      offset += 4 + length
      waiting[head++](value)
      if (head > 4096) { waiting.splice(0, head); head = 0 }
    }
    pending = pending.subarray(offset)
  })
  return {
    request (value) {
      const body = Buffer.from(JSON.stringify(value))
      const frame = Buffer.allocUnsafe(4 + body.length)
      frame.writeUInt32LE(body.length, 0)
      body.copy(frame, 4)
      socket.write(frame)
      return new Promise((resolve) => { waiting.push(resolve) })
    },
    close: () => socket.destroy()
  }
}

function httpClient (port) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: IN_FLIGHT })
  return {
    request (value) {
      const body = JSON.stringify(value)
      return new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, path: '/', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
          const chunks = []
          res.on('data', (chunk) => chunks.push(chunk))
          res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))))
          res.on('error', reject)
        })
        req.on('error', reject)
        req.end(body)
      })
    },
    close: () => agent.destroy()
  }
}

// ---------------------------------------------------------------------------
// Measurement

function percentile (sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]
}

async function measure (label, client) {
  const request = (id) => ({ op: 'echo', id, text: 'hello, sidecar' })
  for (let i = 0; i < WARMUP; i++) await client.request(request(i))
  const samples = new Float64Array(SEQUENTIAL)
  const started = performance.now()
  for (let i = 0; i < SEQUENTIAL; i++) {
    const t = performance.now()
    const reply = await client.request(request(i))
    samples[i] = (performance.now() - t) * 1000
    if (reply.id !== i) throw new Error(`${label}: reply ${reply.id} for request ${i}`)
  }
  const sequentialSeconds = (performance.now() - started) / 1000
  samples.sort()
  // In flight: IN_FLIGHT lanes, each sending its next request when its last is answered.
  let next = 0
  const lane = async () => {
    while (next < CONCURRENT) {
      const id = next++
      const reply = await client.request(request(id))
      if (reply.id !== id) throw new Error(`${label}: reply ${reply.id} for request ${id}`)
    }
  }
  const t0 = performance.now()
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane))
  const concurrentSeconds = (performance.now() - t0) / 1000
  const row = {
    transport: label,
    p50: percentile(samples, 0.5),
    p99: percentile(samples, 0.99),
    p999: percentile(samples, 0.999),
    sequentialPerSec: SEQUENTIAL / sequentialSeconds,
    inFlightPerSec: CONCURRENT / concurrentSeconds
  }
  console.error(`  ${label}: p50 ${row.p50.toFixed(1)} µs, ${row.inFlightPerSec.toFixed(0)} req/s in flight`)
  return row
}

async function main () {
  const name = `bench-rpc-${process.pid}`
  const socketPath = path.join(os.tmpdir(), `${name}.sock`)
  const child = fork(new URL(import.meta.url), ['server', name, socketPath])
  const exited = new Promise((resolve) => child.once('exit', resolve))
  const cleanup = () => {
    try { fs.unlinkSync(socketPath) } catch {}
  }
  process.on('exit', () => {
    child.kill('SIGKILL')
    cleanup()
  })
  const { port } = await new Promise((resolve, reject) => {
    child.once('message', resolve)
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)))
  })

  console.error(`${SEQUENTIAL.toLocaleString()} sequential round trips and ${CONCURRENT.toLocaleString()} with ${IN_FLIGHT} in flight per transport`)
  const rows = []
  for (const [label, open] of /** @type {Array<[string, () => Promise<any>]>} */ ([
    ['shm-channel rpc (adaptive)', () => shmClient(`${name}-adaptive`, 'adaptive')],
    ['shm-channel rpc (block)', () => shmClient(`${name}-block`, 'block')],
    ['shm-channel bare duplex (adaptive)', () => duplexClient(`${name}-raw`)],
    ['Unix socket, length-prefixed', () => unixClient(socketPath)],
    ['HTTP/1.1 loopback, keep-alive', () => httpClient(port)]
  ])) {
    const client = await open()
    try {
      rows.push(await measure(label, client))
    } finally {
      client.close()
    }
  }

  child.disconnect()
  await exited
  cleanup()

  const cpus = os.cpus()
  const machine = `${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, Linux ${os.release()}, Node ${process.version}`
  console.log(`\nRequest/response round trip, small JSON, two processes (${machine}; load average ${os.loadavg()[0].toFixed(1)} at start)\n`)
  console.log('| transport | p50 µs | p99 µs | p99.9 µs | sequential req/s | 64 in flight req/s |')
  console.log('|---|---:|---:|---:|---:|---:|')
  for (const r of rows) {
    console.log(`| ${r.transport} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.p999.toFixed(1)} | ${r.sequentialPerSec.toFixed(0)} | ${r.inFlightPerSec.toFixed(0)} |`)
  }
  const results = {
    machine,
    node: process.version,
    date: new Date().toISOString(),
    loadavg: os.loadavg(),
    quick,
    sequential: SEQUENTIAL,
    inFlight: IN_FLIGHT,
    concurrentRequests: CONCURRENT,
    rows
  }
  fs.mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
  const file = new URL('./results/rpc.json', import.meta.url)
  fs.writeFileSync(`${file.pathname}.${process.pid}.tmp`, JSON.stringify(results, null, 2) + '\n')
  fs.renameSync(`${file.pathname}.${process.pid}.tmp`, file.pathname)
}

// ---------------------------------------------------------------------------
// At scale

/** Serves echo on the rpc server and a Unix socket; answers the parent's questions about its own cost. */
function scaleServer (name, socketPath) {
  const server = serve(name, echo)
  // Neighbours on the event loop, as in a real process: a timer, IPC.
  let ticks = 0
  const timer = setInterval(() => { ticks++ }, 100)
  const unix = net.createServer((socket) => {
    socket.setNoDelay(true)
    let pending = Buffer.alloc(0)
    socket.on('data', (chunk) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
      let offset = 0
      const out = []
      while (pending.length - offset >= 4) {
        const length = pending.readUInt32LE(offset)
        if (pending.length - offset - 4 < length) break
        const reply = Buffer.from(JSON.stringify(echo(JSON.parse(pending.toString('utf8', offset + 4, offset + 4 + length)))))
        const header = Buffer.allocUnsafe(4)
        header.writeUInt32LE(reply.length, 0)
        out.push(header, reply)
        offset += 4 + length
      }
      pending = pending.subarray(offset)
      if (out.length > 0) socket.write(Buffer.concat(out))
    })
    socket.on('error', () => {})
  }).listen(socketPath, () => { process.send({ ready: true }) })
  process.on('message', async (/** @type {any} */ message) => {
    if (message.cost !== undefined) {
      // CPU over `message.cost` ms of idleness, then threads and memory.
      const before = process.cpuUsage()
      const t0 = performance.now()
      await new Promise((resolve) => setTimeout(resolve, message.cost))
      const used = process.cpuUsage(before)
      const cpuPercent = (used.user + used.system) / 1000 / (performance.now() - t0) * 100
      process.send({ cpuPercent, threads: fs.readdirSync('/proc/self/task').length, rss: process.memoryUsage().rss, clients: server.clients.length, ticks })
    }
  })
  process.on('disconnect', () => {
    clearInterval(timer)
    server.close()
    unix.close()
  })
}

/** Holds connections for the parent: idle ones, one that measures latency, or several under load. */
function scaleClient () {
  let idle = []
  process.on('message', async (/** @type {any} */ message) => {
    try {
      if (message.connect !== undefined) {
        for (let i = 0; i < message.count; i++) idle.push(await connect(message.connect, { timeout: 30_000 }))
        process.send({ connected: idle.length })
      } else if (message.latency !== undefined) {
        const client = await connect(message.latency, { timeout: 30_000 })
        const request = (id) => ({ op: 'echo', id, text: 'hello, sidecar' })
        for (let i = 0; i < message.warmup; i++) await client.request(request(i))
        const samples = new Float64Array(message.count)
        for (let i = 0; i < message.count; i++) {
          const t = performance.now()
          await client.request(request(i))
          samples[i] = (performance.now() - t) * 1000
        }
        client.close()
        let sum = 0
        for (const x of samples) sum += x
        samples.sort()
        process.send({ mean: sum / samples.length, p50: percentile(samples, 0.5), p99: percentile(samples, 0.99) })
      } else if (message.load !== undefined) {
        const clients = []
        for (let i = 0; i < message.count; i++) clients.push(message.load === 'unix' ? await unixClient(message.name) : await shmClient(message.name, message.load === 'shm' ? 'adaptive' : 'block'))
        process.send({ loaded: true })
        await new Promise((resolve) => process.once('message', resolve))
        let done = 0
        const until = performance.now() + message.ms
        await Promise.all(clients.map(async (client) => {
          let id = 0
          while (performance.now() < until) {
            await client.request({ op: 'echo', id: id++, text: 'hello, sidecar' })
            done++
          }
        }))
        for (const client of clients) client.close()
        process.send({ done })
      } else if (message.close !== undefined) {
        for (const client of idle) client.close()
        idle = []
        process.send({ closed: true })
      }
    } catch (err) {
      process.send({ error: String(err?.stack ?? err) })
    }
  })
  process.on('disconnect', () => { for (const client of idle) client.close() })
}

function shmBytes (prefix) {
  let total = 0
  for (const entry of fs.readdirSync('/dev/shm')) {
    if (!entry.startsWith(prefix)) continue
    try { total += fs.statSync(path.join('/dev/shm', entry)).blocks * 512 } catch {}
  }
  return total
}

async function scale () {
  const IDLE = quick ? 200 : 1000
  const PROCESSES = 4
  const ACTIVE = 64
  const LATENCY = quick ? 2_000 : 10_000
  const LOAD_MS = quick ? 1_000 : 3_000
  const name = `bench-rpc-scale-${process.pid}`
  const socketPath = path.join(os.tmpdir(), `${name}.sock`)
  const loadavg = os.loadavg()
  const server = fork(new URL(import.meta.url), ['scale-server', name, socketPath])
  const clients = Array.from({ length: PROCESSES }, () => fork(new URL(import.meta.url), ['scale-client']))
  process.on('exit', () => {
    for (const child of [server, ...clients]) child.kill('SIGKILL')
    try { fs.unlinkSync(socketPath) } catch {}
  })
  const ask = (child, message) => new Promise((resolve, reject) => {
    child.once('message', (answer) => answer.error !== undefined ? reject(new Error(answer.error)) : resolve(answer))
    if (message !== undefined) child.send(message)
  })
  await ask(server)
  const IDLE_MS = 5_000
  console.error(`at scale: ${IDLE} idle clients in ${PROCESSES} processes`)
  const zero = await ask(server, { cost: IDLE_MS })
  await ask(clients[0], { latency: name, count: LATENCY, warmup: 1_000 }) // warms up both processes' code
  const quiet = await ask(clients[0], { latency: name, count: LATENCY, warmup: 1_000 })
  console.error(`  0 idle: ${zero.threads} threads, ${zero.cpuPercent.toFixed(2)} % CPU; one client p50 ${quiet.p50.toFixed(1)} µs`)
  const t0 = performance.now()
  await Promise.all(clients.map((child) => ask(child, { connect: name, count: IDLE / PROCESSES })))
  const connectSeconds = (performance.now() - t0) / 1000
  await new Promise((resolve) => setTimeout(resolve, 2_000)) // let connecting settle
  const loaded = await ask(server, { cost: IDLE_MS })
  const shm = shmBytes(name)
  const busy = await ask(clients[0], { latency: name, count: LATENCY, warmup: 1_000 })
  console.error(`  ${loaded.clients} idle: ${loaded.threads} threads, ${loaded.cpuPercent.toFixed(2)} % CPU, /dev/shm ${(shm / 2 ** 20).toFixed(1)} MiB; one active p50 ${busy.p50.toFixed(1)} µs`)
  // A diagnostic, not a target: the same, with the server and the active
  // client's process each pinned to its own CPU (every thread), so that
  // neither is woken onto the CPU where the other spins (docs/rpc.md, "The
  // tail of one active client").
  const cpus = allowedCpus()
  let pinned
  if (cpus !== undefined && cpus.length >= 2) {
    pinProcess([cpus[0]], server.pid)
    pinProcess([cpus[1]], clients[0].pid)
    pinned = await ask(clients[0], { latency: name, count: LATENCY, warmup: 1_000 })
    pinProcess(cpus, server.pid)
    pinProcess(cpus, clients[0].pid)
    console.error(`  ${loaded.clients} idle, pinned to two CPUs: one active p50 ${pinned.p50.toFixed(1)} µs, p99 ${pinned.p99.toFixed(1)} µs`)
  }
  await Promise.all(clients.map((child) => ask(child, { close: true })))
  const throughput = {}
  // 'shm': clients waiting 'adaptive' (the default: a process's reply waiter
  // spins up to 50 µs on its event loop before sleeping, when it waits for one
  // client only; for several it sleeps at once); 'shm-block': never spins.
  for (const kind of ['shm', 'shm-block', 'unix']) {
    await Promise.all(clients.map((child) => ask(child, { load: kind, name: kind === 'unix' ? socketPath : name, count: ACTIVE / PROCESSES, ms: LOAD_MS })))
    const done = await Promise.all(clients.map((child) => ask(child, {})))
    throughput[kind] = done.reduce((sum, d) => sum + d.done, 0) / (LOAD_MS / 1000)
    console.error(`  ${ACTIVE} active over ${kind}: ${throughput[kind].toFixed(0)} req/s`)
  }
  for (const child of clients) child.disconnect()
  server.disconnect()
  await new Promise((resolve) => server.once('exit', resolve))
  try { fs.unlinkSync(socketPath) } catch {}

  const MiB = (n) => (n / 2 ** 20).toFixed(1)
  console.log(`\nServer at scale (load average ${loadavg.map((x) => x.toFixed(2)).join(' ')} at start, ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} at end)\n`)
  console.log('| idle clients | server threads | server RSS | /dev/shm | server idle CPU |')
  console.log('|---:|---:|---:|---:|---:|')
  console.log(`| 0 | ${zero.threads} | ${MiB(zero.rss)} MiB | — | ${zero.cpuPercent.toFixed(2)} % |`)
  console.log(`| ${loaded.clients} | ${loaded.threads} | ${MiB(loaded.rss)} MiB | ${MiB(shm)} MiB | ${loaded.cpuPercent.toFixed(2)} % |`)
  console.log(`\n${loaded.clients} clients connected in ${connectSeconds.toFixed(1)} s.\n`)
  console.log('| one active client | mean µs | p50 µs | p99 µs |')
  console.log('|---|---:|---:|---:|')
  console.log(`| alone | ${quiet.mean.toFixed(1)} | ${quiet.p50.toFixed(1)} | ${quiet.p99.toFixed(1)} |`)
  console.log(`| with ${loaded.clients} connected | ${busy.mean.toFixed(1)} | ${busy.p50.toFixed(1)} | ${busy.p99.toFixed(1)} |`)
  if (pinned !== undefined) console.log(`| with ${loaded.clients} connected, server and client pinned to two CPUs (diagnostic) | ${pinned.mean.toFixed(1)} | ${pinned.p50.toFixed(1)} | ${pinned.p99.toFixed(1)} |`)

  console.log(`\n| ${ACTIVE} active clients in ${PROCESSES} processes | req/s | × Unix socket |`)
  console.log('|---|---:|---:|')
  for (const kind of ['shm', 'shm-block', 'unix']) console.log(`| ${kind === 'shm' ? 'shm-channel rpc (adaptive)' : kind === 'shm-block' ? 'shm-channel rpc (block)' : 'Unix socket'} | ${throughput[kind].toFixed(0)} | ${(throughput[kind] / throughput.unix).toFixed(2)} |`)
  // The targets, each with its verdict for this run.
  const MiBs = shm / 2 ** 20
  const targets = [
    { target: `${loaded.clients} idle clients: server threads within 2 of the zero-client count`, value: `${loaded.threads} vs ${zero.threads}`, met: loaded.threads - zero.threads <= 2 },
    { target: `${loaded.clients} idle clients: server idle CPU < 1 % of a core`, value: `${loaded.cpuPercent.toFixed(2)} %`, met: loaded.cpuPercent < 1 },
    { target: `${loaded.clients} idle clients: /dev/shm <= 150 MiB`, value: `${MiBs.toFixed(1)} MiB`, met: MiBs <= 150 },
    { target: `one active with ${loaded.clients} connected: p50 <= 1.5x the single client's`, value: `${(busy.p50 / quiet.p50).toFixed(2)}x`, met: busy.p50 / quiet.p50 <= 1.5 },
    { target: `one active with ${loaded.clients} connected: p99 <= 10x p50`, value: `${(busy.p99 / busy.p50).toFixed(1)}x`, met: busy.p99 / busy.p50 <= 10 },
    { target: `${ACTIVE} active clients in ${PROCESSES} processes: >= 5x a Unix socket (adaptive)`, value: `${(throughput.shm / throughput.unix).toFixed(2)}x`, met: throughput.shm / throughput.unix >= 5 },
    { target: `${ACTIVE} active clients in ${PROCESSES} processes: >= 5x a Unix socket (block)`, value: `${(throughput['shm-block'] / throughput.unix).toFixed(2)}x`, met: throughput['shm-block'] / throughput.unix >= 5 }
  ]
  console.log('\n| target | this run | |')
  console.log('|---|---:|---|')
  for (const t of targets) console.log(`| ${t.target} | ${t.value} | ${t.met ? 'met' : 'MISSED'} |`)
  const results = {
    node: process.version,
    date: new Date().toISOString(),
    loadavgStart: loadavg,
    loadavgEnd: os.loadavg(),
    quick,
    idle: { zero, loaded, shmBytes: shm, connectSeconds },
    latency: { alone: quiet, withIdle: busy, pinned, p50Ratio: busy.p50 / quiet.p50, p99OverP50: busy.p99 / busy.p50 },
    targets,
    throughput: { active: ACTIVE, processes: PROCESSES, seconds: LOAD_MS / 1000, shm: throughput.shm, shmBlock: throughput['shm-block'], unix: throughput.unix, ratio: throughput.shm / throughput.unix, blockRatio: throughput['shm-block'] / throughput.unix }
  }
  fs.mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
  const file = new URL('./results/rpc-scale.json', import.meta.url)
  fs.writeFileSync(`${file.pathname}.${process.pid}.tmp`, JSON.stringify(results, null, 2) + '\n')
  fs.renameSync(`${file.pathname}.${process.pid}.tmp`, file.pathname)
}
