/**
 * Fan-in messages larger than one record, in fragments: across real
 * processes (test/fixtures/fanin-peer.ts) with producers' fragments
 * interleaved in the ring and messages up to three times its capacity; the
 * json codec; maxMessageSize; readEach; a producer SIGKILLed in the middle
 * of a fragmented message; and a segment of the previous version refused.
 */
import t, { type Test } from 'tap'

import { FanInConsumer, FanInProducer, Region } from '../../lib/index'
import * as L from '../../lib/fanin/layout'
import { describeFanIn, inspectFanIn } from '../../lib/fanin/inspect'
import { word } from '../../lib/segment/words'
import { bigObject, checkMixed, mixedMessage } from '../fixtures/fanin-messages'
import { Peer } from '../support/peers'
import { channelName, closeAtEnd, leavesNothingInDevShm, unlinkIfPresent } from '../support/shm'

function freshName (t: Test): string {
  const name = channelName()
  // Peers killed at teardown may leave the name (their entries stay until the next open reclaims it).
  t.teardown(() => { unlinkIfPresent(name) })
  return name
}

/** Receives until `expected` holds, checking each message whole and in its producer's order; returns the count of wrong ones. */
async function receiveMixed (t: Test, consumer: FanInConsumer<Uint8Array>, capacity: number, next: number[], expected: number[]): Promise<number> {
  let wrong = 0
  while (next.some((n, id) => n < expected[id])) {
    const got = checkMixed(await consumer.receive({ timeout: 30_000 }), capacity)
    if (typeof got === 'string') {
      t.fail(got)
      wrong++
    } else if (got[0] >= next.length || got[1] !== next[got[0]]) {
      t.fail(`message ${got[0]}/${got[1]} out of order (expected ${got[0]}/${next[got[0]]})`)
      wrong++
    } else next[got[0]]++
  }
  return wrong
}

/** Polls (no fixed sleep) until `done()`: the consumer looks for a gone producer once per peerCheckInterval. */
async function until (done: () => boolean, poll: () => void): Promise<void> {
  while (!done()) {
    poll()
    await new Promise((resolve) => setImmediate(resolve))
  }
}

t.test('4 producer processes send small messages and messages of 1 to 3 times the ring: every one arrives whole, in each producer\'s order', async (t) => {
  const name = freshName(t)
  const PRODUCERS = 4
  const COUNT = 60
  const capacity = 1 << 14
  const consumer = closeAtEnd(t, FanInConsumer.open<Uint8Array>(name, { codec: 'bytes', capacity }))
  const peers = Array.from({ length: PRODUCERS }, () => new Peer(t, 'fanin-peer.ts'))
  await Promise.all(peers.map(async (peer) => await peer.call('openProducer', name)))
  // Two send() with their event loop, two sendSync() blocking theirs.
  const sent = peers.map(async (peer, id) => await peer.call('sendMixed', id, 0, COUNT, capacity, id >= 2))
  const next = new Array<number>(PRODUCERS).fill(0)
  t.equal(await receiveMixed(t, consumer, capacity, next, new Array(PRODUCERS).fill(COUNT)), 0, 'no message torn, out of order, duplicated or from nowhere')
  t.same(await Promise.all(sent), new Array(PRODUCERS).fill(COUNT))
  t.equal(consumer.tryReceive(), undefined, 'nothing more')
  t.equal(consumer.skipped, 0)
  t.equal(consumer.dropped, 0)
  const snapshot = inspectFanIn(name, closeAtEnd(t, Region.open(name, { readOnly: true })).buffer)
  t.equal(snapshot?.messagesReceived, PRODUCERS * COUNT, 'a fragmented message counts once as received')
  t.same(snapshot?.producers.map((p) => p.messagesSent), new Array(PRODUCERS).fill(COUNT), 'and once as sent')
})

t.test('json codec: a large object from another process arrives whole, between small messages', async (t) => {
  const name = freshName(t)
  const capacity = 4096
  const consumer = closeAtEnd(t, FanInConsumer.open(name, { capacity }))
  const peer = new Peer(t, 'fanin-peer.ts')
  await peer.call('openProducer', name, { codec: 'json' })
  const sent = (async () => {
    await peer.call('sendBigObject', 1, 2)
    await peer.call('sendBigObject', 2, 2000)
    await peer.call('sendBigObject', 3, 2)
  })()
  t.same(await consumer.receive({ timeout: 10_000 }), bigObject(1, 2))
  const big = bigObject(2, 2000)
  t.ok(JSON.stringify(big).length > 10 * capacity, 'the object is ten times the ring')
  t.same(await consumer.receive({ timeout: 10_000 }), big)
  t.same(await consumer.receive({ timeout: 10_000 }), bigObject(3, 2))
  await sent
})

t.test('maxMessageSize: a larger message is refused once with ERR_MESSAGE_TOO_LARGE and the rest of it passed over; other producers\' messages around it arrive', async (t) => {
  const name = freshName(t)
  const capacity = 4096
  const consumer = closeAtEnd(t, FanInConsumer.open<Uint8Array>(name, { codec: 'bytes', capacity, maxMessageSize: 3 * capacity }))
  const a = closeAtEnd(t, FanInProducer.open<Uint8Array>(name, { codec: 'bytes' }))
  const b = closeAtEnd(t, FanInProducer.open<Uint8Array>(name, { codec: 'bytes' }))
  t.throws(() => FanInConsumer.open(freshName(t), { maxMessageSize: -1 }), { code: 'ERR_OUT_OF_RANGE' })
  // a's big message and b's small ones interleave in the ring.
  const sending = Promise.all([
    (async () => {
      await a.send(mixedMessage(0, 0, capacity))
      await a.send(mixedMessage(0, 8, capacity)) // 3 x capacity and more: over the limit
      await a.send(mixedMessage(0, 1, capacity))
      await a.send(mixedMessage(0, 2, capacity)) // capacity and more: within it
    })(),
    (async () => { for (let seq = 0; seq < 30; seq += 3) await b.send(mixedMessage(1, seq, capacity)) })()
  ])
  const fromA: number[] = []
  let fromB = 0
  let refused = 0
  while (fromA.length < 3 || fromB < 10) {
    try {
      const got = checkMixed(await consumer.receive({ timeout: 10_000 }), capacity)
      if (typeof got === 'string') t.fail(got)
      else if (got[0] === 0) fromA.push(got[1])
      else if (got[1] === fromB * 3) fromB++
      else t.fail(`b's message ${got[1]} out of order`)
    } catch (err) {
      t.equal((err as { code?: string }).code, 'ERR_MESSAGE_TOO_LARGE')
      refused++
    }
  }
  await sending
  t.same(fromA, [0, 1, 2], 'a\'s messages but the refused one, in order')
  t.equal(refused, 1, 'refused once')
  t.equal(consumer.dropped, 0, 'a refused message is not a dropped one')

  // A whole message (one record) over the limit is refused too.
  const small = closeAtEnd(t, FanInConsumer.open<Uint8Array>(freshName(t), { codec: 'bytes', maxMessageSize: 100 }))
  const p = closeAtEnd(t, FanInProducer.open<Uint8Array>(small.name, { codec: 'bytes' }))
  p.trySend(Buffer.alloc(101, 1))
  p.trySend(Buffer.alloc(100, 2))
  t.throws(() => small.tryReceive(), { code: 'ERR_MESSAGE_TOO_LARGE' })
  t.same(small.tryReceive(), Buffer.alloc(100, 2))
})

t.test('readEach hands out whole messages: in the ring, or reassembled in a private buffer; trySend and claim() refuse what needs fragments', async (t) => {
  const name = freshName(t)
  const capacity = 4096
  const consumer = closeAtEnd(t, FanInConsumer.open<Uint8Array>(name, { codec: 'bytes', capacity }))
  const producers = [0, 1].map(() => closeAtEnd(t, FanInProducer.open<Uint8Array>(name, { codec: 'bytes' })))
  const max = capacity / 4 - 8
  t.throws(() => producers[0].trySend(Buffer.alloc(max + 1)), { code: 'ERR_MESSAGE_TOO_LARGE' }, 'trySend writes one record at most')
  t.throws(() => producers[0].claim(max + 1), { code: 'ERR_MESSAGE_TOO_LARGE' }, 'so does claim()')
  producers[0].claim(max)
  producers[0].discard()
  const COUNT = 24
  const sending = Promise.all(producers.map(async (p, id) => { for (let seq = 0; seq < COUNT; seq++) await p.send(mixedMessage(id, seq, capacity)) }))
  const next = [0, 0]
  let inRing = 0
  let reassembled = 0
  while (next[0] < COUNT || next[1] < COUNT) {
    const n = consumer.readEach((bytes, start, end) => {
      const got = checkMixed(bytes.subarray(start, end), capacity)
      if (typeof got === 'string' || got[1] !== next[got[0]]) t.fail(`wrong message: ${String(got)}`)
      else next[got[0]]++
      if (!(bytes.buffer instanceof SharedArrayBuffer)) reassembled++
      else inRing++
    })
    if (n === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  await sending
  t.equal(reassembled, 2 * COUNT / 3, 'every third message reassembled')
  t.equal(inRing, 2 * COUNT * 2 / 3, 'the others in place')
})

t.test('a producer SIGKILLed in the middle of a fragmented message: its part is dropped and counted; the next owner of its entry gets through whole', async (t) => {
  const name = freshName(t)
  const capacity = 4096
  // One entry: the next producer must reuse the dead one's.
  const consumer = closeAtEnd(t, FanInConsumer.open<Uint8Array>(name, { codec: 'bytes', capacity, maxProducers: 1, peerCheckInterval: 50 }))
  const dying = new Peer(t, 'fanin-peer.ts')
  t.equal(await dying.call('openProducer', name), 0)
  const hung = dying.call('sendPartialAndHang', 0, 5, capacity)
  hung.catch(() => {})
  t.equal(await dying.event('ready'), 0)
  const view = new Int32Array(closeAtEnd(t, Region.open(name, { readOnly: true })).buffer)
  t.ok(Atomics.load(view, word(L.TAIL_OFFSET)) >= capacity / 4, 'fragments are in the ring, the message is not finished')
  await dying.kill()

  const next = new Peer(t, 'fanin-peer.ts')
  t.equal(await next.call('openProducer', name), 0, 'the next producer takes the same entry')
  // Its first message is a fragmented one too (message 2: the ring and more).
  const sent = next.call('sendMixed', 0, 2, 7, capacity)
  const order = [2]
  t.equal(await receiveMixed(t, consumer, capacity, order, [9]), 0, 'the next owner\'s messages, whole and in order: none joined to the dead one\'s part')
  t.equal(await sent, 7)
  t.equal(consumer.dropped, 1, 'the part is dropped once')
  t.equal(view[word(L.PARTIALS_DROPPED_OFFSET)], 1, 'and counted in the header')
  const snapshot = inspectFanIn(name, view.buffer as SharedArrayBuffer)
  t.equal(snapshot?.partialsDropped, 1, 'which the inspector shows')
  if (snapshot !== undefined) t.match(describeFanIn(snapshot), /^dropped +1 partial messages/m, 'in stat\'s text too')
})

t.test('a producer SIGKILLed in the middle of a fragmented message, and nobody takes its entry: the part is dropped once the consumer has read it; nothing hangs', async (t) => {
  const name = freshName(t)
  const capacity = 4096
  const consumer = closeAtEnd(t, FanInConsumer.open<Uint8Array>(name, { codec: 'bytes', capacity, peerCheckInterval: 50 }))
  const other = closeAtEnd(t, FanInProducer.open<Uint8Array>(name, { codec: 'bytes' }))
  const dying = new Peer(t, 'fanin-peer.ts')
  await dying.call('openProducer', name)
  const hung = dying.call('sendPartialAndHang', 3, 5, capacity)
  hung.catch(() => {})
  await dying.event('ready')
  await dying.kill()
  const sending = (async () => { for (let seq = 0; seq < 6; seq++) await other.send(mixedMessage(1, seq, capacity)) })()
  const order = [0, 0]
  t.equal(await receiveMixed(t, consumer, capacity, order, [0, 6]), 0, 'the live producer\'s messages, whole and in order')
  await sending
  await until(() => consumer.dropped === 1, () => { t.equal(consumer.tryReceive(), undefined) })
  t.pass('the dead producer\'s part is dropped, never delivered')
})

t.test('a producer SIGKILLed between claim and commit of a fragment: the claim is skipped and the part before it dropped, both counted; the others carry on', async (t) => {
  const name = freshName(t)
  const capacity = 4096
  const consumer = closeAtEnd(t, FanInConsumer.open<Uint8Array>(name, { codec: 'bytes', capacity, peerCheckInterval: 50 }))
  const hanging = new Peer(t, 'fanin-peer.ts')
  const claimed = hanging.call('fragmentThenClaimAndHang', name, 3 * capacity)
  claimed.catch(() => {})
  t.equal(await hanging.event('claimed'), capacity / 4, 'the second fragment is claimed right after the first')
  const other = closeAtEnd(t, FanInProducer.open<Uint8Array>(name, { codec: 'bytes' }))
  // Behind the open claim, and more than the ring holds: these wait for the skip.
  const sending = (async () => { for (let seq = 0; seq < 9; seq++) await other.send(mixedMessage(1, seq, capacity)) })()
  t.equal(consumer.tryReceive(), undefined, 'nothing whole to read while the claimant lives')
  await hanging.kill()
  t.equal(await receiveMixed(t, consumer, capacity, [0, 0], [0, 9]), 0, 'the other producer\'s messages, whole and in order')
  await sending
  t.equal(consumer.skipped, 1, 'the claim is skipped')
  await until(() => consumer.dropped === 1, () => { t.equal(consumer.tryReceive(), undefined) })
  t.pass('and the first fragment, never delivered, dropped')
})

t.test('a producer closed in the middle of a fragmented message (its send rejects): the part is dropped when the entry\'s next owner sends a whole message', async (t) => {
  const name = freshName(t)
  const capacity = 4096
  const consumer = closeAtEnd(t, FanInConsumer.open<Uint8Array>(name, { codec: 'bytes', capacity, maxProducers: 1 }))
  const first = FanInProducer.open<Uint8Array>(name, { codec: 'bytes' })
  const sending = first.send(mixedMessage(0, 5, capacity))
  t.equal(consumer.tryReceive(), undefined, 'the first fragments are in, the message is not whole')
  first.close()
  await t.rejects(sending, { code: 'ERR_CHANNEL_CLOSED' })
  const second = closeAtEnd(t, FanInProducer.open<Uint8Array>(name, { codec: 'bytes' }))
  t.equal(second.index, first.index, 'the closed entry is reused')
  const sent = (async () => { for (let seq = 0; seq < 6; seq++) await second.send(mixedMessage(0, seq, capacity)) })()
  t.equal(await receiveMixed(t, consumer, capacity, [0], [6]), 0, 'the next owner\'s messages, whole and in order')
  await sent
  t.equal(consumer.dropped, 1, 'the part is dropped once')
})

t.test('a segment of the previous version (1.0, before fragments) is refused by both ends, naming both versions', async (t) => {
  const name = freshName(t)
  const capacity = 4096
  const region = closeAtEnd(t, Region.create(name, L.segmentSize(capacity, 16)))
  const h = new Int32Array(region.buffer)
  h[1] = (1 << 16) | 0
  h[2] = L.HEADER_SIZE
  h[word(L.CAPACITY_OFFSET)] = capacity
  h[word(L.MAX_PRODUCERS_OFFSET)] = 16
  Atomics.store(h, 0, L.MAGIC)
  t.equal(L.VERSION_MAJOR, 2)
  t.throws(() => FanInConsumer.open(name), { code: 'ERR_INVALID_SEGMENT', message: /version 1\.0 is not supported \(this is 2\.0\)/ })
  t.throws(() => FanInProducer.open(name), { code: 'ERR_INVALID_SEGMENT', message: /version 1\.0 is not supported/ })
})

leavesNothingInDevShm(t)
