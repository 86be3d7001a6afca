/**
 * The batch paths of a topic: Subscriber#readEach (in place under 'block',
 * from a copy checked to be whole under 'overwrite') against publishers in
 * other processes (test/fixtures/pubsub-peer.ts), and Publisher#cork /
 * uncork, with subscriber processes reading every burst.
 */
import t, { type Test } from 'tap'

import { Publisher, Subscriber, type LappedError } from '../../lib/index'
import type { Tally } from '../fixtures/pubsub-peer'
import { Peer } from '../support/peers'
import { channelName, closeAtEnd, leavesNothingInDevShm, unlinkIfPresent } from '../support/shm'
import { checkTopicMessage, topicMessage, topicMessageSize } from '../support/topic-messages'

function freshName (t: Test): string {
  const name = channelName()
  t.teardown(() => { unlinkIfPresent(name) })
  return name
}

function thrown (fn: () => unknown): Error & { code?: string, lost?: number } {
  try {
    fn()
  } catch (err) {
    return err as Error & { code?: string }
  }
  throw new Error('it did not throw')
}

/** What a reader saw, as the fixture's Tally counts it; `shared` counts the messages handed out in the segment itself. */
interface Seen { received: number, lost: number, torn: number, outOfOrder: number, gaps: number, last: number, shared: number, calls: number }

function seen (): Seen {
  return { received: 0, lost: 0, torn: 0, outOfOrder: 0, gaps: 0, last: -1, shared: 0, calls: 0 }
}

function count (tally: Seen, data: Uint8Array): void {
  const seq = checkTopicMessage(data)
  tally.received++
  if (seq === -1) {
    tally.torn++
    return
  }
  if (seq <= tally.last) tally.outOfOrder++
  else tally.gaps += seq - tally.last - 1
  tally.last = seq
}

/**
 * Reads with readEach (at most `max` a call) until message `last`; when
 * nothing is waiting, waits with receive() and counts what it returns.
 * Laps are counted, not fatal.
 */
async function readEachUntil (subscriber: Subscriber<Uint8Array>, last: number, max: number, tally = seen()): Promise<Seen> {
  const onMessage = (bytes: Buffer, start: number, end: number): void => {
    if (bytes.buffer instanceof SharedArrayBuffer) tally.shared++
    count(tally, bytes.subarray(start, end))
  }
  while (tally.last !== last) {
    try {
      tally.calls++
      if (subscriber.readEach(onMessage, max) > 0) continue
      count(tally, await subscriber.receive({ timeout: 30_000 }))
    } catch (err) {
      if ((err as LappedError).code !== 'ERR_LAPPED') throw err
      tally.lost += (err as LappedError).lost
    }
  }
  return tally
}

t.test("'block': two readEach readers here get every message of a publisher in another process whole and in order, in place", async (t) => {
  const name = freshName(t)
  const COUNT = 20_000
  const peer = new Peer(t, 'pubsub-peer.ts')
  await peer.call('openPublisher', name, { capacity: 1 << 14, policy: 'block' })
  const all = closeAtEnd(t, Subscriber.open<Uint8Array>(name, { codec: 'bytes' }))
  const few = closeAtEnd(t, Subscriber.open<Uint8Array>(name, { codec: 'bytes' }))
  const publishing = peer.call('publishMany', 0, COUNT, 300)
  // One reads what is there, one at most 7 a call; each waits with receive() when nothing is.
  const [a, b] = await Promise.all([readEachUntil(all, COUNT - 1, Infinity), readEachUntil(few, COUNT - 1, 7)])
  await publishing
  for (const [label, tally] of [['all', a], ['at most 7', b]] as const) {
    t.equal(tally.torn, 0, `${label}: no torn message`)
    t.equal(tally.outOfOrder, 0, `${label}: in order`)
    t.equal(tally.gaps, 0, `${label}: none missing`)
    t.equal(tally.received, COUNT, `${label}: every message`)
    t.ok(tally.shared > 0, `${label}: readEach handed out the ring's own bytes (${tally.shared} messages in place)`)
  }
  t.ok(b.calls > COUNT / 7, 'max bounds each call')
  t.equal(all.lost, 0)
})

t.test("'overwrite': a readEach reader a publisher in another process laps is told what it lost and never gets a torn message", async (t) => {
  const name = freshName(t)
  const capacity = 4096
  const peer = new Peer(t, 'pubsub-peer.ts')
  await peer.call('openPublisher', name, { capacity, policy: 'overwrite' })
  // Joined before the first message: the counts start at message 0.
  const subscriber = closeAtEnd(t, Subscriber.open<Uint8Array>(name, { codec: 'bytes' }))
  const running = peer.call<number>('publishUntilStopped', 300)
  running.catch(() => {})
  await peer.event('publishing')
  const tally = seen()
  let privateCopies = 0
  const onMessage = (bytes: Buffer, start: number, end: number): void => {
    if (!(bytes.buffer instanceof SharedArrayBuffer)) privateCopies++
    count(tally, bytes.subarray(start, end))
  }
  // Reads until nothing is waiting, or for at most `calls` calls: a reader
  // close behind a publisher that never waits may always find more.
  const drain = (calls = Infinity): void => {
    for (let call = 0; call < calls; call++) {
      try {
        if (subscriber.readEach(onMessage) === 0) return
      } catch (err) {
        if ((err as LappedError).code !== 'ERR_LAPPED') throw err
        tally.lost += (err as LappedError).lost
      }
    }
  }
  let laps = 0
  for (let round = 0; round < 20; round++) {
    // Held until the publisher is more than a ring ahead: lapped for sure.
    while (subscriber.lag <= capacity) await new Promise((resolve) => setImmediate(resolve))
    const lostBefore = tally.lost
    drain(64)
    if (tally.lost > lostBefore) laps++
    // Then read as it goes for a while, racing the writes.
    for (let i = 0; i < 50; i++) {
      drain(64)
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
  await peer.call('stopPublishing')
  const published = await running
  drain()
  t.equal(tally.torn, 0, 'no torn message')
  t.equal(tally.outOfOrder, 0, 'in order')
  t.equal(laps, 20, 'every hold ended in a lap, reported by readEach')
  t.equal(tally.gaps, tally.lost, 'the messages it missed are the ones it was told it lost')
  t.equal(tally.last, published - 1, 'read up to the last message')
  t.equal(tally.received + tally.lost, published, 'received + lost = published')
  t.equal(subscriber.lost, tally.lost, 'subscriber.lost agrees')
  t.equal(privateCopies, tally.received, 'every message came from a private copy')
})

t.test("'block': subscribers joining from the oldest message while a publisher in another process runs read only whole messages", async (t) => {
  const name = freshName(t)
  const peer = new Peer(t, 'pubsub-peer.ts')
  await peer.call('openPublisher', name, { capacity: 1 << 13, policy: 'block' })
  const running = peer.call<number>('publishUntilStopped', 500)
  running.catch(() => {})
  await peer.event('publishing')
  let torn = 0
  let received = 0
  for (let join = 0; join < 30; join++) {
    const subscriber = Subscriber.open<Uint8Array>(name, { codec: 'bytes', from: 'oldest' })
    let last = -1
    let outOfOrder = 0
    for (let call = 0; call < 20; call++) {
      try {
        subscriber.readEach((bytes, start, end) => {
          const seq = checkTopicMessage(bytes.subarray(start, end))
          received++
          if (seq === -1) torn++
          else if (last !== -1 && seq !== last + 1) outOfOrder++
          else last = seq
        })
      } catch (err) {
        // A subscriber that starts at the oldest record may be lapped before the publisher counts it (docs/pubsub.md).
        if ((err as LappedError).code !== 'ERR_LAPPED') throw err
        last = -1
      }
      await new Promise((resolve) => setImmediate(resolve))
    }
    t.equal(outOfOrder, 0, `subscriber ${join}: every message follows the one before`)
    subscriber.close()
  }
  await peer.call('stopPublishing')
  await running
  t.equal(torn, 0, `no torn message in ${received}`)
  t.ok(received > 0)
})

t.test('readEach: 0 when nothing waits; a throwing callback consumes its message; argument checks; the end of the stream', async (t) => {
  const name = freshName(t)
  const publisher = closeAtEnd(t, Publisher.open<Uint8Array>(name, { codec: 'bytes', capacity: 4096 }))
  const subscriber = closeAtEnd(t, Subscriber.open<Uint8Array>(name, { codec: 'bytes' }))
  const got: number[] = []
  const collect = (bytes: Buffer, start: number): void => { got.push(bytes[start]) }
  t.equal(subscriber.readEach(collect), 0)
  for (let i = 0; i < 4; i++) publisher.tryPublish(Buffer.from([i]))
  const err = thrown(() => subscriber.readEach((bytes, start) => {
    got.push(bytes[start])
    if (bytes[start] === 1) throw new Error('boom')
  }))
  t.equal(err.message, 'boom')
  t.same(got, [0, 1], 'up to the one that threw')
  t.equal(subscriber.readEach(collect), 2)
  t.same(got, [0, 1, 2, 3], 'the rest on the next call, nothing twice')
  t.equal(thrown(() => subscriber.readEach('not a function' as any)).code, 'ERR_INVALID_ARG_TYPE')
  t.equal(thrown(() => subscriber.readEach(collect, 0)).code, 'ERR_OUT_OF_RANGE')
  t.equal(thrown(() => subscriber.readEach(collect, 1.5)).code, 'ERR_OUT_OF_RANGE')
  publisher.tryPublish(Buffer.from([4]))
  publisher.close()
  t.equal(subscriber.readEach(collect), 1, 'what was published before the close')
  t.equal(thrown(() => subscriber.readEach(collect)).code, 'ERR_CHANNEL_CLOSED', 'then the end')
  subscriber.close()
  t.equal(thrown(() => subscriber.readEach(collect)).code, 'ERR_CHANNEL_CLOSED', 'a closed subscriber')
})

t.test("'overwrite': a lap readEach finds after handing messages out ends the batch; the next read throws it", async (t) => {
  const name = freshName(t)
  const capacity = 4096
  const publisher = closeAtEnd(t, Publisher.open<Uint8Array>(name, { codec: 'bytes', capacity, policy: 'overwrite' }))
  const subscriber = closeAtEnd(t, Subscriber.open<Uint8Array>(name, { codec: 'bytes' }))
  // Messages of 112 bytes take 128 with their header: 30 of them, read, leave the cursor 256 bytes before the end of the ring.
  let seq = 0
  for (; seq < 30; seq++) publisher.tryPublish(topicMessage(seq, 112))
  t.equal(subscriber.readEach(() => {}), 30)
  // Four more run past the end of the ring: readEach copies up to the end, then from the start.
  for (; seq < 34; seq++) publisher.tryPublish(topicMessage(seq, 112))
  const first: number[] = []
  const n = subscriber.readEach((bytes, start, end) => {
    first.push(checkTopicMessage(bytes.subarray(start, end)))
    // While the first part is handed out, the publisher laps the rest.
    if (first.length === 1) for (let i = 0; i < 40; i++) publisher.tryPublish(topicMessage(seq++, 112))
  })
  t.same(first, [30, 31], 'the part copied before the lap, whole')
  t.equal(n, 2, 'the batch ends at the lap')
  const lap = thrown(() => subscriber.tryReceive())
  t.equal(lap.code, 'ERR_LAPPED', 'the next read reports the lap')
  t.ok((lap.lost ?? 0) > 0, `with what was lost (${lap.lost})`)
  const after: number[] = []
  subscriber.readEach((bytes, start, end) => { after.push(checkTopicMessage(bytes.subarray(start, end))) })
  t.equal(after.at(-1), seq - 1, 'then reading goes on from the oldest retained to the newest')
  t.equal(after[0] - 32, lap.lost, 'and the count lost is the gap')
})

t.test('cork: nothing is visible until uncork, or until an eighth of the ring is held back, or a publish finds no room; close publishes', async (t) => {
  const name = freshName(t)
  const publisher = closeAtEnd(t, Publisher.open<Uint8Array>(name, { codec: 'bytes', capacity: 4096, policy: 'block' }))
  const subscriber = closeAtEnd(t, Subscriber.open<Uint8Array>(name, { codec: 'bytes' }))
  const none = (): void => {}
  publisher.cork()
  for (let i = 0; i < 3; i++) t.ok(publisher.tryPublish(topicMessage(i, 20)))
  t.equal(subscriber.tryReceive(), undefined, 'held back while corked')
  t.equal(subscriber.lag, 0)
  publisher.uncork()
  t.equal(subscriber.readEach(none), 3, 'all three at uncork')
  t.equal(publisher.tryPublish(topicMessage(3, 20)), true)
  t.equal(subscriber.readEach(none), 1, 'uncorked: each message at once')

  publisher.cork()
  // 112-byte messages take 128 bytes: the fourth makes an eighth of the ring (512).
  for (let i = 0; i < 3; i++) publisher.tryPublish(topicMessage(i, 112))
  t.equal(subscriber.readEach(none), 0)
  publisher.tryPublish(topicMessage(3, 112))
  t.equal(subscriber.readEach(none), 4, 'published once an eighth of the ring is held back')

  let written = 0
  while (publisher.tryPublish(topicMessage(written, 20))) written++
  t.ok(written > 0)
  // 20-byte messages take 48 bytes: the ring is full to within one message.
  t.ok(subscriber.lag > 4096 - 48, 'a publish that found no room published what was held back')
  const waiting = publisher.publish(topicMessage(written, 20), { timeout: 10_000 })
  t.equal(subscriber.readEach(none), written)
  await waiting
  t.equal(subscriber.readEach(none), 0, 'a corked publish that had to wait is held back too')
  publisher.uncork()
  t.equal(subscriber.readEach(none), 1, 'until uncork')
  publisher.cork()

  publisher.tryPublish(topicMessage(0, 20))
  publisher.tryPublish(topicMessage(1, 20))
  publisher.close()
  const last: number[] = []
  subscriber.readEach((bytes, start, end) => { last.push(checkTopicMessage(bytes.subarray(start, end))) })
  t.same(last, [0, 1], 'close published what cork held back')
  t.throws(() => publisher.cork(), { code: 'ERR_CHANNEL_CLOSED' })
  publisher.uncork()
  t.pass('uncork on a closed publisher does nothing')
})

t.test("'block': a publisher here corking bursts of 256 (tryPublish, publish when full) reaches 4 subscriber processes whole and in order", async (t) => {
  const name = freshName(t)
  const COUNT = 20_000
  const publisher = closeAtEnd(t, Publisher.open<Uint8Array>(name, { codec: 'bytes', capacity: 1 << 15, policy: 'block' }))
  const peers = Array.from({ length: 4 }, () => new Peer(t, 'pubsub-peer.ts'))
  await Promise.all(peers.map(async (peer) => await peer.call('openSubscriber', name, {})))
  const tallies = peers.map(async (peer) => await peer.call<Tally>('readUntil', COUNT - 1, false))
  await Promise.all(peers.map(async (peer) => await peer.event('ready')))
  for (let seq = 0; seq < COUNT;) {
    publisher.cork()
    for (let k = 0; k < 256 && seq < COUNT; k++, seq++) {
      const m = topicMessage(seq, topicMessageSize(seq, 200))
      if (!publisher.tryPublish(m)) await publisher.publish(m, { timeout: 30_000 })
    }
    publisher.uncork()
  }
  for (const tally of await Promise.all(tallies)) {
    t.same(tally, { received: COUNT, lost: 0, torn: 0, outOfOrder: 0, gaps: 0, last: COUNT - 1 })
  }
})

leavesNothingInDevShm(t)
