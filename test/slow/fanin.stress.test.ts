/**
 * Slow tier: 4 producer processes x 1,000,000 messages into one fan-in
 * consumer, and producers SIGKILLed between claim and commit again and
 * again (10 times) while another sends (test/fixtures/fanin-peer.ts).
 */
import t, { type Test } from 'tap'

import { FanInConsumer } from '../../lib/index'
import { Peer } from '../support/peers'
import { channelName, closeAtEnd, leavesNothingInDevShm, unlinkIfPresent } from '../support/shm'

function freshName (t: Test): string {
  const name = channelName()
  t.teardown(() => { unlinkIfPresent(name) })
  return name
}

t.test('4 producer processes x 1,000,000 messages: every message once, each producer\'s in order', async (t) => {
  const name = freshName(t)
  const PRODUCERS = 4
  const COUNT = 1_000_000
  const consumer = closeAtEnd(t, FanInConsumer.open<Uint8Array>(name, { codec: 'bytes', capacity: 1 << 20 }))
  const peers = Array.from({ length: PRODUCERS }, () => new Peer(t, 'fanin-peer.ts'))
  await Promise.all(peers.map(async (peer) => await peer.call('openProducer', name)))
  const sent = peers.map(async (peer, id) => await peer.call('sendMany', id, 0, COUNT))
  const next = new Array<number>(PRODUCERS).fill(0)
  let wrong = 0
  for (let n = 0; n < PRODUCERS * COUNT; n++) {
    const m = consumer.tryReceive() ?? await consumer.receive({ timeout: 60_000 })
    const b = Buffer.from(m)
    const id = b.readUInt32LE(0)
    const seq = b.readUInt32LE(4)
    if (b.length !== 16 || b.readUInt32LE(8) !== ((id + seq) >>> 0) || id >= PRODUCERS || seq !== next[id]) wrong++
    else next[id]++
  }
  t.equal(wrong, 0, 'no message torn, out of its producer\'s order, duplicated or from nowhere')
  t.same(next, new Array(PRODUCERS).fill(COUNT))
  t.same(await Promise.all(sent), new Array(PRODUCERS).fill(COUNT))
  t.equal(consumer.skipped, 0)
})

t.test('10 producers SIGKILLed between claim and commit while another sends: each claim skipped once, nothing else lost', async (t) => {
  const name = freshName(t)
  const consumer = closeAtEnd(t, FanInConsumer.open<Uint8Array>(name, { codec: 'bytes', capacity: 1 << 14, peerCheckInterval: 50, maxProducers: 4 }))
  const writer = new Peer(t, 'fanin-peer.ts')
  await writer.call('openProducer', name)
  let expected = 0
  let wrong = 0
  for (let round = 0; round < 10; round++) {
    const hanging = new Peer(t, 'fanin-peer.ts')
    hanging.call('claimAndHang', name, 8 + round * 13).catch(() => {})
    await hanging.event('claimed')
    const sending = writer.call('sendMany', 1, expected, 2000)
    await hanging.kill()
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.from(await consumer.receive({ timeout: 10_000 }))
      if (b.readUInt32LE(4) !== expected) wrong++
      expected++
    }
    await sending
  }
  t.equal(wrong, 0, 'the writer\'s messages all arrive, in order')
  t.equal(consumer.skipped, 10, 'one skip per killed claimant')
})

leavesNothingInDevShm(t)
