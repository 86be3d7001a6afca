/**
 * Topics across real processes (test/fixtures/pubsub-peer.ts): one
 * publisher, subscribers in other processes, under both policies; limits,
 * late joiners, closes and corrupt segments.
 */
import t, { type Test } from 'tap'

import { Publisher, Region, Subscriber } from '../../lib/index'
import * as L from '../../lib/pubsub/layout'
import { word } from '../../lib/segment/words'
import type { Tally } from '../fixtures/pubsub-peer'
import { Peer } from '../support/peers'
import { channelName, closeAtEnd, leavesNothingInDevShm, unlinkIfPresent } from '../support/shm'
import { topicMessage, topicMessageSize } from '../support/topic-messages'

function freshName (t: Test): string {
  const name = channelName()
  t.teardown(() => { unlinkIfPresent(name) })
  return name
}

async function subscribers (t: Test, name: string, count: number, options: object): Promise<Peer[]> {
  const peers = Array.from({ length: count }, () => new Peer(t, 'pubsub-peer.ts'))
  await Promise.all(peers.map(async (peer) => await peer.call('openSubscriber', name, options)))
  return peers
}

async function publishAll (publisher: Publisher<Uint8Array>, count: number, spread: number): Promise<void> {
  for (let seq = 0; seq < count; seq++) {
    const m = topicMessage(seq, topicMessageSize(seq, spread))
    if (!publisher.tryPublish(m)) await publisher.publish(m, { timeout: 30_000 })
  }
}

t.test("'block': 1 publisher x 4 subscriber processes x 10,000 messages, every subscriber gets every message, whole and in order", async (t) => {
  const name = freshName(t)
  const COUNT = 10_000
  const publisher = closeAtEnd(t, Publisher.open<Uint8Array>(name, { codec: 'bytes', capacity: 1 << 15, policy: 'block' }))
  const peers = await subscribers(t, name, 4, {})
  const tallies = peers.map(async (peer) => await peer.call<Tally>('readUntil', COUNT - 1, false))
  await Promise.all(peers.map(async (peer) => await peer.event('ready')))
  await publishAll(publisher, COUNT, 200)
  for (const tally of await Promise.all(tallies)) {
    t.same(tally, { received: COUNT, lost: 0, torn: 0, outOfOrder: 0, gaps: 0, last: COUNT - 1 })
  }
})

t.test("'overwrite': the publisher never waits; lapped subscribers are told what they lost, never see a torn message, and the counts add up", async (t) => {
  const name = freshName(t)
  const COUNT = 10_000
  const publisher = closeAtEnd(t, Publisher.open<Uint8Array>(name, { codec: 'bytes', capacity: 1 << 13, policy: 'overwrite' }))
  const peers = await subscribers(t, name, 4, {})
  // Two read as they go, two are held until everything is published: those are lapped for sure.
  const tallies = peers.map(async (peer, i) => await peer.call<Tally>('readUntil', COUNT - 1, i >= 2))
  await Promise.all(peers.map(async (peer) => await peer.event('ready')))
  let refused = 0
  for (let seq = 0; seq < COUNT; seq++) if (!publisher.tryPublish(topicMessage(seq, topicMessageSize(seq, 300)))) refused++
  t.equal(refused, 0, 'tryPublish never refused')
  await Promise.all(peers.slice(2).map(async (peer) => await peer.call('go')))
  const results = await Promise.all(tallies)
  for (const [i, tally] of results.entries()) {
    t.equal(tally.torn, 0, `subscriber ${i}: no torn message`)
    t.equal(tally.outOfOrder, 0, `subscriber ${i}: in order`)
    t.equal(tally.last, COUNT - 1, `subscriber ${i}: read up to the last message`)
    t.equal(tally.gaps, tally.lost, `subscriber ${i}: the messages it missed are the ones it was told it lost`)
    t.equal(tally.received + tally.lost, COUNT, `subscriber ${i}: received + lost = published`)
  }
  t.ok(results[2].lost > 0 && results[3].lost > 0, 'the held subscribers were lapped')
})

t.test('maxSubscribers is a hard limit: one more is refused with ERR_TOO_MANY_ENDS; a left entry is reused', async (t) => {
  const name = freshName(t)
  const publisher = closeAtEnd(t, Publisher.open(name, { maxSubscribers: 2 }))
  const a = Subscriber.open(name)
  const b = closeAtEnd(t, Subscriber.open(name))
  t.throws(() => Subscriber.open(name), { code: 'ERR_TOO_MANY_ENDS' })
  t.throws(() => Publisher.open(name), { code: 'ERR_END_TAKEN' }, 'one publisher')
  a.close()
  const c = closeAtEnd(t, Subscriber.open(name))
  await publisher.publish({ n: 1 })
  t.same(await b.receive(), { n: 1 })
  t.same(await c.receive(), { n: 1 })
  t.throws(() => Subscriber.open(name, { maxSubscribers: 0 }), { code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => Publisher.open(freshName(t), { policy: 'fastest' as 'block' }), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => publisher.tryPublish('x'.repeat(1 << 19)), { code: 'ERR_MESSAGE_TOO_LARGE' })
})

t.test("a late subscriber starts at the newest message, or at the oldest retained with from: 'oldest'", async (t) => {
  const name = freshName(t)
  const publisher = closeAtEnd(t, Publisher.open<number>(name, { capacity: 4096, policy: 'overwrite' }))
  for (let i = 0; i < 1000; i++) publisher.tryPublish(i)
  const newest = closeAtEnd(t, Subscriber.open<number>(name))
  const oldest = closeAtEnd(t, Subscriber.open<number>(name, { from: 'oldest' }))
  t.equal(newest.tryReceive(), undefined, 'nothing yet for a newest subscriber')
  const first = oldest.tryReceive() as number
  t.ok(first > 0 && first < 1000, `the oldest retained (${first}) is neither the first published nor past the last`)
  let next = first + 1
  for (let v = oldest.tryReceive(); v !== undefined; v = oldest.tryReceive()) t.equal(v, next++)
  t.equal(next, 1000, 'then every message up to the last')
  publisher.tryPublish(1000)
  t.equal(newest.tryReceive(), 1000)
  t.equal(oldest.tryReceive(), 1000)
  publisher.close()
  t.throws(() => newest.tryReceive(), { code: 'ERR_CHANNEL_CLOSED' }, 'the stream ends after what was published')
  const values: number[] = []
  publisher.close()
  for await (const v of oldest) values.push(v)
  t.same(values, [], 'for await ends at once on a closed topic')
})

t.test("under 'block' the publisher waits for the slowest subscriber; a subscriber that leaves stops gating it", async (t) => {
  const name = freshName(t)
  const publisher = closeAtEnd(t, Publisher.open<Uint8Array>(name, { codec: 'bytes', capacity: 4096 }))
  const slow = Subscriber.open<Uint8Array>(name, { codec: 'bytes' })
  let published = 0
  while (publisher.tryPublish(Buffer.alloc(100))) published++
  t.ok(published > 0 && published < 4096 / 100, `the ring holds ${published} messages for the slow subscriber`)
  const waiting = publisher.publish(Buffer.alloc(100), { timeout: 10_000 })
  slow.close()
  await waiting
  t.pass('published once the slow subscriber left')
})

t.test('hostile and corrupt segments are refused with ERR_INVALID_SEGMENT, no crash, no hang', async (t) => {
  const name = freshName(t)
  const capacity = 4096
  const region = closeAtEnd(t, Region.create(name, L.segmentSize(capacity, 4)))
  const h = new Int32Array(region.buffer)
  h[1] = 1 << 16
  h[2] = L.HEADER_SIZE
  h[word(L.CAPACITY_OFFSET)] = capacity
  h[word(L.MAX_SUBSCRIBERS_OFFSET)] = 4
  h[word(L.POLICY_OFFSET)] = 3
  Atomics.store(h, 0, L.MAGIC)
  t.throws(() => Subscriber.open(name), { code: 'ERR_INVALID_SEGMENT' }, 'an unknown policy')
  h[word(L.POLICY_OFFSET)] = L.POLICY_BLOCK
  h[word(L.MAX_SUBSCRIBERS_OFFSET)] = 400
  t.throws(() => Subscriber.open(name), { code: 'ERR_INVALID_SEGMENT' }, 'a subscriber table past the end of the object')
  h[word(L.MAX_SUBSCRIBERS_OFFSET)] = 4
  h[word(L.TAIL_OFFSET)] = 8
  t.throws(() => Publisher.open(name), { code: 'ERR_INVALID_SEGMENT' }, 'a misaligned tail')
  h[word(L.TAIL_OFFSET)] = 0
  const subscriber = closeAtEnd(t, Subscriber.open(name, { from: 'oldest' }))
  // A record whose position word is not its position, then one longer than the ring.
  const w = L.ringOffset(4) >>> 2
  h[w] = 8
  h[w + 1] = L.TYPE_DATA
  h[w + 2] = 4096
  Atomics.store(h, word(L.INTENT_OFFSET), 32)
  Atomics.store(h, word(L.TAIL_OFFSET), 32)
  t.throws(() => subscriber.tryReceive(), { code: 'ERR_INVALID_SEGMENT' }, 'a record that is not at its position')
  h[w + 2] = 0
  h[w] = 100000
  t.throws(() => subscriber.tryReceive(), { code: 'ERR_INVALID_SEGMENT' }, 'a record longer than the ring')
  // Under 'overwrite', readEach walks the headers before it copies. A torn
  // header may hold any length, and 0xffffffc9 aligns to -32 in 32-bit
  // arithmetic: this second record would send the walk back to the first, forever.
  h[word(L.POLICY_OFFSET)] = L.POLICY_OVERWRITE
  const copier = closeAtEnd(t, Subscriber.open(name, { from: 'oldest' }))
  h[w] = 8
  h[w + 8] = 0xffffffc9 | 0
  h[w + 9] = L.TYPE_DATA
  h[w + 10] = 32
  Atomics.store(h, word(L.INTENT_OFFSET), 64)
  Atomics.store(h, word(L.TAIL_OFFSET), 64)
  let handedOut = 0
  t.throws(() => copier.readEach(() => { handedOut++ }), { code: 'ERR_INVALID_SEGMENT' }, 'readEach: a record whose length wraps')
  t.equal(handedOut, 1, 'after the record before it')
})

leavesNothingInDevShm(t)
