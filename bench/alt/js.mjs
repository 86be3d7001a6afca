// The JavaScript floor of a spinning round trip: what two Node processes
// sharing one mapping can do with no library in the way, built like the C
// reference (bench/c/ref.c). The initiator copies its payload into the ping
// area and stores a sequence number; the echo spins on it, copies ping to
// pong and stores the number back. Each word on its own 128-byte line.
import crypto from 'node:crypto'
import { Region } from 'shm-channel'
import { Trips, makePayloads } from './common.mjs'

const PING = 0 // word index of the ping sequence number
const PONG = 32 // 128 bytes further
const STOP = 64
const AREA = 4096 // payload areas start here, each rounded up to a page

function layout (size) {
  const area = Math.ceil(Math.max(size, 1) / 4096) * 4096
  return { area, bytes: AREA + 2 * area }
}

export async function a (spec, ctx) {
  const name = `shm-channel-compare-${process.pid}-${crypto.randomBytes(3).toString('hex')}`
  ctx.onCleanup(() => { try { Region.unlink(name) } catch {} })
  const { area, bytes } = layout(spec.size)
  const region = Region.create(name, bytes)
  const words = new Int32Array(region.buffer, 0, 1024)
  const ping = new Uint8Array(region.buffer, AREA, spec.size)
  const pong = new Uint8Array(region.buffer, AREA + area, spec.size)
  const b = ctx.forkB({ ...spec, name })
  await ctx.nextMessage(b, 'ready')
  const pl = /** @type {Uint8Array[]} */ (makePayloads(spec.size))
  const trips = new Trips(spec)
  let seq = 0
  while (trips.start()) {
    ping.set(pl[trips.seq() & 15])
    Atomics.store(words, PING, ++seq)
    while (Atomics.load(words, PONG) !== seq) ;
    trips.done(spec.size, spec.size > 0 ? pong[0] : 0)
  }
  Atomics.store(words, STOP, 1)
  Atomics.store(words, PING, ++seq)
  await ctx.exited(b)
  region.close()
  Region.unlink(name)
  return trips.result()
}

export async function b (spec, ctx) {
  const { area } = layout(spec.size)
  const region = Region.open(spec.name)
  const words = new Int32Array(region.buffer, 0, 1024)
  const ping = new Uint8Array(region.buffer, AREA, spec.size)
  const pong = new Uint8Array(region.buffer, AREA + area, spec.size)
  ctx.send({ type: 'ready' })
  for (let seq = 1; ; seq++) {
    while (Atomics.load(words, PING) !== seq) ;
    if (Atomics.load(words, STOP) !== 0) break
    pong.set(ping)
    Atomics.store(words, PONG, seq)
  }
  region.close()
}
