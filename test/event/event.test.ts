/**
 * Named events across real processes (test/fixtures/event-peer.ts): a
 * notify in one process ends waits in others, in every waiting form; the
 * last holder removes the name; a foreign or corrupt segment is refused.
 */
import t, { type Test } from 'tap'

import { Event, Region } from '../../lib/index'
import * as L from '../../lib/event/layout'
import { word } from '../../lib/segment/words'
import { Peer } from '../support/peers'
import { channelName as newName, closeAtEnd, leavesNothingInDevShm, shmExists, unlinkIfPresent } from '../support/shm'

/** A fresh name, removed when `t` ends if a peer killed at teardown left it (dead holders still count). */
function channelName (t: Test): string {
  const name = newName()
  t.teardown(() => { unlinkIfPresent(name) })
  return name
}

/** Resolves once `count` waiters sleep on the event (a wait has loaded the count it compares). */
async function untilWaiters (event: string, count: number, ms = 10_000): Promise<void> {
  const region = Region.open(event, { readOnly: true })
  try {
    const h = new Int32Array(region.buffer, 0, L.HEADER_SIZE / 4)
    const deadline = Date.now() + ms
    while (Atomics.load(h, word(L.WAITERS_OFFSET)) < count) {
      if (Date.now() > deadline) throw new Error(`${count} waiters did not park within ${ms} ms`)
      await new Promise((resolve) => setTimeout(resolve, 2))
    }
  } finally {
    region.close()
  }
}

t.test('a notify here ends a wait() in each of two other processes', async (t) => {
  const name = channelName(t)
  const event = closeAtEnd(t, Event.open(name))
  const a = new Peer(t, 'event-peer.ts')
  const b = new Peer(t, 'event-peer.ts')
  await a.call('open', name)
  await b.call('open', name)
  const woken = [a.call('wait', 10_000), b.call('wait', 10_000)]
  await untilWaiters(name, 2)
  // One notify: a waiter counted but not yet inside the kernel sees the new count instead of a wake.
  event.notify()
  t.same(await Promise.all(woken), ['woken', 'woken'], 'both waits ended')
})

t.test('a notify there ends a waitSync() here, and one here ends a waitSync() there', async (t) => {
  const name = channelName(t)
  const event = closeAtEnd(t, Event.open(name))
  const peer = new Peer(t, 'event-peer.ts')
  await peer.call('open', name)
  const there = peer.call('waitSync', 10_000)
  await untilWaiters(name, 1)
  event.notify()
  t.equal(await there, 'woken')

  // This thread blocks: the peer watches the waiters count in shared memory and notifies once it is up.
  const notified = peer.call<number>('notifyWhenWaiting', name)
  await peer.event('watching')
  event.waitSync({ timeout: 10_000 })
  t.equal(await notified, 1, 'the peer woke this thread')
})

t.test('for await takes one step per wake-up, and ends when the event is closed', async (t) => {
  const name = channelName(t)
  const event = closeAtEnd(t, Event.open(name))
  const peer = new Peer(t, 'event-peer.ts')
  await peer.call('open', name)
  const steps = peer.call<number>('iterate', 3)
  for (let i = 0; i < 3; i++) {
    await untilWaiters(name, 1)
    event.notify()
    await peer.event('step')
  }
  t.equal(await steps, 3)

  const iterator = event[Symbol.asyncIterator]()
  const next = iterator.next()
  await untilWaiters(name, 1)
  event.close()
  t.same(await next, { value: undefined, done: true }, 'the iterator ends on close')
})

t.test('wait() times out with ERR_TIMEOUT and a pending wait rejects with ERR_CHANNEL_CLOSED on close', async (t) => {
  const name = channelName(t)
  const event = Event.open(name)
  await t.rejects(event.wait({ timeout: 20 }), { code: 'ERR_TIMEOUT' })
  t.throws(() => { event.waitSync({ timeout: 5 }) }, { code: 'ERR_TIMEOUT' })
  const controller = new AbortController()
  const aborted = event.wait({ signal: controller.signal })
  controller.abort()
  await t.rejects(aborted, { name: 'AbortError' })
  const pending = event.wait()
  await untilWaiters(name, 1)
  event.close()
  await t.rejects(pending, { code: 'ERR_CHANNEL_CLOSED' })
  t.throws(() => event.notify(), { code: 'ERR_CHANNEL_CLOSED' })
  event.close()
})

t.test('the last holder to close removes the name; a holder that was SIGKILLed leaves it to the next open', async (t) => {
  const name = channelName(t)
  const event = Event.open(name)
  const peer = new Peer(t, 'event-peer.ts')
  await peer.call('open', name)
  event.close()
  t.ok(shmExists(name), 'kept while the peer holds it')
  await peer.call('close')
  t.notOk(shmExists(name), 'removed by the last holder')

  const again = Event.open(name)
  const killed = new Peer(t, 'event-peer.ts')
  await killed.call('open', name)
  await killed.kill()
  again.close()
  t.ok(shmExists(name), 'a dead holder still counts: the name stays')
  const reopened = Event.open(name)
  const waiting = reopened.wait({ timeout: 10_000 })
  reopened.notify()
  await waiting
  reopened.close()
})

t.test('a segment of another kind or with a corrupt header is refused with ERR_INVALID_SEGMENT', async (t) => {
  const name = channelName(t)
  const region = closeAtEnd(t, Region.create(name, L.HEADER_SIZE))
  const h = new Int32Array(region.buffer)
  h[1] = (1 << 16)
  h[2] = L.HEADER_SIZE
  h[word(L.HOLDERS_OFFSET)] = -5
  Atomics.store(h, 0, L.MAGIC)
  t.throws(() => Event.open(name), { code: 'ERR_INVALID_SEGMENT' }, 'negative holder count')
  Atomics.store(h, 0, 0x434d4853)
  t.throws(() => Event.open(name), { code: 'ERR_INVALID_SEGMENT' }, 'a channel magic')
})

leavesNothingInDevShm(t)
