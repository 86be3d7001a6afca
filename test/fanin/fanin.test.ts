/**
 * Fan-in across real processes (test/fixtures/fanin-peer.ts): several
 * producers into one consumer, every message once and each producer's in
 * order; a producer SIGKILLed between claim and commit is skipped and
 * counted; limits, closes, deaths and corrupt segments.
 */
import t, { type Test } from 'tap'

import { FanInConsumer, FanInProducer, Region } from '../../lib/index'
import * as L from '../../lib/fanin/layout'
import { word } from '../../lib/segment/words'
import { Peer } from '../support/peers'
import { Prng } from '../support/prng'
import { channelName, closeAtEnd, leavesNothingInDevShm, unlinkIfPresent } from '../support/shm'

function freshName (t: Test): string {
  const name = channelName()
  // Peers killed at teardown may leave the name (their entries stay until the next open reclaims it).
  t.teardown(() => { unlinkIfPresent(name) })
  return name
}

/** Checks a message from test/fixtures/fanin-peer.ts and returns [producer id, sequence number]. */
function parse (t: Test, m: Uint8Array): [number, number] {
  const b = Buffer.from(m)
  const id = b.readUInt32LE(0)
  const seq = b.readUInt32LE(4)
  if (b.length !== 16 || b.readUInt32LE(8) !== ((id + seq) >>> 0) || b.readUInt32LE(12) !== 0xa5a5a5a5) t.fail(`a torn message: ${b.toString('hex')}`)
  return [id, seq]
}

/**
 * Reads producers * count messages from peers that each send [id, seq] for
 * seq 0..count-1, and checks that each producer's arrive once, in its order.
 */
async function expectEveryMessageInOrder (t: Test, consumer: FanInConsumer<Uint8Array>, sent: Array<Promise<unknown>>, producers: number, count: number, what: string): Promise<void> {
  const next = new Array<number>(producers).fill(0)
  let wrong = 0
  for (let n = 0; n < producers * count; n++) {
    const [id, seq] = parse(t, await consumer.receive({ timeout: 30_000 }))
    if (id >= producers || seq !== next[id]) wrong++
    else next[id]++
  }
  t.equal(wrong, 0, 'no message out of its producer\'s order, duplicated or from nowhere')
  t.same(next, new Array(producers).fill(count), what)
  t.same(await Promise.all(sent), new Array(producers).fill(count))
  t.equal(consumer.tryReceive(), undefined, 'nothing more')
  t.equal(consumer.skipped, 0)
}

t.test('4 producer processes x 20,000 messages: every message arrives once, each producer\'s in order', async (t) => {
  const name = freshName(t)
  const PRODUCERS = 4
  const COUNT = 20_000
  const consumer = closeAtEnd(t, FanInConsumer.open<Uint8Array>(name, { codec: 'bytes', capacity: 1 << 16 }))
  const peers = Array.from({ length: PRODUCERS }, () => new Peer(t, 'fanin-peer.ts'))
  await Promise.all(peers.map(async (peer) => await peer.call('openProducer', name)))
  const sent = peers.map(async (peer, id) => await peer.call('sendMany', id, 0, COUNT))
  await expectEveryMessageInOrder(t, consumer, sent, PRODUCERS, COUNT, 'every message of every producer')
})

t.test('a producer SIGKILLed between claim and commit is skipped once it is dead, and counted; the others carry on', async (t) => {
  const name = freshName(t)
  const consumer = closeAtEnd(t, FanInConsumer.open<Uint8Array>(name, { codec: 'bytes', capacity: 4096, peerCheckInterval: 50 }))
  const writer = new Peer(t, 'fanin-peer.ts')
  const hanging = new Peer(t, 'fanin-peer.ts')
  await writer.call('openProducer', name)
  await writer.call('sendMany', 1, 0, 10)
  const claimed = hanging.call('claimAndHang', name, 100)
  claimed.catch(() => {})
  t.equal(await hanging.event('claimed'), 10 * 24, 'claimed right after the first ten messages')
  // These queue behind the claim; more than the ring holds, so the writer waits for room too.
  const rest = writer.call('sendMany', 1, 10, 500)
  for (let seq = 0; seq < 10; seq++) t.same(parse(t, await consumer.receive({ timeout: 10_000 })), [1, seq])
  t.equal(consumer.tryReceive(), undefined, 'nothing readable while the claimant lives')
  await hanging.kill()
  for (let seq = 10; seq < 510; seq++) {
    const [id, got] = parse(t, await consumer.receive({ timeout: 10_000 }))
    if (id !== 1 || got !== seq) {
      t.fail(`expected message ${seq}, got ${id}/${got}`)
      break
    }
  }
  t.equal(await rest, 500)
  t.equal(consumer.skipped, 1, 'one claim skipped')
  const header = new Int32Array(closeAtEnd(t, Region.open(name, { readOnly: true })).buffer)
  t.equal(header[word(L.CLAIMS_SKIPPED_OFFSET)], 1, 'and counted in the header for the inspector')
})

t.test('claim/commit across processes: two producers write in place (shorter commits, discards), two copy in; every message once, in each producer\'s order', async (t) => {
  const name = freshName(t)
  const PRODUCERS = 4
  const COUNT = 5_000
  const consumer = closeAtEnd(t, FanInConsumer.open<Uint8Array>(name, { codec: 'bytes', capacity: 1 << 14 }))
  const peers = Array.from({ length: PRODUCERS }, () => new Peer(t, 'fanin-peer.ts'))
  await Promise.all(peers.map(async (peer) => await peer.call('openProducer', name)))
  const sent = peers.map(async (peer, id) => await peer.call(id < 2 ? 'claimMany' : 'sendMany', id, 0, COUNT))
  await expectEveryMessageInOrder(t, consumer, sent, PRODUCERS, COUNT, 'every message of every producer, none of the discarded claims')
})

t.test('a producer SIGKILLed between its own claim() and commit() is skipped and counted; an open claim at close() is given up', async (t) => {
  const name = freshName(t)
  const consumer = closeAtEnd(t, FanInConsumer.open<Uint8Array>(name, { codec: 'bytes', capacity: 4096, peerCheckInterval: 50 }))
  const writer = new Peer(t, 'fanin-peer.ts')
  const hanging = new Peer(t, 'fanin-peer.ts')
  await writer.call('openProducer', name)
  const claimed = hanging.call('userClaimAndHang', name, 200)
  claimed.catch(() => {})
  await hanging.event('claimed')
  const rest = writer.call('sendMany', 1, 0, 300)
  t.equal(consumer.tryReceive(), undefined, 'nothing readable past the claim while the claimant lives')
  await hanging.kill()
  for (let seq = 0; seq < 300; seq++) {
    const [id, got] = parse(t, await consumer.receive({ timeout: 10_000 }))
    if (id !== 1 || got !== seq) {
      t.fail(`expected message ${seq}, got ${id}/${got}`)
      break
    }
  }
  t.equal(await rest, 300)
  t.equal(consumer.skipped, 1, 'one claim skipped')

  // Closed with a claim open: given up as padding, nothing skipped, the next message arrives.
  const p = FanInProducer.open<Uint8Array>(name, { codec: 'bytes' })
  const view = p.claim(64)
  t.ok(view !== null && view.length === 64)
  p.close()
  const q = closeAtEnd(t, FanInProducer.open<Uint8Array>(name, { codec: 'bytes' }))
  q.trySend(Buffer.from('after'))
  t.equal(Buffer.from(consumer.receiveSync({ timeout: 5000 })).toString(), 'after')
  t.equal(consumer.skipped, 1, 'a claim given up at close is not a skip')
})

t.test('claim/commit in one process: in place, shorter commits, discards and wrap-around keep every message intact and in order', async (t) => {
  const name = freshName(t)
  const prng = new Prng(0x1515)
  const capacity = 4096
  const consumer = closeAtEnd(t, FanInConsumer.open<Uint8Array>(name, { codec: 'bytes', capacity }))
  const producers = [closeAtEnd(t, FanInProducer.open<Uint8Array>(name, { codec: 'bytes' })), closeAtEnd(t, FanInProducer.open<Uint8Array>(name, { codec: 'bytes' }))]
  const max = capacity / 4 - 8
  t.throws(() => producers[0].claim(max + 1), { code: 'ERR_MESSAGE_TOO_LARGE' }, 'one record at most')
  t.throws(() => { producers[0].commit() }, { code: 'ERR_BUSY' }, 'commit without a claim')
  const first = producers[0].claim(10)
  t.ok(first !== null)
  t.throws(() => producers[0].trySend(Buffer.alloc(1)), { code: 'ERR_BUSY' }, 'no send while a claim is open')
  t.throws(() => producers[0].claim(1), { code: 'ERR_BUSY' }, 'one claim at a time')
  t.throws(() => { producers[0].commit(11) }, { code: 'ERR_OUT_OF_RANGE' }, 'no more than claimed')
  t.ok(producers[1].trySend(Buffer.from('behind')), 'another producer claims after it')
  t.equal(consumer.tryReceive(), undefined, 'the consumer waits at the open claim')
  first?.write('ahead')
  producers[0].commit(5)
  t.equal(Buffer.from(consumer.receiveSync({ timeout: 1000 })).toString(), 'ahead')
  t.equal(Buffer.from(consumer.receiveSync({ timeout: 1000 })).toString(), 'behind')

  const expected: Buffer[] = []
  let bad = 0
  for (let round = 0; round < 3000; round++) {
    const producer = producers[round & 1]
    const claimed = prng.int(max + 1)
    const view = producer.claim(claimed)
    if (view !== null) {
      const m = Buffer.alloc(prng.int(claimed + 1))
      for (let i = 0; i < m.length; i++) m[i] = prng.u32() & 0xff
      view.fill(0x77)
      view.set(m)
      if (prng.chance(0.2)) producer.discard()
      else {
        producer.commit(m.length)
        expected.push(m)
      }
    }
    if (expected.length > 0 && prng.chance(0.6)) {
      const got = consumer.tryReceive()
      if (got === undefined || !Buffer.from(got).equals(expected.shift() as Buffer)) bad++
    }
  }
  for (const m of expected) if (!Buffer.from(consumer.receiveSync({ timeout: 1000 })).equals(m)) bad++
  t.equal(bad, 0, `every message intact and in order (seed ${prng.seed})`)
  t.equal(consumer.tryReceive(), undefined, 'and no discarded claim')
  t.equal(consumer.skipped, 0)
})

t.test('readEach reads committed messages in place, in claim order, up to max; a throwing callback counts its message as read', async (t) => {
  const name = freshName(t)
  const consumer = closeAtEnd(t, FanInConsumer.open<Uint8Array>(name, { codec: 'bytes', capacity: 4096 }))
  const a = closeAtEnd(t, FanInProducer.open<Uint8Array>(name, { codec: 'bytes' }))
  const b = closeAtEnd(t, FanInProducer.open<Uint8Array>(name, { codec: 'bytes' }))
  const got: string[] = []
  const collect = (bytes: Buffer, start: number, end: number): void => { got.push(bytes.toString('utf8', start, end)) }
  t.equal(consumer.readEach(collect), 0, 'nothing committed')
  for (let i = 0; i < 6; i++) t.ok((i % 2 === 0 ? a : b).trySend(Buffer.from(`m${i}`)))
  const open = a.claim(8)
  t.ok(b.trySend(Buffer.from('after the claim')))
  t.equal(consumer.readEach(collect, 4), 4, 'at most max')
  t.equal(consumer.readEach(collect), 2, 'up to the open claim')
  t.same(got, ['m0', 'm1', 'm2', 'm3', 'm4', 'm5'])
  open?.write('claimed')
  a.commit(7)
  t.throws(() => consumer.readEach(() => { throw new Error('boom') }), /boom/)
  t.equal(consumer.readEach(collect), 1, 'the message after the one whose callback threw')
  t.same(got.slice(6), ['after the claim'])
  t.throws(() => consumer.readEach(null as unknown as () => void), { code: 'ERR_INVALID_ARG_TYPE' })
  // The ring goes round many times through readEach alone: the room read is handed back.
  let n = 0
  for (let i = 0; i < 2000; i++) {
    while (!a.trySend(Buffer.alloc(100, i & 0xff))) n += consumer.readEach(() => {})
  }
  n += consumer.readEach(() => {})
  t.equal(n, 2000, 'every message of a stream through a ring forty times smaller')
})

t.test('maxProducers is a hard limit: one more is refused with ERR_TOO_MANY_ENDS; a closed entry is reused', async (t) => {
  const name = freshName(t)
  const consumer = closeAtEnd(t, FanInConsumer.open(name, { maxProducers: 2 }))
  const a = FanInProducer.open(name)
  const b = closeAtEnd(t, FanInProducer.open(name))
  t.throws(() => FanInProducer.open(name), { code: 'ERR_TOO_MANY_ENDS' })
  t.throws(() => FanInConsumer.open(name), { code: 'ERR_END_TAKEN' }, 'one consumer')
  a.close()
  const c = closeAtEnd(t, FanInProducer.open(name))
  t.equal(c.index, a.index, 'the closed entry')
  await c.send({ from: 'c' })
  await b.send({ from: 'b' })
  t.same(await consumer.receive(), { from: 'c' })
  t.same(await consumer.receive(), { from: 'b' })
  t.throws(() => FanInProducer.open(name, { maxProducers: 0 }), { code: 'ERR_OUT_OF_RANGE' })
})

t.test('messages of every size wrap around a small ring intact (padding records), in one process', async (t) => {
  const name = freshName(t)
  const prng = new Prng(0x15)
  const consumer = closeAtEnd(t, FanInConsumer.open<Uint8Array>(name, { codec: 'bytes', capacity: 4096 }))
  const producers = [closeAtEnd(t, FanInProducer.open<Uint8Array>(name, { codec: 'bytes' })), closeAtEnd(t, FanInProducer.open<Uint8Array>(name, { codec: 'bytes' }))]
  t.throws(() => producers[0].trySend(Buffer.alloc(4096 / 4 - 7)), { code: 'ERR_MESSAGE_TOO_LARGE' })
  const expected: Buffer[] = []
  let bad = 0
  for (let round = 0; round < 3000; round++) {
    const m = Buffer.alloc(prng.int(4096 / 4 - 7))
    for (let i = 0; i < m.length; i++) m[i] = prng.u32() & 0xff
    if (producers[round & 1].trySend(m)) expected.push(m)
    if (expected.length > 0 && prng.chance(0.6)) {
      const got = consumer.tryReceive()
      if (got === undefined || !Buffer.from(got).equals(expected.shift() as Buffer)) bad++
    }
  }
  for (const m of expected) if (!Buffer.from(consumer.receiveSync({ timeout: 1000 })).equals(m)) bad++
  t.equal(bad, 0, `every message intact and in order (seed ${prng.seed})`)
})

t.test('close and death: sends fail with ERR_CHANNEL_CLOSED after the consumer closed, waits with ERR_PEER_DEAD after it died', async (t) => {
  const name = freshName(t)
  const consumer = FanInConsumer.open(name)
  const producer = closeAtEnd(t, FanInProducer.open(name))
  consumer.close()
  await t.rejects(producer.send(1), { code: 'ERR_CHANNEL_CLOSED' })
  t.throws(() => producer.trySend(1), { code: 'ERR_CHANNEL_CLOSED' })

  const other = freshName(t)
  const peer = new Peer(t, 'fanin-peer.ts')
  await peer.call('openConsumer', other)
  const p = closeAtEnd(t, FanInProducer.open<Uint8Array>(other, { codec: 'bytes', peerCheckInterval: 50 }))
  while (p.trySend(Buffer.alloc(1000))) { /* fill the ring */ }
  const rejected = t.rejects(p.send(Buffer.alloc(1000)), { code: 'ERR_PEER_DEAD' })
  await peer.kill()
  await rejected

  const consumer2 = FanInConsumer.open(freshName(t))
  const pending = consumer2.receive()
  consumer2.close()
  await t.rejects(pending, { code: 'ERR_CHANNEL_CLOSED' })
})

t.test('hostile and corrupt segments are refused with ERR_INVALID_SEGMENT, no crash, no hang', async (t) => {
  const name = freshName(t)
  const capacity = 4096
  const region = closeAtEnd(t, Region.create(name, L.segmentSize(capacity, 16)))
  const h = new Int32Array(region.buffer)
  h[1] = (L.VERSION_MAJOR << 16) | L.VERSION_MINOR
  h[2] = L.HEADER_SIZE
  h[word(L.CAPACITY_OFFSET)] = 5000
  h[word(L.MAX_PRODUCERS_OFFSET)] = 16
  Atomics.store(h, 0, L.MAGIC)
  t.throws(() => FanInConsumer.open(name), { code: 'ERR_INVALID_SEGMENT' }, 'capacity not a power of two')
  h[word(L.CAPACITY_OFFSET)] = 1 << 20
  t.throws(() => FanInProducer.open(name), { code: 'ERR_INVALID_SEGMENT' }, 'capacity past the end of the object')
  h[word(L.CAPACITY_OFFSET)] = capacity
  h[word(L.MAX_PRODUCERS_OFFSET)] = 100000
  t.throws(() => FanInConsumer.open(name), { code: 'ERR_INVALID_SEGMENT' }, 'max producers out of range')
  h[word(L.MAX_PRODUCERS_OFFSET)] = 16
  h[word(L.TAIL_OFFSET)] = 8192
  t.throws(() => FanInConsumer.open(name), { code: 'ERR_INVALID_SEGMENT' }, 'tail further ahead than the ring')
  h[word(L.TAIL_OFFSET)] = 64
  const consumer = closeAtEnd(t, FanInConsumer.open(name))
  // A committed record claiming more than the tail holds.
  h[L.ringOffset(16) >>> 2] = (L.COMMITTED | 1000) | 0
  h[(L.ringOffset(16) >>> 2) + 1] = L.TYPE_DATA
  t.throws(() => consumer.tryReceive(), { code: 'ERR_INVALID_SEGMENT' }, 'a record past the tail')
  h[(L.ringOffset(16) >>> 2) + 1] = 7
  h[L.ringOffset(16) >>> 2] = (L.COMMITTED | 8) | 0
  t.throws(() => consumer.tryReceive(), { code: 'ERR_INVALID_SEGMENT' }, 'an unknown record type')
  h[(L.ringOffset(16) >>> 2) + 1] = L.TYPE_DATA | (16 << L.PRODUCER_SHIFT)
  t.throws(() => consumer.tryReceive(), { code: 'ERR_INVALID_SEGMENT' }, 'a producer index past the table')
  // Padding whose length aligns to about -2^31 in 32-bit arithmetic would bring the head back to this record, forever.
  h[(L.ringOffset(16) >>> 2) + 1] = L.TYPE_PADDING
  h[L.ringOffset(16) >>> 2] = (L.COMMITTED | 0x7ffffff8) | 0
  t.throws(() => consumer.tryReceive(), { code: 'ERR_INVALID_SEGMENT' }, 'padding longer than the ring')
  h[(L.ringOffset(16) >>> 2) + 1] = L.TYPE_MIDDLE
  h[L.ringOffset(16) >>> 2] = (L.COMMITTED | 8) | 0
  t.throws(() => consumer.tryReceive(), { code: 'ERR_INVALID_SEGMENT' }, 'a fragment that continues no message')
})

leavesNothingInDevShm(t)
