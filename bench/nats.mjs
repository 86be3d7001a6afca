// The same request/response and channel workloads, 64 B and 4 KiB, four
// ways, in one run against one nats-server on loopback (started here, on a
// free port, JetStream in a temporary directory):
//
//   node bench/nats.mjs [--quick]
//
// Request/response: one request at a time, an echo handler in a child
// process; round trips per second and the median round trip.
// - shm: shm-channel serve/connect (shared memory, no NATS);
// - bridge: shm-channel/nats connect(name, { nats, local: 'never' }) to the
//   same process's serve(name, handler, { nats });
// - plain NATS: nc.request to a plain subscription answering msg.respond.
// (JetStream has no request/reply: that row is empty.)
//
// Channel: N messages from a producer to a consumer, messages per second.
// - shm: a channel between two processes;
// - bridge: local channel -> bridgeChannelToStream -> stream ->
//   bridgeStreamToChannel -> local channel, the bridges in this process;
// - plain JetStream: js.publish (256 outstanding) into a stream and an
//   ordered consumer reading it, in this process.
// (Plain core NATS has no acknowledged, ordered delivery: that row is empty.)
//
// Prints a Markdown table and writes bench/results/nats.json.
import { fork, spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { connect as natsConnect } from '@nats-io/transport-node'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { Consumer, Producer, connect, serve } from 'shm-channel'
import { bridgeChannelToStream, bridgeStreamToChannel, removeBridgeState, connect as connectOverNats, serve as serveOverNats } from 'shm-channel/nats'

const quick = process.argv.includes('--quick')
const ROUND_TRIPS = quick ? 1_000 : 5_000
const WARMUP = quick ? 100 : 500
const MESSAGES = quick ? 5_000 : 50_000
const SIZES = [64, 4096]
const echo = (request) => request

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
    async stop () {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}

function payload (size) {
  return Buffer.alloc(size, 0x61)
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

async function bridgedChannel (nc, size, name) {
  const from = `${name}-from`
  const to = `${name}-to`
  const producer = Producer.open(from, { codec: 'bytes', capacity: 1 << 22, fresh: true })
  const consumer = Consumer.open(to, { codec: 'bytes', capacity: 1 << 22, fresh: true })
  const out = await bridgeChannelToStream({ nats: nc, stream: name, channel: from })
  const into = await bridgeStreamToChannel({ nats: nc, stream: name, channel: to })
  const data = payload(size)
  const start = performance.now()
  const sending = (async () => { for (let i = 0; i < MESSAGES; i++) if (!producer.trySend(data)) await producer.send(data) })()
  for (let n = 0; n < MESSAGES;) { if (consumer.tryReceive() !== undefined) n++; else await consumer.readable() }
  const elapsed = performance.now() - start
  await sending
  await out.close()
  await into.close()
  producer.close()
  consumer.close()
  removeBridgeState(from)
  removeBridgeState(to)
  return MESSAGES / (elapsed / 1000)
}

async function plainJetStream (nc, size, name) {
  const jsm = await jetstreamManager(nc)
  await jsm.streams.add({ name, subjects: [name] })
  const js = jetstream(nc)
  const data = payload(size)
  const consumer = await js.consumers.get(name, { filter_subjects: name })
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
  await publishing
  return MESSAGES / (elapsed / 1000)
}

async function main () {
  const server = await startNatsServer()
  const name = `shmch-bench-nats-${process.pid}`
  const nc = await natsConnect({ servers: server.url })
  const child = fork(new URL(import.meta.url).pathname, ['server', server.url, name])
  /** @type {any[]} */
  const rows = []
  try {
    await untilMessage(child, 'ready')
    const shmClient = await connect(`${name}-shm`, { codec: 'bytes' })
    const natsClient = await connectOverNats(`${name}-nats`, { nats: nc, codec: 'bytes', local: 'never' })
    for (const size of SIZES) {
      const shm = await roundTrips((d) => shmClient.request(d), size)
      const bridge = await roundTrips((d) => natsClient.request(d), size)
      const plain = await roundTrips((d) => nc.request(`${name}.plain`, d, { timeout: 5000 }), size)
      rows.push({ workload: 'request/response', size, shm, bridge, plainNats: plain, plainJetStream: null })
    }
    shmClient.close()
    natsClient.close()
    for (const size of SIZES) {
      const shm = await shmChannel(size, `${name}-ch${size}`)
      const bridge = await bridgedChannel(nc, size, `${name}-br${size}`)
      const plain = await plainJetStream(nc, size, `${name}-js${size}`)
      rows.push({ workload: 'channel', size, shm: { perSec: shm }, bridge: { perSec: bridge }, plainNats: null, plainJetStream: { perSec: plain } })
    }
  } finally {
    child.disconnect()
    await nc.close()
    await server.stop()
  }

  const fmt = (r) => r === null ? '—' : `${Math.round(r.perSec).toLocaleString('en')}/s${r.p50us === undefined ? '' : ` (p50 ${r.p50us.toFixed(0)} µs)`}`
  console.log('| workload | size | shared memory | NATS bridge | plain NATS req/reply | plain JetStream | bridge cost vs plain |')
  console.log('|---|---|---|---|---|---|---|')
  for (const r of rows) {
    const base = r.plainNats ?? r.plainJetStream
    const cost = base.perSec / r.bridge.perSec - 1
    r.bridgeCost = cost
    r.shmOverNats = r.shm.perSec / base.perSec
    console.log(`| ${r.workload} | ${r.size} B | ${fmt(r.shm)} | ${fmt(r.bridge)} | ${fmt(r.plainNats)} | ${fmt(r.plainJetStream)} | ${cost >= 0 ? '+' : ''}${(cost * 100).toFixed(1)} % time; shm ${r.shmOverNats.toFixed(1)}x |`)
  }
  const result = {
    machine: `${os.cpus()[0]?.model ?? 'unknown'}, ${os.cpus().length} cores, Linux ${os.release()}, Node ${process.version}`,
    date: new Date().toISOString(),
    loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
    quick,
    roundTrips: ROUND_TRIPS,
    messages: MESSAGES,
    rows
  }
  console.log(`\nload average ${result.loadavg.join(' ')}`)
  if (!quick) fs.writeFileSync(new URL('results/nats.json', import.meta.url), JSON.stringify(result, null, 2) + '\n')
}
