/**
 * The server's sweep judges each connection slot's owner by pid and start
 * time. Clients take turns at a slot (claim: owner by compare-and-swap,
 * the slot's claims count, start time, CLAIMED; release: FREE, then owner
 * 0, as lib/rpc/ticket.ts does). A sweep that read one
 * client's pid and the next one's start time would take a live client for
 * dead: free its slot under it and report its channels as orphans.
 */
import t from 'tap'
import { Worker } from 'node:worker_threads'

import { Region } from '../../lib/platform/region'
import { processStartTime, ownStartTime } from '../../lib/platform/liveness'
import { Listener } from '../../lib/rpc/listener'
import { SLOT_CLAIMED, SLOT_CLAIMS, SLOT_OWNER, SLOT_START_TIME, SLOT_STATE, slotWord } from '../../lib/rpc/listener-layout'
import { closeAtEnd, leavesNothingInDevShm, shmName } from '../support/shm'

t.test('a sweep racing clients that take turns at a slot never takes a live one for dead', async (t) => {
  const name = shmName(t)
  const listener = Listener.create(name, { slots: 1, maxClients: 32, capacity: 4096, codec: 'json', openTimeout: 1000 })
  t.teardown(() => { listener.close() })
  const region = closeAtEnd(t, Region.open(name))
  const h = new Int32Array(region.buffer)
  const stop = new Int32Array(new SharedArrayBuffer(8))
  // Two live processes: this one and its parent.
  const clients = [{ pid: process.pid, startTime: ownStartTime }, { pid: process.ppid, startTime: processStartTime(process.ppid) }]
  const worker = new Worker(`
    const { workerData: { h, stop, clients, owner, claims, start, state, claimed } } = require('node:worker_threads')
    let turns = 0
    for (; Atomics.load(stop, 0) === 0; turns++) {
      const { pid, startTime } = clients[turns & 1]
      if (Atomics.compareExchange(h, owner, 0, pid) !== 0) continue
      Atomics.add(h, claims, 1)
      h[start] = startTime
      h[start + 1] = 0
      Atomics.store(h, state, claimed)
      Atomics.store(h, state, 0)
      Atomics.store(h, owner, 0)
    }
    Atomics.store(stop, 1, turns)
  `, { eval: true, workerData: { h, stop, clients, owner: slotWord(0, SLOT_OWNER), claims: slotWord(0, SLOT_CLAIMS), start: slotWord(0, SLOT_START_TIME), state: slotWord(0, SLOT_STATE), claimed: SLOT_CLAIMED } })
  await new Promise((resolve) => worker.once('online', resolve))
  let sweeps = 0
  const orphans: unknown[] = []
  const until = performance.now() + 1000
  while (performance.now() < until && orphans.length === 0) {
    orphans.push(...listener.sweep())
    sweeps++
  }
  Atomics.store(stop, 0, 1)
  await new Promise((resolve) => worker.once('exit', resolve))
  t.ok(Atomics.load(stop, 1) > 1000, `the clients took ${Atomics.load(stop, 1)} turns during ${sweeps} sweeps`)
  t.same(orphans, [], 'no live client was reported an orphan')
})

leavesNothingInDevShm(t)
