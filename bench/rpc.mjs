// Request/response between two Node processes: shm-channel's serve/connect
// against what a sidecar would otherwise use, in the same run.
//
//   node bench/rpc.mjs [--quick]
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
import { fork } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { Duplex, connect, serve } from 'shm-channel'

const quick = process.argv.includes('--quick')
const SEQUENTIAL = quick ? 3_000 : 20_000
const WARMUP = quick ? 300 : 2_000
const IN_FLIGHT = 64
const CONCURRENT = quick ? 5_000 : 30_000

const echo = (request) => request

// ---------------------------------------------------------------------------
// The server process

if (process.argv[2] === 'server') {
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
  await main()
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
