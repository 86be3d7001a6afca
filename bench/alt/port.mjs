// worker_threads MessagePort, the in-process reference: the driver thread
// posts Buffers (structured clone, a copy each) to a worker, which counts
// them or posts them back. Paced by a credit window as with IPC.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { Receiver, Trips, creditWindow, firstOf, makePayloads, now } from './common.mjs'

if (!isMainThread && workerData?.role === 'port-b') worker(workerData.spec)

function next (w, type) {
  return new Promise((resolve, reject) => {
    const on = (m) => { if (m?.type === type) { w.off('message', on); resolve(m) } }
    w.on('message', on)
    w.once('error', reject)
  })
}

export async function a (spec) {
  const w = new Worker(new URL(import.meta.url), { workerData: { role: 'port-b', spec } })
  await next(w, 'ready')
  const pl = makePayloads(spec.size)
  if (spec.kind === 'tput') {
    const { window } = creditWindow(spec.size)
    let acked = 0
    let wake = null
    w.on('message', (m) => {
      if (m?.type !== 'ack') return
      acked = m.n
      if (wake !== null) { const f = wake; wake = null; f() }
    })
    const end = now() + spec.seconds * 1000
    let sent = 0
    for (;;) {
      while (sent - acked < window && now() < end) w.postMessage(pl[sent++ & 15])
      if (now() >= end) break
      await new Promise((resolve) => { wake = resolve }) // a window in flight: an ack is coming
    }
    w.postMessage({ type: 'end' })
    const r = await next(w, 'result')
    await w.terminate()
    return { ...r.result, sent }
  }
  const trips = new Trips(spec)
  await new Promise((resolve) => {
    w.on('message', (m) => {
      if (m?.type !== undefined) return
      trips.done(m.length, firstOf(m))
      if (trips.start()) w.postMessage(pl[trips.seq() & 15])
      else resolve()
    })
    if (trips.start()) w.postMessage(pl[trips.seq() & 15])
  })
  await w.terminate()
  return trips.result()
}

function worker (spec) {
  if (spec.kind === 'tput') {
    const rx = new Receiver(spec.size, spec.seconds)
    const { ackEvery } = creditWindow(spec.size)
    parentPort.on('message', (m) => {
      if (m?.type === 'end') {
        parentPort.postMessage({ type: 'result', result: rx.result() })
        return
      }
      rx.add(m.length, firstOf(m))
      if (rx.n % ackEvery === 0) parentPort.postMessage({ type: 'ack', n: rx.n })
    })
  } else {
    parentPort.on('message', (m) => parentPort.postMessage(m))
  }
  parentPort.postMessage({ type: 'ready' })
}
