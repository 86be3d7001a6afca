// Node `net` over a Unix domain socket with 4-byte little-endian length
// prefixes: one write per message ("write"; a message over 4 KiB goes as a
// corked header + payload pair, so one writev and no copy) or corked bursts
// ("cork": socket.cork(), up to 64 KiB of frames, socket.uncork(): one
// writev). The reader parses frames from the byte stream.
import { Buffer } from 'node:buffer'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { once } from 'node:events'
import { Receiver, Trips, makePayloads, now, sleep, sleepSync } from './common.mjs'

/**
 * Calls onFrame(buffer, start, length) for each frame in the stream fed to
 * it; collects a partial frame's chunks and joins them once it is whole.
 */
export function frameParser (onFrame) {
  let chunks = []
  let have = 0
  let need = 4
  return function feed (chunk) {
    let buf
    if (chunks.length === 0) {
      buf = chunk
    } else {
      chunks.push(chunk)
      have += chunk.length
      if (have < need) return
      buf = Buffer.concat(chunks, have)
      chunks = []
    }
    let off = 0
    const total = buf.length
    while (total - off >= 4) {
      const len = buf.readUInt32LE(off)
      if (total - off - 4 < len) break
      onFrame(buf, off + 4, len)
      off += 4 + len
    }
    if (off < total) {
      const rest = off === 0 ? buf : buf.subarray(off)
      chunks = [rest]
      have = rest.length
      need = have >= 4 ? 4 + rest.readUInt32LE(0) : 4
    } else {
      have = 0
      need = 4
    }
  }
}

/** Writes one frame; returns what socket.write returned. */
function writeFrame (socket, payload) {
  const n = payload.length
  if (n <= 4096) {
    const frame = Buffer.allocUnsafe(4 + n)
    frame.writeUInt32LE(n, 0)
    payload.copy(frame, 4)
    return socket.write(frame)
  }
  const header = Buffer.allocUnsafe(4)
  header.writeUInt32LE(n, 0)
  socket.write(header)
  return socket.write(payload)
}

async function listen (ctx) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `shm-channel-compare-${process.pid}-`))
  ctx.onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'sock')
  const server = net.createServer()
  server.listen(file)
  await once(server, 'listening')
  return { server, file }
}

export async function a (spec, ctx) {
  const { server, file } = await listen(ctx)
  const b = ctx.forkB({ ...spec, path: file })
  const [socket] = await once(server, 'connection')
  socket.setNoDelay?.(true)
  await ctx.nextMessage(b, 'ready')
  const pl = makePayloads(spec.size)
  let sent = 0
  let result
  if (spec.kind === 'tput' || spec.kind === 'rss') {
    const end = now() + spec.seconds * 1000
    const burst = spec.variant === 'cork' ? Math.max(1, Math.min(256, Math.floor((64 << 10) / Math.max(spec.size, 1)))) : 1
    const large = spec.size > 4096
    while (now() < end) {
      if (burst > 1 || large) socket.cork()
      for (let k = 0; k < burst; k++) writeFrame(socket, pl[sent++ & 15])
      if (burst > 1 || large) socket.uncork()
      if (socket.writableNeedDrain) await once(socket, 'drain')
    }
    socket.end()
    result = (await ctx.nextMessage(b, 'result', 60_000)).result
    if (spec.kind === 'rss') result.producerMaxRssKiB = process.resourceUsage().maxRSS
  } else if (spec.kind === 'rtt') {
    const trips = new Trips(spec)
    await new Promise((resolve, reject) => {
      socket.on('error', reject)
      socket.on('data', frameParser((buf, start, len) => {
        trips.done(len, len > 0 ? buf[start] : 0)
        if (trips.start()) writeFrame(socket, pl[trips.seq() & 15])
        else resolve()
      }))
      if (trips.start()) writeFrame(socket, pl[trips.seq() & 15])
    })
    socket.end()
    result = trips.result()
  } else if (spec.kind === 'idle') {
    result = (await ctx.nextMessage(b, 'result', 60_000)).result
    socket.end()
  }
  await ctx.exited(b)
  server.close()
  return { ...result, sent }
}

export async function b (spec, ctx) {
  const socket = net.connect(spec.path)
  await once(socket, 'connect')
  ctx.send({ type: 'ready' })
  if (spec.kind === 'tput') {
    const rx = new Receiver(spec.size, spec.seconds)
    socket.on('data', frameParser((buf, start, len) => rx.add(len, len > 0 ? buf[start] : 0)))
    await once(socket, 'end')
    ctx.send({ type: 'result', result: rx.result() })
  } else if (spec.kind === 'rss') {
    let n = 0
    let bad = 0
    socket.on('data', frameParser((buf, start, len) => {
      if (len !== spec.size || buf[start] !== (n & 15)) bad++
      if ((++n & 63) === 0) sleepSync(1)
    }))
    await once(socket, 'end')
    ctx.send({ type: 'result', result: { n, bad, consumerMaxRssKiB: process.resourceUsage().maxRSS } })
  } else if (spec.kind === 'rtt') {
    socket.on('data', frameParser((buf, start, len) => {
      const header = Buffer.allocUnsafe(4)
      header.writeUInt32LE(len, 0)
      socket.cork()
      socket.write(header)
      socket.write(buf.subarray(start, start + len))
      socket.uncork()
    }))
    await once(socket, 'end')
  } else if (spec.kind === 'idle') {
    socket.on('data', () => {})
    await sleep(200)
    const t0 = process.cpuUsage()
    await sleep(spec.idleSeconds * 1000)
    const u = process.cpuUsage(t0)
    ctx.send({ type: 'result', result: { cpuSeconds: (u.user + u.system) / 1e6, idleSeconds: spec.idleSeconds } })
    await once(socket, 'end')
  }
  socket.end()
}
