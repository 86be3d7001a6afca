// Many-to-one throughput: 1, 2 and 4 producer processes writing 64-byte
// messages into one fan-in consumer here, against one SPSC channel (one
// producer process) and against a Unix socket server fed by the same
// number of client processes. Same run, so the ratios are what to read.
// The consumer reads one message per call (receive), or in batches in place
// (readEach); the SPSC reference does the same (its batch: cork(),
// trySend x 256, uncork() / readEach). Fan-in producers send one message
// per call either way.
// Prints a table and the targets, and writes
// bench/results/fanin.json (fanin-quick.json with --quick).
//
//   node bench/fanin.mjs [--quick] [--count=N (messages per producer)]
import { fork } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { Consumer, FanInConsumer, FanInProducer, Producer } from 'shm-channel'

const quick = process.argv.includes('--quick')
const role = process.argv[2]
const SIZE = 64

if (role === 'fanin-producer' || role === 'spsc-producer' || role === 'spsc-batch-producer') {
  const [name, count] = process.argv.slice(3)
  const producer = role === 'fanin-producer' ? FanInProducer.open(name, { codec: 'bytes' }) : Producer.open(name, { codec: 'bytes', capacity: 1 << 22 })
  const message = Buffer.alloc(SIZE)
  process.send('ready')
  await new Promise((resolve) => process.once('message', resolve))
  const total = Number(count)
  if (producer instanceof Producer && role === 'spsc-batch-producer') {
    for (let i = 0; i < total;) {
      producer.cork()
      for (let k = 0; k < 256 && i < total; k++, i++) {
        if (!producer.trySend(message)) {
          producer.uncork()
          producer.sendSync(message)
          producer.cork()
        }
      }
      producer.uncork()
    }
  } else {
    for (let i = 0; i < total; i++) if (!producer.trySend(message)) producer.sendSync(message)
  }
  producer.close()
  process.disconnect()
} else if (role === 'socket-client') {
  const [socketPath, count] = process.argv.slice(3)
  const socket = net.connect(socketPath)
  await new Promise((resolve) => socket.once('connect', resolve))
  process.send('ready')
  await new Promise((resolve) => process.once('message', resolve))
  // One write per 64-byte message, as the fan-in producers send one message per call.
  const frame = Buffer.alloc(SIZE)
  for (let sent = 0; sent < Number(count); sent++) {
    if (!socket.write(frame)) await new Promise((resolve) => socket.once('drain', resolve))
  }
  socket.end()
  process.disconnect()
} else {
  const start = async (kids) => {
    await Promise.all(kids.map((k) => new Promise((resolve) => k.once('message', resolve))))
    for (const k of kids) k.send('go')
  }
  const spawn = (kind, args, n) => Array.from({ length: n }, () => fork(new URL(import.meta.url), [kind, ...args]))

  const noop = () => {}

  /** Reads `total` messages: one per call, or in batches in place. Returns messages per second from the first. */
  function drain (consumer, total, batch) {
    let t0 = 0
    let n = 0
    while (n < total) {
      const got = batch ? consumer.readEach(noop) : 0
      if (got === 0) {
        consumer.tryReceive() ?? consumer.receiveSync()
        n++
      } else n += got
      if (t0 === 0) t0 = performance.now()
    }
    return total / ((performance.now() - t0) / 1000)
  }

  async function fanIn (producers, count, batch) {
    const name = `bench-fanin-${process.pid}-${producers}-${batch ? 'batch' : 'one'}`
    const consumer = FanInConsumer.open(name, { codec: 'bytes', capacity: 1 << 22, maxProducers: producers })
    const kids = spawn('fanin-producer', [name, String(count)], producers)
    await start(kids)
    const rate = drain(consumer, producers * count, batch)
    consumer.close()
    return rate
  }

  async function spsc (count, batch) {
    const name = `bench-fanin-spsc-${process.pid}-${batch ? 'batch' : 'one'}`
    const consumer = Consumer.open(name, { codec: 'bytes', capacity: 1 << 22 })
    const kids = spawn(batch ? 'spsc-batch-producer' : 'spsc-producer', [name, String(count)], 1)
    await start(kids)
    const rate = drain(consumer, count, batch)
    consumer.close()
    return rate
  }

  async function socketServer (clients, count) {
    const socketPath = path.join(os.tmpdir(), `bench-fanin-${process.pid}-${clients}.sock`)
    const total = clients * count
    let received = 0
    let t0 = 0
    let resolveDone
    const done = new Promise((resolve) => { resolveDone = resolve })
    const server = net.createServer((socket) => {
      socket.on('data', (chunk) => {
        if (t0 === 0) t0 = performance.now()
        received += chunk.length
        if (received >= total * SIZE) resolveDone()
      })
    })
    await new Promise((resolve) => { server.listen(socketPath, () => { resolve(undefined) }) })
    const kids = spawn('socket-client', [socketPath, String(count)], clients)
    await start(kids)
    await done
    const ms = performance.now() - t0
    server.close()
    return total / (ms / 1000)
  }

  const countArg = process.argv.find((a) => a.startsWith('--count='))
  const count = countArg !== undefined ? Number(countArg.slice(8)) : quick ? 200_000 : 1_000_000
  const fmt = (r) => `${(r / 1e6).toFixed(2)} M/s`
  const cpus = os.cpus()
  const machine = `${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, Linux ${os.release()}, Node ${process.version}`
  const loadBefore = os.loadavg()
  console.log(`fan-in bench: ${machine}${quick ? ' (quick)' : ''}, ${SIZE} B messages, ${count.toLocaleString()} per producer; load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} at start`)
  console.log('the machine may be shared: read the ratios\n')
  const base = await spsc(count, false)
  const baseBatch = await spsc(count, true)
  console.log(`SPSC channel, 1 producer: ${fmt(base)} one message per call; ${fmt(baseBatch)} in batches (cork/trySend x 256/uncork, readEach)\n`)
  console.log('| producers | fan-in, receive | vs SPSC, receive | fan-in, readEach | vs SPSC batch | Unix socket server | fan-in (receive) / socket | fan-in (readEach) / socket |')
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|')
  const rows = []
  for (const producers of [1, 2, 4]) {
    const one = await fanIn(producers, count, false)
    const batch = await fanIn(producers, count, true)
    const sock = await socketServer(producers, count)
    const row = { producers, fanIn: one, vsSpsc: one / base, fanInReadEach: batch, readEachVsSpscBatch: batch / baseBatch, socket: sock, vsSocket: one / sock, readEachVsSocket: batch / sock }
    rows.push(row)
    console.log(`| ${producers} | ${fmt(one)} | ${(row.vsSpsc * 100).toFixed(0)} % | ${fmt(batch)} | ${(row.readEachVsSpscBatch * 100).toFixed(0)} % | ${fmt(sock)} | ${row.vsSocket.toFixed(2)}x | ${row.readEachVsSocket.toFixed(2)}x |`)
  }
  const four = rows[rows.length - 1]
  console.log(`\ntarget: 4 producers reach >= 60 % of the SPSC batch rate (consumer readEach): ${(four.readEachVsSpscBatch * 100).toFixed(0)} % ${four.readEachVsSpscBatch >= 0.6 ? 'met' : 'MISSED'}; one message per call on both: ${(four.vsSpsc * 100).toFixed(0)} %`)
  console.log(`target: 4 producers >= 5x a Unix socket server with 4 clients: ${four.readEachVsSocket.toFixed(2)}x with readEach, ${four.vsSocket.toFixed(2)}x with receive ${four.readEachVsSocket >= 5 ? 'met' : 'MISSED'}`)
  const loadAfter = os.loadavg()
  console.log(`load average ${loadAfter.map((l) => l.toFixed(2)).join(' ')} at the end`)
  const results = { machine, node: process.version, date: new Date().toISOString(), loadavg: { start: loadBefore, end: loadAfter }, quick, size: SIZE, perProducer: count, spsc: base, spscBatch: baseBatch, rows }
  fs.mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
  const file = new URL(`./results/fanin${quick ? '-quick' : ''}.json`, import.meta.url)
  fs.writeFileSync(`${file.pathname}.${process.pid}.tmp`, JSON.stringify(results, null, 2) + '\n')
  fs.renameSync(`${file.pathname}.${process.pid}.tmp`, file.pathname)
}
