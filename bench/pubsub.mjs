// Publish/subscribe throughput: one publisher here, 1, 2 and 4 subscriber
// processes, 64 B and 4 KiB messages, against an SPSC channel and against
// the alternative the library had before topics: 4 separate SPSC channels,
// each message written to all four. All in one run: the ratios are what to
// read, the absolute numbers depend on the machine.
//
// Two tables. "Batch" (the targets): the topic's publisher writes
// bursts of 256 (cork, tryPublish x 256, uncork) and subscribers read in
// place (readEach); the N channels get bursts of 256 in turn (cork, trySend
// x 256, uncork on each) and consumers read in place (readEach). "One
// message per call": tryPublish / trySend per message, receiveSync per
// message (the bytes codec: a copy per message per reader). When readEach
// finds nothing, a reader waits in receiveSync, with the same wait strategy
// on both sides (--wait; 'block' by default: on 2 cores, 5 processes share
// the cores and a spinning reader takes the writer's CPU). A third table
// compares the strategies for 4 readers in the batch path, and a fourth the
// CPU each message of the batch path costs, measured in one process with
// no other process of the bench running (still moved by a loaded machine's
// caches, less than the rates are by its scheduler).
// Last, the alternative without shm-channel: a Unix socket server writing
// the same length-prefixed frames to N client sockets, in bursts of 256
// frames built once into one reused buffer (one write per burst per
// socket, 'drain' awaited), the clients parsing frames in place.
// Prints the tables and the targets, and writes
// bench/results/pubsub.json (pubsub-quick.json with --quick or --count).
//
//   node bench/pubsub.mjs [--quick] [--count=N (64-byte messages; 4 KiB: N / 10)] [--wait=block|adaptive] [--no-waits]
import { fork } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { Consumer, Producer, Publisher, Subscriber } from 'shm-channel'

const quick = process.argv.includes('--quick')
const role = process.argv[2]
const BURST = 256

/** Reads until the writer closes: in place in batches (`each`) or one message per call; posts { n, ms } from the first message. */
function drain (reader, each) {
  let n = 0
  let start = 0
  const noop = () => {}
  for (;;) {
    try {
      const got = each ? reader.readEach(noop) : 0
      if (got > 0) n += got
      else {
        reader.receiveSync()
        n++
      }
    } catch (err) {
      if (err.code === 'ERR_CHANNEL_CLOSED') break
      throw err
    }
    if (start === 0) start = performance.now()
  }
  process.send({ n, ms: performance.now() - start })
}

if (role === 'subscriber' || role === 'consumer') {
  const [name, mode] = process.argv.slice(3)
  const wait = /** @type {'block' | 'adaptive' | 'spin'} */ (process.argv[5])
  const reader = role === 'subscriber' ? Subscriber.open(name, { codec: 'bytes', wait }) : Consumer.open(name, { codec: 'bytes', wait })
  process.send('ready')
  drain(reader, mode === 'each')
  reader.close()
  process.disconnect()
} else if (role === 'socket-reader') {
  // Counts length-prefixed frames (4-byte little-endian length, payload) as they arrive, in place.
  const socket = net.connect(process.argv[3])
  await once(socket, 'connect')
  process.send('ready')
  let n = 0
  let start = 0
  let left = -1 // payload bytes still to come of the current frame; -1 while its length is read
  const length = Buffer.alloc(4)
  let lengthFilled = 0
  socket.on('data', (chunk) => {
    if (start === 0) start = performance.now()
    let i = 0
    while (i < chunk.length) {
      if (left > 0) {
        const take = Math.min(left, chunk.length - i)
        i += take
        left -= take
        if (left === 0) { n++; left = -1 }
      } else if (lengthFilled === 0 && chunk.length - i >= 4) {
        left = chunk.readUInt32LE(i)
        i += 4
        if (left === 0) { n++; left = -1 }
      } else {
        length[lengthFilled++] = chunk[i++]
        if (lengthFilled === 4) {
          lengthFilled = 0
          left = length.readUInt32LE(0)
          if (left === 0) { n++; left = -1 }
        }
      }
    }
  })
  await once(socket, 'end')
  process.send({ n, ms: performance.now() - start })
  process.disconnect()
} else if (role === 'echo-topic' || role === 'echo-spsc') {
  // Round trips: answers every ping (from a topic, or an SPSC channel) on an SPSC channel back.
  const name = process.argv[3]
  const pings = role === 'echo-topic' ? Subscriber.open(name, { codec: 'bytes' }) : Consumer.open(`${name}-ping`, { codec: 'bytes' })
  const pongs = Producer.open(`${name}-pong`, { codec: 'bytes' })
  process.send('ready')
  for (;;) {
    let m
    try { m = pings.receiveSync() } catch (err) { if (err.code === 'ERR_CHANNEL_CLOSED') break; throw err }
    if (!pongs.trySend(m)) pongs.sendSync(m)
  }
  pongs.close()
  pings.close()
  process.disconnect()
} else {
  const started = (child) => new Promise((resolve, reject) => {
    child.once('message', resolve)
    child.once('exit', (code) => reject(new Error(`child exited ${code}`)))
  })
  const finished = (child) => new Promise((resolve) => child.once('message', resolve))

  /** Starts a child of `kind` on each of `names`; resolves when all are ready, with their result promises. */
  async function children (kind, names, mode = 'one', wait = 'adaptive') {
    const kids = names.map((name) => fork(new URL(import.meta.url), [kind, name, mode, wait]))
    await Promise.all(kids.map(started))
    return kids.map(finished)
  }

  /** Messages per second delivered in total (each delivery counted), from the slowest reader's clock. */
  function rate (results) {
    const ms = Math.max(...results.map((r) => r.ms))
    return results.reduce((sum, r) => sum + r.n, 0) / (ms / 1000)
  }

  /** Writes `count` messages: one per call, or in corked bursts of BURST (a write that finds no room waits, then the burst goes on). */
  function write (count, each, writers, size) {
    const message = Buffer.alloc(size)
    const t0 = performance.now()
    if (!each) {
      for (let i = 0; i < count; i++) for (const w of writers) if (!w.try(message)) w.wait(message)
    } else {
      for (let i = 0; i < count; i += BURST) {
        const burst = Math.min(BURST, count - i)
        for (const w of writers) {
          w.end.cork()
          for (let k = 0; k < burst; k++) if (!w.try(message)) w.wait(message)
          w.end.uncork()
        }
      }
    }
    return count / ((performance.now() - t0) / 1000)
  }

  async function topic (subscribers, size, count, mode, wait) {
    const name = `bench-topic-${process.pid}-${subscribers}-${size}-${mode}-${wait}`
    const publisher = Publisher.open(name, { codec: 'bytes', policy: 'block', capacity: 1 << 22, maxSubscribers: subscribers })
    const done = await children('subscriber', new Array(subscribers).fill(name), mode, wait)
    const writer = { end: publisher, try: (m) => publisher.tryPublish(m), wait: (m) => { publisher.publishSync(m) } }
    const publishing = write(count, mode === 'each', [writer], size)
    publisher.close()
    return { agg: rate(await Promise.all(done)), publishing }
  }

  async function channels (n, size, count, mode, wait) {
    const names = Array.from({ length: n }, (_, i) => `bench-spsc-${process.pid}-${n}-${size}-${mode}-${wait}-${i}`)
    const producers = names.map((name) => Producer.open(name, { codec: 'bytes', capacity: 1 << 22 }))
    const done = await children('consumer', names, mode, wait)
    const writers = producers.map((p) => ({ end: p, try: (m) => p.trySend(m), wait: (m) => { p.sendSync(m) } }))
    const publishing = write(count, mode === 'each', writers, size)
    for (const p of producers) p.close()
    return { agg: rate(await Promise.all(done)), publishing }
  }

  /** The same `count` messages of `size` bytes to `readers` client processes over Unix sockets, in bursts of BURST frames. */
  async function socketFanOut (readers, size, count) {
    const socketPath = path.join(os.tmpdir(), `bench-pubsub-${process.pid}-${readers}-${size}.sock`)
    fs.rmSync(socketPath, { force: true })
    const sockets = []
    const server = net.createServer((socket) => { sockets.push(socket) })
    server.listen(socketPath)
    await once(server, 'listening')
    const done = await children('socket-reader', new Array(readers).fill(socketPath))
    while (sockets.length < readers) await once(server, 'connection')
    const frame = 4 + size
    const slab = Buffer.alloc(BURST * frame)
    for (let k = 0; k < BURST; k++) slab.writeUInt32LE(size, k * frame)
    for (let i = 0; i < count; i += BURST) {
      const burst = Math.min(BURST, count - i)
      const bytes = burst === BURST ? slab : slab.subarray(0, burst * frame)
      for (const socket of sockets) if (!socket.write(bytes)) await once(socket, 'drain')
    }
    for (const socket of sockets) socket.end()
    const agg = rate(await Promise.all(done))
    server.close()
    fs.rmSync(socketPath, { force: true })
    return { agg }
  }

  /** p50 and p99 of `count` round trips in microseconds: ping out through `send`, pong back on `${name}-pong`. */
  async function roundTrips (name, send, count) {
    const pongs = Consumer.open(`${name}-pong`, { codec: 'bytes' })
    const ping = Buffer.alloc(64)
    const times = []
    for (let i = 0; i < count; i++) {
      const t0 = performance.now()
      send(ping)
      pongs.receiveSync()
      times.push((performance.now() - t0) * 1000)
    }
    pongs.close()
    times.sort((a, b) => a - b)
    return { p50: times[Math.floor(times.length * 0.5)], p99: times[Math.floor(times.length * 0.99)] }
  }

  async function topicRoundTrips (count) {
    const name = `bench-rt-topic-${process.pid}`
    const publisher = Publisher.open(name, { codec: 'bytes', maxSubscribers: 4 })
    const echo = fork(new URL(import.meta.url), ['echo-topic', name])
    await started(echo)
    const others = await children('subscriber', [name, name, name])
    const result = await roundTrips(name, (m) => { if (!publisher.tryPublish(m)) publisher.publishSync(m) }, count)
    publisher.close()
    await Promise.all(others)
    return result
  }

  async function channelRoundTrips (count) {
    const name = `bench-rt-spsc-${process.pid}`
    const pings = Producer.open(`${name}-ping`, { codec: 'bytes' })
    const echo = fork(new URL(import.meta.url), ['echo-spsc', name])
    await started(echo)
    const result = await roundTrips(name, (m) => { if (!pings.trySend(m)) pings.sendSync(m) }, count)
    pings.close()
    return result
  }

  const waitArg = process.argv.find((a) => a.startsWith('--wait='))
  const wait = waitArg !== undefined ? waitArg.slice(7) : 'block'
  if (wait !== 'block' && wait !== 'adaptive' && wait !== 'spin') throw new Error(`--wait must be block, adaptive or spin, got ${wait}`)
  const fmt = (r) => `${(r / 1e6).toFixed(2)} M/s`
  const cpus = os.cpus()
  const machine = `${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, Linux ${os.release()}, Node ${process.version}`
  const loadBefore = os.loadavg()
  console.log(`pubsub bench: ${machine}${quick ? ' (quick)' : ''}; load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} at start`)
  console.log(`rates are messages per second; "delivered" sums the deliveries of every reader; readers wait with '${wait}' on both sides; the machine may be shared, read the ratios`)
  const countArg = process.argv.find((a) => a.startsWith('--count='))
  const countFor = (size) => countArg !== undefined ? Number(countArg.slice(8)) / (size === 64 ? 1 : 10) : (size === 64 ? 1_000_000 : 100_000) / (quick ? 5 : 1)

  /** One table: every size and reader count, topic against 1 and N channels, in `mode` ('each': the batch path; 'one': a message per call). */
  async function table (mode, title) {
    console.log(`\n${title}\n`)
    console.log('| size | readers | topic delivered | per reader | SPSC x1 | per reader / SPSC | N SPSC delivered | topic / N SPSC | publisher: topic | publisher: N SPSC in turn | publisher topic / N SPSC |')
    console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    const rows = []
    for (const size of [64, 4096]) {
      const count = countFor(size)
      const spsc = await channels(1, size, count, mode, wait)
      for (const readers of [1, 2, 4]) {
        const t = await topic(readers, size, count, mode, wait)
        const separate = readers === 1 ? spsc : await channels(readers, size, count, mode, wait)
        const row = {
          size,
          readers,
          topicDelivered: t.agg,
          perReader: t.agg / readers,
          spsc: spsc.agg,
          perReaderVsSpsc: t.agg / readers / spsc.agg,
          separateDelivered: separate.agg,
          deliveredVsSeparate: t.agg / separate.agg,
          topicPublishing: t.publishing,
          separatePublishing: separate.publishing,
          publishingVsSeparate: t.publishing / separate.publishing
        }
        rows.push(row)
        console.log(`| ${size} | ${readers} | ${fmt(row.topicDelivered)} | ${fmt(row.perReader)} | ${fmt(row.spsc)} | ${row.perReaderVsSpsc.toFixed(2)}x | ${fmt(row.separateDelivered)} | ${row.deliveredVsSeparate.toFixed(2)}x | ${fmt(row.topicPublishing)} | ${fmt(row.separatePublishing)} | ${row.publishingVsSeparate.toFixed(2)}x |`)
      }
    }
    return rows
  }

  const rows = await table('each', `Batch: publisher cork + tryPublish x ${BURST} + uncork, subscribers readEach; N SPSC: cork + trySend x ${BURST} + uncork to each in turn, consumers readEach`)
  const rowsOne = await table('one', 'One message per call: tryPublish / trySend to each, receiveSync (bytes codec: a copy per message per reader)')

  // The readers' wait strategy, 4 readers in the batch path, topic against 4 channels under each.
  const waits = []
  if (!process.argv.includes('--no-waits')) {
    console.log('\nWait strategies, batch path, 4 readers: the same strategy on both sides\n')
    console.log('| size | readers wait | topic delivered | 4 SPSC delivered | topic / 4 SPSC |')
    console.log('|---:|---|---:|---:|---:|')
    for (const size of [64, 4096]) {
      for (const strategy of ['adaptive', 'block']) {
        const count = countFor(size)
        const t = await topic(4, size, count, 'each', strategy)
        const separate = await channels(4, size, count, 'each', strategy)
        waits.push({ size, wait: strategy, topicDelivered: t.agg, separateDelivered: separate.agg, deliveredVsSeparate: t.agg / separate.agg })
        console.log(`| ${size} | ${strategy} | ${fmt(t.agg)} | ${fmt(separate.agg)} | ${(t.agg / separate.agg).toFixed(2)}x |`)
      }
    }
  }

  /**
   * CPU per message of the batch path in this one process, writer and
   * reader taking turns (a burst written, then read): what the cores must
   * spend whatever the scheduling, and the ratio it bounds with 4 readers
   * when the machine is CPU-bound: (4 writes + 4 reads) / (1 write + 4 reads).
   */
  function costs (size, count) {
    const noop = () => {}
    const cpu = (fn) => {
      const before = process.cpuUsage()
      fn()
      const used = process.cpuUsage(before)
      return (used.user + used.system) * 1000
    }
    const name = `bench-cost-${process.pid}-${size}`
    const publisher = Publisher.open(`${name}-topic`, { codec: 'bytes', capacity: 1 << 22, policy: 'block' })
    const subscriber = Subscriber.open(`${name}-topic`, { codec: 'bytes' })
    const producer = Producer.open(`${name}-spsc`, { codec: 'bytes', capacity: 1 << 22 })
    const consumer = Consumer.open(`${name}-spsc`, { codec: 'bytes' })
    const message = Buffer.alloc(size)
    const ns = { topicWrite: 0, topicRead: 0, spscWrite: 0, spscRead: 0 }
    // Twice: the first round warms up, the second is measured.
    for (let round = 0; round < 2; round++) {
      for (const key of Object.keys(ns)) ns[key] = 0
      for (let i = 0; i < count; i += BURST) {
        ns.topicWrite += cpu(() => { publisher.cork(); for (let k = 0; k < BURST; k++) publisher.tryPublish(message); publisher.uncork() })
        ns.topicRead += cpu(() => { subscriber.readEach(noop) })
        ns.spscWrite += cpu(() => { producer.cork(); for (let k = 0; k < BURST; k++) producer.trySend(message); producer.uncork() })
        ns.spscRead += cpu(() => { consumer.readEach(noop) })
      }
    }
    for (const end of [subscriber, publisher, consumer, producer]) end.close()
    const per = Math.ceil(count / BURST) * BURST
    for (const key of Object.keys(ns)) ns[key] /= per
    return { size, ...ns, bound4: (4 * ns.spscWrite + 4 * ns.spscRead) / (ns.topicWrite + 4 * ns.topicRead) }
  }
  console.log('\nCPU per message of the batch path, one process, writer and reader in turn (ns):\n')
  console.log('| size | topic write | topic read | SPSC write | SPSC read | 4 readers, CPU-bound: topic / 4 SPSC |')
  console.log('|---:|---:|---:|---:|---:|---:|')
  const cost = []
  for (const size of [64, 4096]) {
    const c = costs(size, Math.min(countFor(size), size === 64 ? 1_000_000 : 100_000))
    cost.push(c)
    console.log(`| ${size} | ${c.topicWrite.toFixed(0)} | ${c.topicRead.toFixed(0)} | ${c.spscWrite.toFixed(0)} | ${c.spscRead.toFixed(0)} | ${c.bound4.toFixed(2)}x |`)
  }

  console.log(`\nThe alternative without shm-channel: a Unix socket server writing each burst of ${BURST} frames to every client socket (one write per burst per socket), clients parsing frames in place; against the topic's batch path above\n`)
  console.log('| size | readers | Unix sockets delivered | topic delivered | topic / Unix sockets |')
  console.log('|---:|---:|---:|---:|---:|')
  const sockets = []
  for (const size of [64, 4096]) {
    for (const readers of [1, 2, 4]) {
      const u = await socketFanOut(readers, size, countFor(size))
      const t = rows.find((r) => r.size === size && r.readers === readers)
      const row = { size, readers, socketDelivered: u.agg, topicDelivered: t.topicDelivered, topicVsSocket: t.topicDelivered / u.agg }
      sockets.push(row)
      console.log(`| ${size} | ${readers} | ${fmt(u.agg)} | ${fmt(row.topicDelivered)} | ${row.topicVsSocket.toFixed(2)}x |`)
    }
  }

  const trips = countArg !== undefined ? Math.max(100, Number(countArg.slice(8)) / 20) : quick ? 5_000 : 50_000
  const viaTopic = await topicRoundTrips(trips)
  const viaChannel = await channelRoundTrips(trips)
  console.log(`\nround trip, 64 B, ${trips.toLocaleString()} times: topic with 4 subscribers (one echoes) p50 ${viaTopic.p50.toFixed(1)} µs, p99 ${viaTopic.p99.toFixed(1)} µs; one SPSC channel p50 ${viaChannel.p50.toFixed(1)} µs, p99 ${viaChannel.p99.toFixed(1)} µs`)
  for (const r of rows.filter((r) => r.readers === 4)) {
    const met = r.deliveredVsSeparate >= 2.5
    console.log(`target: ${r.size} B, 4 subscribers deliver >= 2.5x of 4 separate SPSC channels (batch path, readers wait '${wait}'): ${r.deliveredVsSeparate.toFixed(2)}x ${met ? 'met' : 'MISSED'}`)
  }
  for (const r of sockets.filter((r) => r.readers === 4)) {
    console.log(`target: ${r.size} B, 4 subscribers deliver >= 5x a Unix socket server writing to 4 clients: ${r.topicVsSocket.toFixed(2)}x ${r.topicVsSocket >= 5 ? 'met' : 'MISSED'}`)
  }
  const loadAfter = os.loadavg()
  console.log(`load average ${loadAfter.map((l) => l.toFixed(2)).join(' ')} at the end`)
  const results = {
    machine,
    node: process.version,
    date: new Date().toISOString(),
    loadavg: { start: loadBefore, end: loadAfter },
    quick,
    burst: BURST,
    wait,
    rows,
    rowsOnePerCall: rowsOne,
    waits,
    cpuPerMessage: cost,
    unixSockets: sockets,
    roundTrip: { count: trips, topic4: viaTopic, spsc: viaChannel }
  }
  fs.mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
  // A smoke run (--count) does not replace the results of a full one.
  const file = new URL(`./results/pubsub${quick || countArg !== undefined ? '-quick' : ''}.json`, import.meta.url)
  fs.writeFileSync(`${file.pathname}.${process.pid}.tmp`, JSON.stringify(results, null, 2) + '\n')
  fs.renameSync(`${file.pathname}.${process.pid}.tmp`, file.pathname)
}
