// The same request/response and channel workloads, 64 B and 4 KiB, against
// one nats-server on loopback (started here, on a free port, JetStream in a
// temporary directory), in alternating rounds:
//
//   node bench/nats.mjs [--quick] [--rounds N] [--only service|channel] [--profile DIR]
//
// Each cell is the median of N rounds (default 5, 3 with --quick), and
// "bridge cost vs plain" is the median of the rounds' paired ratios (extra
// time per message). Within a round, request/response interleaves the
// bridge's and plain NATS's round trips in blocks of 50; the channel
// workloads, which cannot interleave, run back to back in an order that
// alternates from round to round. NATS round trips on a small machine are
// noisy: one round says little.
//
// Topology (what a user runs):
//
// Request/response: one request at a time, an echo handler in a child
// process (the same child for every row); round trips per second and the
// median round trip.
// - shm: shm-channel serve/connect (shared memory, no NATS);
// - bridge: shm-channel/nats connect(name, { nats, local: 'never' }) in this
//   process, serve(name, handler, { nats }) in the child;
// - plain NATS: nc.request in this process, a plain subscription answering
//   msg.respond in the child.
// (JetStream has no request/reply: that row is empty.)
//
// Channel: N messages from a producer to a consumer, messages per second,
// producer and consumer in this process on every row.
// - shm: producer here, consumer in a child process (one channel);
// - bridge: producer -> local channel -> `shm-channel bridge to-stream`
//   process -> stream -> `shm-channel bridge from-stream` process -> local
//   channel -> consumer: the bridges are the CLI, each its own process;
// - plain JetStream: js.publish (a window of 256 outstanding acks) into a
//   stream and a consumer (pulls of 256) reading it.
// (Plain core NATS has no acknowledged, ordered delivery: that row is empty.)
//
// --profile DIR runs the service's child and the bridge processes under
// `node --cpu-prof` and leaves the .cpuprofile files in DIR.
//
// Prints a Markdown table, the targets of the issue (bridge cost <= 10 % for
// request/response, <= 20 % for channels) met or missed, and writes
// bench/results/nats.json (bench/results/nats-quick.json with --quick).
import { fork, spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { connect as natsConnect } from '@nats-io/transport-node'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { Consumer, Producer, connect, serve } from 'shm-channel'
import { removeBridgeState, connect as connectOverNats, serve as serveOverNats } from 'shm-channel/nats'

function flag (name) {
  const i = process.argv.indexOf(name)
  return i === -1 ? undefined : process.argv[i + 1]
}

const quick = process.argv.includes('--quick')
const ROUNDS = Number(flag('--rounds') ?? (quick ? 3 : 5))
const ROUND_TRIPS = quick ? 500 : 2_000
const WARMUP = quick ? 100 : 300
const MESSAGES = quick ? 5_000 : 30_000
const SIZES = [64, 4096]
/** Round trips of one client before the other's turn (request/response rows). */
const BLOCK = 50
const PROFILE = flag('--profile')
const ONLY = flag('--only')
const CLI = new URL('../bin/shm-channel.js', import.meta.url).pathname
const echo = (request) => request
const profileArgs = (label) => PROFILE === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', path.resolve(PROFILE), '--cpu-prof-name', `${label}-${Date.now()}.cpuprofile`]

// ---------------------------------------------------------------------------
// The server process (request/response) and the receiving process (shm channel)

if (process.argv[2] === 'server') {
  const [url, name] = process.argv.slice(3)
  const nc = await natsConnect({ servers: url })
  const local = serve(`${name}-shm`, echo, { codec: 'bytes' })
  const both = serveOverNats(`${name}-nats`, echo, { nats: nc, codec: 'bytes' })
  nc.subscribe(`${name}.plain`, { callback: (_err, msg) => { msg.respond(msg.data) } })
  await nc.flush()
  process.send('ready')
  process.on('disconnect', () => { local.close(); both.close(); void nc.close().then(() => process.exit(0)) })
} else if (process.argv[2] === 'receiver') {
  const [channel, count] = process.argv.slice(3)
  const consumer = Consumer.open(channel, { codec: 'bytes', capacity: 1 << 22 })
  process.send('ready')
  let n = 0
  const total = Number(count)
  while (n < total) { if (consumer.tryReceive() !== undefined) n++; else await consumer.readable() }
  process.send('done')
  consumer.close()
} else {
  await main()
}

async function freePort () {
  return await new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => { const { port } = /** @type {import('node:net').AddressInfo} */ (server.address()); server.close(() => resolve(port)) })
  })
}

async function startNatsServer () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shmch-bench-nats-'))
  const port = await freePort()
  const binary = ['/usr/sbin/nats-server', '/usr/local/bin/nats-server', '/usr/bin/nats-server'].find((p) => fs.existsSync(p)) ?? 'nats-server'
  const child = spawn(binary, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { stdio: ['ignore', 'ignore', 'pipe'] })
  await new Promise((resolve, reject) => {
    let log = ''
    child.stderr.setEncoding('utf8').on('data', (chunk) => { log += chunk; if (log.includes('Server is ready')) resolve() })
    child.once('exit', (code) => reject(new Error(`nats-server exited with ${code}:\n${log}`)))
  })
  return {
    url: `nats://127.0.0.1:${port}`,
    pid: child.pid,
    async stop () {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}

/** CPU time (user + system) a process has used, in ms, from /proc (Linux; 0 elsewhere). */
function cpuMs (pid) {
  if (pid === process.pid) { const u = process.cpuUsage(); return (u.user + u.system) / 1000 }
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 10 // utime, stime in clock ticks of 10 ms
  } catch { return 0 }
}

/** CPU µs per message of each named process between two calls. */
function cpuMeter (pids) {
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuMs(pid)]))
  return (messages) => Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, (cpuMs(pid) - before[k]) * 1000 / messages]))
}

function payload (size) {
  return Buffer.alloc(size, 0x61)
}

function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

async function roundTrips (request, size) {
  const data = payload(size)
  for (let i = 0; i < WARMUP; i++) await request(data)
  const times = new Float64Array(ROUND_TRIPS)
  const start = performance.now()
  for (let i = 0; i < ROUND_TRIPS; i++) {
    const t0 = performance.now()
    await request(data)
    times[i] = performance.now() - t0
  }
  const elapsed = performance.now() - start
  times.sort()
  return { perSec: ROUND_TRIPS / (elapsed / 1000), p50us: times[Math.floor(ROUND_TRIPS / 2)] * 1000 }
}

/**
 * Round trips of two clients interleaved in blocks of BLOCK (which goes
 * first alternates by round): a change of load during the round weighs on
 * both alike. Returns each one's { perSec, p50us }.
 */
async function pairedRoundTrips (round, requestA, requestB, size) {
  const data = payload(size)
  for (let i = 0; i < WARMUP; i++) { await requestA(data); await requestB(data) }
  const sides = [requestA, requestB].map((request) => ({ request, times: new Float64Array(ROUND_TRIPS), n: 0, busy: 0 }))
  if (round % 2 === 1) sides.reverse()
  while (sides[0].n < ROUND_TRIPS) {
    for (const side of sides) {
      const blockStart = performance.now()
      for (let i = 0; i < BLOCK && side.n < ROUND_TRIPS; i++) {
        const t0 = performance.now()
        await side.request(data)
        side.times[side.n++] = performance.now() - t0
      }
      side.busy += performance.now() - blockStart
    }
  }
  if (round % 2 === 1) sides.reverse()
  return sides.map((side) => {
    side.times.sort()
    return { perSec: ROUND_TRIPS / (side.busy / 1000), p50us: side.times[Math.floor(ROUND_TRIPS / 2)] * 1000 }
  })
}

async function untilMessage (child, wanted) {
  await new Promise((resolve, reject) => {
    child.on('message', function on (m) { if (m === wanted) { child.off('message', on); resolve() } })
    child.once('exit', (code) => { if (code !== 0) reject(new Error(`child exited with ${code}`)) })
  })
}

async function shmChannel (size, name) {
  const child = fork(new URL(import.meta.url).pathname, ['receiver', name, String(MESSAGES)])
  await untilMessage(child, 'ready')
  const producer = Producer.open(name, { codec: 'bytes', capacity: 1 << 22 })
  const data = payload(size)
  const done = untilMessage(child, 'done')
  const start = performance.now()
  for (let i = 0; i < MESSAGES; i++) if (!producer.trySend(data)) await producer.send(data)
  await done
  const elapsed = performance.now() - start
  producer.close()
  return MESSAGES / (elapsed / 1000)
}

/** `shm-channel bridge DIRECTION CHANNEL`, as a user runs it; resolves once it says it is bridging. */
async function startBridge (url, direction, channel, stream, label) {
  const child = spawn(process.execPath, [...profileArgs(label), CLI, 'bridge', direction, channel, '--server', url, '--stream', stream], { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  await new Promise((resolve, reject) => {
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (chunk) => { out += chunk; if (out.includes('bridging')) resolve() })
    child.once('exit', (code) => reject(new Error(`bridge ${direction} exited with ${code}: ${out}`)))
  })
  return {
    pid: child.pid,
    async stop () {
      child.kill('SIGTERM')
      await exited
    }
  }
}

async function bridgedChannel (server, jsm, size, name) {
  const url = server.url
  const from = `${name}-from`
  const to = `${name}-to`
  const producer = Producer.open(from, { codec: 'bytes', capacity: 1 << 22, fresh: true })
  const consumer = Consumer.open(to, { codec: 'bytes', capacity: 1 << 22, fresh: true })
  const bridges = await Promise.all([startBridge(url, 'to-stream', from, name, 'to-stream'), startBridge(url, 'from-stream', to, name, 'from-stream')])
  const data = payload(size)
  const cpu = cpuMeter({ bench: process.pid, toStream: bridges[0].pid, fromStream: bridges[1].pid, natsServer: server.pid })
  const start = performance.now()
  const sending = (async () => { for (let i = 0; i < MESSAGES; i++) if (!producer.trySend(data)) await producer.send(data) })()
  for (let n = 0; n < MESSAGES;) { if (consumer.tryReceive() !== undefined) n++; else await consumer.readable() }
  const elapsed = performance.now() - start
  const cpuUs = cpu(MESSAGES)
  await sending
  await Promise.all(bridges.map(async (b) => await b.stop()))
  producer.close()
  consumer.close()
  removeBridgeState(from)
  removeBridgeState(to)
  for (const c of [from, to]) fs.rmSync(path.join('/dev/shm', c), { force: true })
  await jsm.streams.delete(name)
  return { perSec: MESSAGES / (elapsed / 1000), cpuUs }
}

async function plainJetStream (nc, server, jsm, size, name) {
  await jsm.streams.add({ name, subjects: [name] })
  const js = jetstream(nc)
  const data = payload(size)
  const consumer = await js.consumers.get(name, { filter_subjects: name })
  const cpu = cpuMeter({ bench: process.pid, natsServer: server.pid })
  const start = performance.now()
  const publishing = (async () => {
    const window = []
    for (let i = 0; i < MESSAGES; i++) {
      window.push(js.publish(name, data, { msgID: `m-${i}` }))
      if (window.length === 256) { await Promise.all(window); window.length = 0 }
    }
    await Promise.all(window)
  })()
  const messages = await consumer.consume({ max_messages: 256 })
  let n = 0
  for await (const m of messages) { void m; if (++n === MESSAGES) break }
  const elapsed = performance.now() - start
  const cpuUs = cpu(MESSAGES)
  await publishing
  await jsm.streams.delete(name)
  return { perSec: MESSAGES / (elapsed / 1000), cpuUs }
}

/** Runs `a` and `b` in the order the round's parity says, returns [a's result, b's result]. */
async function alternate (round, a, b) {
  if (round % 2 === 0) return [await a(), await b()]
  const second = await b()
  return [await a(), second]
}

async function main () {
  const server = await startNatsServer()
  const name = `shmch-bench-nats-${process.pid}`
  const nc = await natsConnect({ servers: server.url })
  const jsm = await jetstreamManager(nc)
  const child = fork(new URL(import.meta.url).pathname, ['server', server.url, name], { execArgv: profileArgs('service') })
  /** @type {Record<string, { shm: any[], bridge: any[], plain: any[] }>} */
  const samples = {}
  const cell = (key) => (samples[key] ??= { shm: [], bridge: [], plain: [] })
  try {
    await untilMessage(child, 'ready')
    const shmClient = await connect(`${name}-shm`, { codec: 'bytes' })
    const natsClient = await connectOverNats(`${name}-nats`, { nats: nc, codec: 'bytes', local: 'never' })
    for (let round = 0; round < (ONLY === 'channel' ? 0 : ROUNDS); round++) {
      for (const size of SIZES) {
        const c = cell(`request/response ${size}`)
        c.shm.push(await roundTrips((d) => shmClient.request(d), size))
        const [bridge, plain] = await pairedRoundTrips(round,
          (d) => natsClient.request(d),
          (d) => nc.request(`${name}.plain`, d, { timeout: 5000 }),
          size)
        c.bridge.push(bridge)
        c.plain.push(plain)
      }
    }
    shmClient.close()
    natsClient.close()
    for (let round = 0; round < (ONLY === 'service' ? 0 : ROUNDS); round++) {
      for (const size of SIZES) {
        const c = cell(`channel ${size}`)
        c.shm.push({ perSec: await shmChannel(size, `${name}-ch${size}-${round}`) })
        const [bridge, plain] = await alternate(round,
          async () => await bridgedChannel(server, jsm, size, `${name}-br${size}-${round}`),
          async () => await plainJetStream(nc, server, jsm, size, `${name}-js${size}-${round}`))
        c.bridge.push(bridge)
        c.plain.push(plain)
      }
    }
  } finally {
    child.disconnect()
    await nc.close()
    await server.stop()
  }

  const summary = (list) => ({
    perSec: median(list.map((r) => r.perSec)),
    ...(list[0].p50us === undefined ? {} : { p50us: median(list.map((r) => r.p50us)) }),
    ...(list[0].cpuUs === undefined ? {} : { cpuUs: Object.fromEntries(Object.keys(list[0].cpuUs).map((k) => [k, median(list.map((r) => r.cpuUs[k]))])) })
  })
  const rows = Object.entries(samples).map(([key, c]) => {
    const [workload, size] = key.split(' ')
    const service = workload === 'request/response'
    const costs = c.bridge.map((b, i) => c.plain[i].perSec / b.perSec - 1)
    const plain = summary(c.plain)
    return {
      workload,
      size: Number(size),
      shm: summary(c.shm),
      bridge: summary(c.bridge),
      plainNats: service ? plain : null,
      plainJetStream: service ? null : plain,
      bridgeCost: median(costs),
      roundCosts: costs,
      target: service ? 0.1 : 0.2,
      shmOverNats: summary(c.shm).perSec / plain.perSec,
      rounds: c
    }
  })

  const fmt = (r) => r === null ? '—' : `${Math.round(r.perSec).toLocaleString('en')}/s${r.p50us === undefined ? '' : ` (p50 ${r.p50us.toFixed(0)} µs)`}`
  const pct = (x) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} %`
  console.log('| workload | size | shared memory | NATS bridge | plain NATS req/reply | plain JetStream | bridge cost vs plain (target) |')
  console.log('|---|---|---|---|---|---|---|')
  for (const r of rows) {
    console.log(`| ${r.workload} | ${r.size} B | ${fmt(r.shm)} | ${fmt(r.bridge)} | ${fmt(r.plainNats)} | ${fmt(r.plainJetStream)} | ${pct(r.bridgeCost)} (<= ${r.target * 100} %: ${r.bridgeCost <= r.target ? 'met' : 'MISSED'}) |`)
  }
  const result = {
    machine: `${os.cpus()[0]?.model ?? 'unknown'}, ${os.cpus().length} cores, Linux ${os.release()}, Node ${process.version}`,
    date: new Date().toISOString(),
    loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
    quick,
    rounds: ROUNDS,
    roundTrips: ROUND_TRIPS,
    messages: MESSAGES,
    rows
  }
  console.log(`\nmedians of ${ROUNDS} alternating rounds (${ROUND_TRIPS} round trips, ${MESSAGES} messages per cell); per-round costs:`)
  for (const r of rows) console.log(`  ${r.workload} ${r.size} B: ${r.roundCosts.map(pct).join(', ')}`)
  console.log('CPU time per message, µs (median of rounds; /proc, 10 ms ticks):')
  const cpuText = (c) => Object.entries(c).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ') + `; total ${Object.values(c).reduce((a, b) => a + b, 0).toFixed(1)}`
  for (const r of rows) if (r.bridge.cpuUs !== undefined) console.log(`  channel ${r.size} B: bridge: ${cpuText(r.bridge.cpuUs)}\n  ${' '.repeat(`channel ${r.size} B:`.length)} plain:  ${cpuText(r.plainJetStream.cpuUs)}`)
  console.log(`load average ${result.loadavg.join(' ')}`)
  if (ONLY === undefined) fs.writeFileSync(new URL(quick ? 'results/nats-quick.json' : 'results/nats.json', import.meta.url), JSON.stringify(result, null, 2) + '\n')
}
