// shm-channel, the library under test: throughput with the code people write
// ("await": `await producer.send(m)` per message / `for await (const m of
// consumer)`; "await-receive": the same sender / `await consumer.receive()`),
// the simple API (trySend / receiveSync) and the batching, zero-copy API
// (cork + trySend burst + uncork / readEach over what is waiting + readable()),
// round trips over two channels, a parked consumer's CPU, and RSS under
// backpressure.
import crypto from 'node:crypto'
import { Producer, Consumer, Region } from 'shm-channel'
import { Receiver, Trips, firstOf, makeObjects, makePayloads, now, sleepSync, sleep } from './common.mjs'

/** Ring size: the 1 MiB default, or larger so that a message is never fragmented (a record is at most a quarter of the ring). */
export function capacityFor (size) {
  let cap = 1 << 20
  while (cap / 4 - 8 < size) cap *= 2
  return cap
}

function unlinkQuietly (name) {
  try { Region.unlink(name) } catch {}
}

const kindOf = (codec) => (codec === 'json' ? 'string' : 'bytes')
const lengthOf = (m) => m.length
/** The sixteen messages of a run: objects for `payload: 'object'` rows (their JSON is `size` bytes), else strings or Buffers. */
const messagesFor = (spec, codec) => (spec.payload === 'object' ? makeObjects(spec.size) : makePayloads(spec.size, kindOf(codec)))
/** The length the receiver checks: an object's JSON length is known to be the size. */
const receivedLength = (spec, m) => (spec.payload === 'object' ? spec.size : m.length)

// ------------------------------------------------------------ A side ----

export async function a (spec, ctx) {
  const name = `shm-channel-compare-${process.pid}-${crypto.randomBytes(3).toString('hex')}`
  for (const suffix of ['', '-ping', '-pong']) ctx.onCleanup(() => unlinkQuietly(name + suffix))
  spec = { ...spec, name }
  const opts = { codec: spec.codec ?? 'bytes', wait: spec.wait ?? 'adaptive', capacity: capacityFor(spec.size ?? 0) }
  if (spec.kind === 'tput') {
    const producer = Producer.open(name, opts)
    const b = ctx.forkB(spec)
    await ctx.nextMessage(b, 'ready')
    const pl = messagesFor(spec, opts.codec)
    const end = now() + spec.seconds * 1000
    const mask = spec.size >= 4096 ? 0 : 255
    let i = 0
    if (spec.variant === 'await' || spec.variant === 'await-receive') {
      // What a Node user writes: one awaited send per message.
      for (;;) {
        if ((i & mask) === 0 && now() > end) break
        await producer.send(pl[i & 15])
        i++
      }
    } else if (spec.variant === 'batch') {
      const burst = Math.max(1, Math.min(256, Math.floor((64 << 10) / Math.max(spec.size, 1))))
      for (;;) {
        if (now() > end) break
        producer.cork()
        let k = 0
        for (; k < burst; k++) {
          if (!producer.trySend(pl[i & 15])) break
          i++
        }
        producer.uncork()
        if (k < burst) { producer.sendSync(pl[i & 15]); i++ }
      }
    } else {
      for (;;) {
        if ((i & mask) === 0 && now() > end) break
        const m = pl[i & 15]
        if (!producer.trySend(m)) producer.sendSync(m)
        i++
      }
    }
    producer.close()
    const r = await ctx.nextMessage(b, 'result', 60_000)
    return { ...r.result, sent: i }
  }
  if (spec.kind === 'rtt') {
    const pings = Producer.open(`${name}-ping`, opts)
    const pongs = Consumer.open(`${name}-pong`, opts)
    const b = ctx.forkB(spec)
    await ctx.nextMessage(b, 'ready')
    const pl = makePayloads(spec.size, kindOf(opts.codec))
    const trips = new Trips(spec)
    while (trips.start()) {
      const m = pl[trips.seq() & 15]
      if (!pings.trySend(m)) pings.sendSync(m)
      const back = pongs.receiveSync()
      trips.done(lengthOf(back), firstOf(back))
    }
    pings.close()
    await ctx.exited(b)
    pongs.close()
    return trips.result()
  }
  if (spec.kind === 'idle' || spec.kind === 'rss') {
    const producer = Producer.open(name, { ...opts, capacity: 1 << 20 })
    const b = ctx.forkB(spec)
    await ctx.nextMessage(b, 'ready')
    let sent = 0
    if (spec.kind === 'rss') {
      // A fast producer that respects backpressure: await send() per message.
      const pl = makePayloads(spec.size)
      const end = now() + spec.seconds * 1000
      while (now() < end) await producer.send(pl[sent++ & 15])
    }
    const result = spec.kind === 'rss' ? undefined : await ctx.nextMessage(b, 'result', 60_000)
    producer.close()
    const r = result ?? await ctx.nextMessage(b, 'result', 60_000)
    return { ...r.result, sent, producerMaxRssKiB: process.resourceUsage().maxRSS }
  }
  throw new Error(`shm: unknown kind ${spec.kind}`)
}

// ------------------------------------------------------------ B side ----

export async function b (spec, ctx) {
  const name = spec.name
  const opts = { codec: spec.codec ?? 'bytes', wait: spec.wait ?? 'adaptive' }
  if (spec.kind === 'tput') {
    const consumer = Consumer.open(name, opts)
    ctx.send({ type: 'ready' })
    const rx = new Receiver(spec.size, spec.seconds)
    try {
      if (spec.variant === 'await') {
        for await (const m of consumer) rx.add(receivedLength(spec, m), firstOf(m))
      } else if (spec.variant === 'await-receive') {
        for (;;) {
          const m = await consumer.receive()
          rx.add(receivedLength(spec, m), firstOf(m))
        }
      } else if (spec.variant === 'batch') {
        // Like the Unix socket's frame parser: each message as (buffer, start, end), no object per message.
        const onMessage = (buf, start, end) => rx.add(end - start, buf[start])
        for (;;) {
          if (consumer.readEach(onMessage) === 0 && !await consumer.readable()) break
        }
      } else {
        for (;;) {
          const m = consumer.receiveSync()
          rx.add(receivedLength(spec, m), firstOf(m))
        }
      }
    } catch (err) {
      if (err.code !== 'ERR_CHANNEL_CLOSED') throw err
    }
    ctx.send({ type: 'result', result: rx.result() })
    consumer.close()
    return
  }
  if (spec.kind === 'rtt') {
    const pings = Consumer.open(`${name}-ping`, opts)
    const pongs = Producer.open(`${name}-pong`, opts)
    ctx.send({ type: 'ready' })
    try {
      for (;;) {
        const m = pings.receiveSync()
        if (!pongs.trySend(m)) pongs.sendSync(m)
      }
    } catch (err) {
      if (err.code !== 'ERR_CHANNEL_CLOSED') throw err
    }
    pongs.close()
    pings.close()
    return
  }
  if (spec.kind === 'idle') {
    const consumer = Consumer.open(name, opts)
    ctx.send({ type: 'ready' })
    await sleep(200) // let the adaptive spin end and the process settle
    const t0 = process.cpuUsage()
    const pending = consumer.receive().then(() => 'message', (err) => err.code)
    await sleep(spec.idleSeconds * 1000)
    const u = process.cpuUsage(t0)
    ctx.send({ type: 'result', result: { cpuSeconds: (u.user + u.system) / 1e6, idleSeconds: spec.idleSeconds } })
    consumer.close()
    await pending
    return
  }
  if (spec.kind === 'rss') {
    // The slow consumer: sleeps 1 ms every 64 messages.
    const consumer = Consumer.open(name, opts)
    ctx.send({ type: 'ready' })
    let n = 0
    let bad = 0
    try {
      for (;;) {
        const m = /** @type {Buffer} */ (consumer.receiveSync())
        if (m.length !== spec.size || m[0] !== (n & 15)) bad++
        if ((++n & 63) === 0) sleepSync(1)
      }
    } catch (err) {
      if (err.code !== 'ERR_CHANNEL_CLOSED') throw err
    }
    ctx.send({ type: 'result', result: { n, bad, consumerMaxRssKiB: process.resourceUsage().maxRSS } })
    consumer.close()
    return
  }
  throw new Error(`shm: unknown kind ${spec.kind}`)
}
