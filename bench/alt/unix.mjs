// Node `net` over a Unix domain socket, written the best way a Node user can:
// 4-byte little-endian length prefixes, one write per message ("write") or
// corked bursts ("cork": socket.cork(), up to 64 KiB of frames,
// socket.uncork(): one writev). No frame is made per message: each payload's
// frame (prefix + bytes) is built once and written again, and a message over
// 4 KiB goes as a corked pair of its prebuilt prefix and the payload itself.
// The reader parses frames in place from each chunk, allocating only when a
// frame straddles two chunks.
//
// "ndjson": newline-delimited JSON, what people use to send objects: corked
// bursts of JSON.stringify(object) + '\n'; the reader splits each chunk on
// newlines and JSON.parses each line.
import { Buffer } from 'node:buffer'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { once } from 'node:events'
import { Receiver, Trips, makeObjects, makePayloads, now, sleep, sleepSync } from './common.mjs'

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

/**
 * The frames of `payloads`, built once: for a payload up to 4 KiB one buffer
 * of prefix and bytes; for a larger one its prefix, to go corked before the
 * payload (one writev, no copy).
 */
function makeFrames (payloads) {
  return payloads.map((payload) => {
    const n = payload.length
    const frame = Buffer.allocUnsafe(n <= 4096 ? 4 + n : 4)
    frame.writeUInt32LE(n, 0)
    if (n <= 4096) payload.copy(frame, 4)
    return { frame, payload: n <= 4096 ? undefined : payload }
  })
}

/** Writes one prebuilt frame; returns what socket.write returned. */
function writeFrame (socket, { frame, payload }) {
  if (payload === undefined) return socket.write(frame)
  socket.cork()
  socket.write(frame)
  const ok = socket.write(payload)
  socket.uncork()
  return ok
}

/** Calls onObject(object) for each newline-terminated JSON text in the stream of strings fed to it. */
export function lineParser (onObject) {
  let rest = ''
  return function feed (chunk) {
    const text = rest === '' ? chunk : rest + chunk
    let start = 0
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      onObject(JSON.parse(text.slice(start, nl)))
      start = nl + 1
    }
    rest = start === text.length ? '' : text.slice(start)
  }
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
  const pl = makeFrames(makePayloads(spec.size))
  let sent = 0
  let result
  if (spec.variant === 'ndjson') {
    const objects = makeObjects(spec.size)
    const end = now() + spec.seconds * 1000
    const burst = Math.max(1, Math.min(256, Math.floor((64 << 10) / Math.max(spec.size, 1))))
    while (now() < end) {
      socket.cork()
      for (let k = 0; k < burst; k++) socket.write(JSON.stringify(objects[sent++ & 15]) + '\n')
      socket.uncork()
      if (socket.writableNeedDrain) await once(socket, 'drain')
    }
    socket.end()
    result = (await ctx.nextMessage(b, 'result', 60_000)).result
  } else if (spec.kind === 'tput' || spec.kind === 'rss') {
    const end = now() + spec.seconds * 1000
    const burst = spec.variant === 'cork' ? Math.max(1, Math.min(256, Math.floor((64 << 10) / Math.max(spec.size, 1)))) : 1
    while (now() < end) {
      if (burst > 1) socket.cork()
      for (let k = 0; k < burst; k++) writeFrame(socket, pl[sent++ & 15])
      if (burst > 1) socket.uncork()
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
  if (spec.variant === 'ndjson') {
    const rx = new Receiver(spec.size, spec.seconds)
    socket.setEncoding('utf8')
    socket.on('data', lineParser((m) => rx.add(spec.size, m.i)))
    await once(socket, 'end')
    ctx.send({ type: 'result', result: rx.result() })
  } else if (spec.kind === 'tput') {
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
