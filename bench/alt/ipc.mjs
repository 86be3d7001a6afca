// child_process IPC: process.send between parent and child, with
// serialization 'json' (payloads are strings: a Buffer would travel as an
// array of numbers) or 'advanced' (payloads are Buffers, structured clone).
// Throughput is paced by a credit window: the receiver acks every quarter
// window, the sender keeps at most a window of messages in flight, since
// process.send has no other backpressure than its return value.
import { Receiver, Trips, creditWindow, firstOf, makePayloads, now, sleep } from './common.mjs'

export async function a (spec, ctx) {
  const b = ctx.forkB(spec, { serialization: spec.serialization })
  await ctx.nextMessage(b, 'ready')
  const pl = makePayloads(spec.size, spec.serialization === 'json' ? 'string' : 'bytes')
  if (spec.kind === 'tput') {
    const { window } = creditWindow(spec.size)
    let acked = 0
    let wake = null
    const onAck = (m) => {
      if (m?.type !== 'ack') return
      acked = m.n
      if (wake !== null) { const w = wake; wake = null; w() }
    }
    b.on('message', onAck)
    const end = now() + spec.seconds * 1000
    let sent = 0
    for (;;) {
      while (sent - acked < window && now() < end) b.send(pl[sent++ & 15])
      if (now() >= end) break
      await new Promise((resolve) => { wake = resolve }) // a window in flight: an ack is coming
    }
    b.off('message', onAck)
    b.send({ type: 'end' })
    const r = await ctx.nextMessage(b, 'result', 60_000)
    await ctx.exited(b)
    return { ...r.result, sent }
  }
  if (spec.kind === 'rtt') {
    const trips = new Trips(spec)
    await new Promise((resolve) => {
      b.on('message', (m) => {
        if (m?.type !== undefined) return
        trips.done(m.length, firstOf(m))
        if (trips.start()) b.send(pl[trips.seq() & 15])
        else resolve()
      })
      if (trips.start()) b.send(pl[trips.seq() & 15])
    })
    b.send({ type: 'end' })
    await ctx.exited(b)
    return trips.result()
  }
  throw new Error(`ipc: unknown kind ${spec.kind}`)
}

export async function b (spec, ctx) {
  if (spec.kind === 'tput') {
    const rx = new Receiver(spec.size, spec.seconds)
    const { ackEvery } = creditWindow(spec.size)
    await new Promise((resolve) => {
      process.on('message', (/** @type {any} */ m) => {
        if (m?.type === 'end') return resolve()
        rx.add(m.length, firstOf(m))
        if (rx.n % ackEvery === 0) process.send({ type: 'ack', n: rx.n })
      })
      ctx.send({ type: 'ready' })
    })
    ctx.send({ type: 'result', result: rx.result() })
  } else if (spec.kind === 'rtt') {
    await new Promise((resolve) => {
      process.on('message', (/** @type {any} */ m) => {
        if (m?.type === 'end') return resolve()
        process.send(m)
      })
      ctx.send({ type: 'ready' })
    })
  }
  await sleep(10)
  process.disconnect()
}
