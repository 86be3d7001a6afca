// C <-> Node: the same traffic through a channel (the C library in c/, built
// here with make and cc) and over a Unix stream socket (a 4-byte length, then
// the bytes), measured in the same run. What a sidecar author weighs.
//
//   node bench/c-interop.mjs [--quick]
//
// Rows: throughput C -> Node and Node -> C at 64 B and 4 KiB (messages/s,
// MB/s, and channel / socket), then request/response round trips of 64 B
// (C echoes) with latency percentiles. The machine may be shared: compare the
// ratios, measured side by side, rather than the absolute numbers.
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Consumer, Producer } from 'shm-channel'

const quick = process.argv.includes('--quick')
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..')
const build = fs.mkdtempSync(path.join(os.tmpdir(), 'shm-channel-c-interop-'))
execFileSync('make', ['-s', '-C', path.join(root, 'c'), `BUILD=${build}`], { stdio: 'inherit' })
const bench = path.join(build, 'shmc-bench')
let serial = 0

function startC (args) {
  const child = spawn(bench, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  const done = new Promise((resolve, reject) => {
    child.once('exit', (code) => { code === 0 ? resolve() : reject(new Error(`shmc-bench ${args.join(' ')} exited with ${code}`)) })
  })
  return { child, done }
}

const channelName = () => `c-interop-bench-${process.pid}-${++serial}`
const CAPACITY = 1 << 20

// --- Through a channel --------------------------------------------------------

async function channelCToNode (size, count) {
  const name = channelName()
  const consumer = Consumer.open(name, { codec: 'bytes', capacity: CAPACITY })
  const c = startC(['chan-send', name, String(size), String(count)])
  const start = performance.now()
  for (let i = 0; i < count; i++) {
    const m = /** @type {Buffer} */ (consumer.tryReceive() ?? await consumer.receive())
    if (m.length !== size) throw new Error(`got ${m.length} bytes`)
  }
  const ms = performance.now() - start
  await c.done
  consumer.close()
  return ms
}

async function channelNodeToC (size, count) {
  const name = channelName()
  const producer = Producer.open(name, { codec: 'bytes', capacity: CAPACITY })
  const c = startC(['chan-recv', name, String(size), String(count)])
  const message = Buffer.alloc(size)
  const start = performance.now()
  for (let i = 0; i < count; i++) {
    message[0] = i
    if (!producer.trySend(message)) await producer.send(message)
  }
  await c.done
  const ms = performance.now() - start
  producer.close()
  return ms
}

async function channelRoundTrips (size, count) {
  const name = channelName()
  const requests = Producer.open(`${name}-req`, { codec: 'bytes', capacity: CAPACITY })
  const responses = Consumer.open(`${name}-res`, { codec: 'bytes', capacity: CAPACITY })
  const c = startC(['chan-echo', name])
  const message = Buffer.alloc(size)
  const samples = new Float64Array(count)
  for (let i = 0; i < count; i++) {
    const t = performance.now()
    await requests.send(message)
    await responses.receive()
    samples[i] = (performance.now() - t) * 1000
  }
  requests.close()
  await c.done
  responses.close()
  return samples
}

// --- Over a Unix socket ---------------------------------------------------------

/** A server for one C connection; resolves with the socket once the C end connects. */
async function unixServer (args) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c-interop-sock-'))
  const file = path.join(dir, 's')
  const server = net.createServer()
  await new Promise((resolve) => { server.listen(file, () => { resolve(undefined) }) })
  const connected = new Promise((resolve) => server.once('connection', resolve))
  const c = startC([args[0], file, ...args.slice(1)])
  const socket = await connected
  const close = () => { server.close(); fs.rmSync(dir, { recursive: true, force: true }) }
  return { socket, c, close }
}

/** Splits a stream into length-prefixed messages, calling onMessage(bytes) for each. */
function frames (socket, onMessage) {
  let pending = Buffer.alloc(0)
  socket.on('data', (chunk) => {
    const buf = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
    let at = 0
    while (buf.length - at >= 4) {
      const n = buf.readUInt32LE(at)
      if (buf.length - at - 4 < n) break
      onMessage(buf.subarray(at + 4, at + 4 + n))
      at += 4 + n
    }
    pending = buf.subarray(at)
  })
}

async function unixCToNode (size, count) {
  const { socket, c, close } = await unixServer(['unix-send', String(size), String(count)])
  const start = performance.now()
  let seen = 0
  await new Promise((resolve, reject) => {
    frames(socket, (m) => {
      if (m.length !== size) reject(new Error(`got ${m.length} bytes`))
      if (++seen === count) resolve()
    })
  })
  const ms = performance.now() - start
  await c.done
  close()
  return ms
}

async function unixNodeToC (size, count) {
  const { socket, c, close } = await unixServer(['unix-recv', String(size), String(count)])
  const start = performance.now()
  for (let i = 0; i < count; i++) {
    const frame = Buffer.alloc(4 + size)
    frame.writeUInt32LE(size, 0)
    frame[4] = i
    if (!socket.write(frame)) await new Promise((resolve) => socket.once('drain', resolve))
  }
  await c.done
  const ms = performance.now() - start
  socket.destroy()
  close()
  return ms
}

async function unixRoundTrips (size, count) {
  const { socket, c, close } = await unixServer(['unix-echo'])
  let answered
  frames(socket, () => answered())
  const frame = Buffer.alloc(4 + size)
  frame.writeUInt32LE(size, 0)
  const samples = new Float64Array(count)
  for (let i = 0; i < count; i++) {
    const t = performance.now()
    const got = new Promise((resolve) => { answered = resolve })
    socket.write(frame)
    await got
    samples[i] = (performance.now() - t) * 1000
  }
  socket.end()
  await c.done
  close()
  return samples
}

// --- Report ----------------------------------------------------------------------

const rows = []
for (const [size, count] of [[64, quick ? 50_000 : 300_000], [4096, quick ? 10_000 : 60_000]]) {
  const directions = [
    { direction: 'C -> Node', viaChannel: channelCToNode, viaSocket: unixCToNode },
    { direction: 'Node -> C', viaChannel: channelNodeToC, viaSocket: unixNodeToC }
  ]
  for (const { direction, viaChannel, viaSocket } of directions) {
    const chMs = await viaChannel(size, count)
    const sockMs = await viaSocket(size, count)
    const rate = (ms) => count / (ms / 1000)
    rows.push([direction, `${size} B`, count.toLocaleString(),
      `${(rate(chMs) / 1e3).toFixed(0)}k/s ${(rate(chMs) * size / 1e6).toFixed(0)} MB/s`,
      `${(rate(sockMs) / 1e3).toFixed(0)}k/s ${(rate(sockMs) * size / 1e6).toFixed(0)} MB/s`,
      `${(sockMs / chMs).toFixed(2)}x`])
  }
}
console.log(`C <-> Node, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}\n`)
console.log('| direction | size | messages | channel | Unix socket | channel / socket |')
console.log('|---|---:|---:|---:|---:|---:|')
for (const row of rows) console.log(`| ${row.join(' | ')} |`)

const trips = quick ? 5_000 : 30_000
const pct = (s, p) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)].toFixed(1)
console.log(`\nRound trips of 64 B, Node -> C -> Node (${trips.toLocaleString()}), latency in µs:\n`)
console.log('| path | p50 | p99 | p99.9 |')
console.log('|---|---:|---:|---:|')
for (const { label, run } of [{ label: 'channel', run: channelRoundTrips }, { label: 'Unix socket', run: unixRoundTrips }]) {
  const s = (await run(64, trips)).sort()
  console.log(`| ${label} | ${pct(s, 0.5)} | ${pct(s, 0.99)} | ${pct(s, 0.999)} |`)
}
fs.rmSync(build, { recursive: true, force: true })
