import path from 'node:path'
import t from 'tap'
import { Worker } from 'node:worker_threads'

import { END_OPEN, END_SLOT_SIZE, readEnd } from '../../lib/segment/ends'

// Two holders hand one end slot back and forth, as two processes taking
// turns with a store's writer lock do. A reader racing them must never pair
// one holder's pid with the other's start time: that pair names no live
// process, so the holder would be taken for dead and its lock taken from it.
const HOLDERS = [{ pid: 111, startTime: 1000 }, { pid: 222, startTime: 2000 }]
const HANDOFFS = END_SLOT_SIZE >>> 2
const STOP = HANDOFFS + 1

t.test('readEnd with a handoff count never pairs one holder\'s pid with another\'s start time', async (t) => {
  const h = new Int32Array(new SharedArrayBuffer(64))
  const worker = new Worker(path.join(__dirname, '..', 'fixtures', 'end-handoffs.ts'), { workerData: { h, handoffs: HANDOFFS, stop: STOP, holders: HOLDERS } })
  const exited = new Promise((resolve, reject) => { worker.once('exit', resolve); worker.once('error', reject) })
  // Until the worker hands the slot over.
  while (Atomics.load(h, HANDOFFS) < 1000) await new Promise((resolve) => setImmediate(resolve))
  const startOf = new Map(HOLDERS.map(({ pid, startTime }) => [pid, startTime]))
  let reads = 0
  let open = 0
  const torn: unknown[] = []
  const until = performance.now() + 1000
  while (performance.now() < until && torn.length === 0) {
    for (let i = 0; i < 10_000; i++) {
      const end = readEnd(h, 0, HANDOFFS)
      reads++
      if (end.state !== END_OPEN) continue
      open++
      if (end.startTime !== 0 && end.startTime !== startOf.get(end.pid)) torn.push(end)
    }
  }
  Atomics.store(h, STOP, 1)
  await exited
  t.ok(Atomics.load(h, HANDOFFS) > 10_000, `the slot changed hands ${Atomics.load(h, HANDOFFS)} times`)
  t.ok(open > 0, `some of the ${reads} reads found the slot held (${open})`)
  t.same(torn, [], 'no read paired a pid with another holder\'s start time')
})
