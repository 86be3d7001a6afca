/**
 * Taking over an end, case by case (the random restart loops are
 * restart.consumer.test.ts and restart.producer.test.ts): a live end is
 * never taken; of newcomers racing for one dead end exactly one wins; a
 * claimant that died mid-claim does not wedge the end; a producer that died
 * half-way through a message in fragments leaves nothing torn; the survivor
 * chooses what the death means (onPeerDeath); fresh: true starts over.
 */
import t from 'tap'

import { Consumer, Producer, Region, createChannelBuffer } from '../../lib/index'
import * as L from '../../lib/channel/layout'
import { RingProducer } from '../../lib/channel/ring'
import { makeMessage } from '../support/channel-helpers'
import { ChannelPeer, rejection, thrown, within } from '../support/peers'
import { channelName, closeAtEnd, leavesNothingInDevShm, shmExists, unlinkIfPresent } from '../support/shm'

const KiB = 1024

/** Makes the `role` end of a channel in `buffer` read as held by a thread of this process that ended without closing it. */
function holdByDeadThread (buffer: SharedArrayBuffer, role: 'producer' | 'consumer'): void {
  const h = new Int32Array(buffer, 0, L.HEADER_SIZE / 4)
  const base = L.word(role === 'producer' ? L.PRODUCER_END_OFFSET : L.CONSUMER_END_OFFSET)
  h[base + L.word(L.END_PID)] = process.pid
  h[base + L.word(L.END_START_TIME) + 1] = L.END_THREAD_GONE | 0
  Atomics.store(h, base + L.word(L.END_STATE), L.END_OPEN)
}

/** The header words of the channel named `name`, through a mapping of our own. */
function headerOf (name: string): { h: Int32Array, close: () => void } {
  const region = Region.open(name)
  return { h: new Int32Array(region.buffer, 0, L.HEADER_SIZE / 4), close: () => { region.close() } }
}

t.test('a live end is never taken over', async (t) => {
  t.test('a second consumer gets ERR_END_TAKEN while the first lives, here or in another process, before and after a takeover', async (t) => {
    const name = channelName()
    const producer = closeAtEnd(t, Producer.open<string>(name, { codec: 'utf8' }))
    const first = new ChannelPeer(t)
    await first.call('openConsumer', name, { codec: 'utf8' })
    t.equal(thrown(() => Consumer.open(name)).code, 'ERR_END_TAKEN')
    await first.kill()
    const second = new ChannelPeer(t)
    t.match(await second.call('openConsumer', name, { codec: 'utf8' }), { capacity: producer.capacity, pid: second.pid, tookOver: true, redelivered: 0 }, 'a new process takes the dead one\'s end over')
    t.equal(thrown(() => Consumer.open(name)).code, 'ERR_END_TAKEN', 'the replacement is live: not taken from it')
    t.equal((await rejection(new ChannelPeer(t).call('openConsumer', name))).code, 'ERR_END_TAKEN', 'nor from another process')
    producer.close()
    await second.call('closeConsumer')
    t.notOk(shmExists(name))
  })
})

t.test('regression, the split brain of issue 12: a live producer and a restarted consumer end up on the same segment, and nothing unread is lost', async (t) => {
  const name = channelName()
  const seed = 12
  const producer = closeAtEnd(t, Producer.open<Uint8Array>(name, { codec: 'bytes', capacity: 64 * KiB }))
  const first = new ChannelPeer(t)
  await first.call('openConsumer', name, { codec: 'bytes' })
  let sent = 0
  const reading = first.call('receive', 1000) as Promise<Uint8Array[]>
  while (sent < 1000) {
    await producer.send(makeMessage(seed, sent, 256))
    sent++
  }
  t.equal((await reading).length, 1000, 'the first consumer read 1000, then stalls')
  while (producer.trySend(makeMessage(seed, sent, 256))) sent++
  const pending = rejection(producer.send(makeMessage(seed, sent, 256)))
  await first.kill()
  t.equal((await within(10_000, pending, 'the pending send')).code, 'ERR_PEER_DEAD', 'the pending send learns of the death (onPeerDeath \'error\')')
  const second = new ChannelPeer(t)
  const opened = await second.call('openConsumer', name, { codec: 'bytes' }) as { tookOver: boolean, redelivered: number }
  t.ok(opened.tookOver, 'the new consumer took over the same segment, not a fresh one')
  const expected = opened.redelivered + (sent - 1000)
  const got = await second.call('receive', expected) as Uint8Array[]
  const seqs = got.map((m) => Buffer.from(m).readUInt32LE(0))
  t.same(seqs, Array.from({ length: expected }, (_, i) => 1000 - opened.redelivered + i), `every unread message (${sent - 1000}), after ${opened.redelivered} redelivered`)
  t.ok(producer.trySend(makeMessage(seed, sent, 256)), 'the live producer\'s trySend reaches the new consumer')
  const [next] = await second.call('receive', 1) as Uint8Array[]
  t.equal(Buffer.from(next).readUInt32LE(0), sent)
  t.comment(`split brain regression: ${sent - 1000} messages unread at the kill, ${opened.redelivered} redelivered, 0 lost`)
  producer.close()
  await second.call('closeConsumer')
  t.notOk(shmExists(name))
})

t.test('newcomers racing for one dead end: exactly one wins, the others get ERR_END_TAKEN', async (t) => {
  const name = channelName()
  const producer = closeAtEnd(t, Producer.open<string>(name, { codec: 'utf8' }))
  const dead = new ChannelPeer(t)
  await dead.call('openConsumer', name, { codec: 'utf8' })
  await dead.kill()
  const racers = Array.from({ length: 4 }, () => new ChannelPeer(t))
  await Promise.all(racers.map(async (r) => await r.call('closeConsumer').catch(() => {}))) // started and listening
  const outcomes = await Promise.all(racers.map(async (r) => await r.call('openConsumer', name, { codec: 'utf8' }).then(() => 'won', (err: { code?: string }) => err.code)))
  t.same(outcomes.filter((o) => o === 'won').length, 1, `one winner: ${outcomes.join(', ')}`)
  t.same(outcomes.filter((o) => o !== 'won'), ['ERR_END_TAKEN', 'ERR_END_TAKEN', 'ERR_END_TAKEN'])
  const { h, close } = headerOf(name)
  t.equal(Atomics.load(h, L.word(L.CONSUMER_TAKEOVERS_OFFSET)), 1 << 1, 'one takeover, no claim left under way')
  close()
  producer.trySend('to the winner')
  const winner = racers[outcomes.indexOf('won')]
  t.same(await winner.call('receive', 1), ['to the winner'])
  producer.close()
  await winner.call('closeConsumer')
  t.notOk(shmExists(name))
})

t.test('a claimant that died mid-claim does not wedge the end: after the claim timeout the next newcomer takes it', async (t) => {
  const name = channelName()
  const producer = closeAtEnd(t, Producer.open<string>(name, { codec: 'utf8' }))
  const dead = new ChannelPeer(t)
  await dead.call('openConsumer', name, { codec: 'utf8' })
  const claimant = new ChannelPeer(t)
  const claimantPid = claimant.pid
  await dead.kill()
  await claimant.kill()
  // What a claimant leaves when it dies between its compare-and-swap and its OPEN: the claiming bit, state CLAIMING, its pid.
  const { h, close } = headerOf(name)
  const base = L.word(L.CONSUMER_END_OFFSET)
  Atomics.store(h, L.word(L.CONSUMER_TAKEOVERS_OFFSET), (1 << 1) | 1)
  Atomics.store(h, base + L.word(L.END_STATE), L.END_CLAIMING)
  Atomics.store(h, base + L.word(L.END_PID), claimantPid)
  const consumer = closeAtEnd(t, Consumer.open<string>(name, { codec: 'utf8' }))
  t.ok(consumer.tookOver)
  t.equal(Atomics.load(h, L.word(L.CONSUMER_TAKEOVERS_OFFSET)), 2 << 1, 'the second takeover, finished')
  close()
  producer.trySend('through')
  t.equal(consumer.tryReceive(), 'through')
  producer.close()
  consumer.close()
  t.notOk(shmExists(name))
})

t.test('a producer that died half-way through a message in fragments: the consumer drops the part it holds and delivers the new producer\'s messages whole', async (t) => {
  const buffer = createChannelBuffer(16 * KiB)
  const consumer = Consumer.fromBuffer<Uint8Array>(buffer, { codec: 'bytes' })
  // The dead producer: a ring writer alone, as a killed process leaves it.
  const dead = new RingProducer(buffer)
  holdByDeadThread(buffer, 'producer')
  const big = Buffer.alloc(40 * KiB, 7)
  const offset = dead.writeFragments(big, 0)
  dead.publish()
  t.ok(offset > 0 && offset < big.length, `it wrote ${offset} of ${big.length} bytes`)
  t.equal(consumer.tryReceive(), undefined, 'the consumer holds part of the message')
  const producer = Producer.fromBuffer<Uint8Array>(buffer, { codec: 'bytes' })
  t.ok(producer.tookOver)
  const whole = Buffer.alloc(6 * KiB, 9)
  t.ok(producer.trySend(Buffer.from('small')))
  t.ok(producer.trySend(whole), 'a message in fragments too')
  t.same(consumer.tryReceive(), Buffer.from('small'), 'the new producer\'s first message, nothing of the torn one')
  t.same(consumer.tryReceive(), whole)
  t.equal(consumer.tryReceive(), undefined)
  producer.close()
  consumer.close()
})

t.test('a consumer taking over while the dead one was reassembling: it skips the rest of that message, then goes on', async (t) => {
  const buffer = createChannelBuffer(16 * KiB)
  const producer = Producer.fromBuffer<Uint8Array>(buffer, { codec: 'bytes' })
  const dead = Consumer.fromBuffer<Uint8Array>(buffer, { codec: 'bytes' })
  const big = Buffer.alloc(40 * KiB, 3)
  const sending = producer.send(big)
  t.equal(dead.tryReceive(), undefined, 'the dead consumer read the first fragments (and released them)')
  holdByDeadThread(buffer, 'consumer')
  const consumer = Consumer.fromBuffer<Uint8Array>(buffer, { codec: 'bytes' })
  t.ok(consumer.tookOver)
  const after = Buffer.from('after')
  for (;;) {
    const got = consumer.tryReceive()
    if (got !== undefined) {
      t.same(got, after, 'the next whole message; the cut one is not delivered torn')
      break
    }
    await new Promise((resolve) => setImmediate(resolve))
    producer.trySend(after)
  }
  await sending
  producer.close()
  consumer.close()
})

t.test('the survivor chooses what its peer\'s death means', async (t) => {
  t.test('\'error\' (default): trySend throws ERR_PEER_DEAD once the death is known, and works again once a replacement takes over', async (t) => {
    const name = channelName()
    const producer = closeAtEnd(t, Producer.open<string>(name, { codec: 'utf8', peerCheckInterval: 20 }))
    const dead = new ChannelPeer(t)
    await dead.call('openConsumer', name, { codec: 'utf8' })
    await dead.kill()
    let accepted = 0
    const err = await within(5000, (async () => {
      for (;;) {
        try {
          producer.trySend(`after the death ${accepted}`)
          accepted++
        } catch (err) {
          return err as { code?: string }
        }
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    })(), 'trySend to notice')
    t.equal(err.code, 'ERR_PEER_DEAD', `after ${accepted} accepted within the check interval`)
    const replacement = new ChannelPeer(t)
    await replacement.call('openConsumer', name, { codec: 'utf8' })
    t.ok(producer.trySend('to the replacement'))
    const got = await replacement.call('receive', accepted + 1) as string[]
    t.equal(got.at(-1), 'to the replacement', 'it reads what was accepted, then the new message')
    producer.close()
    await replacement.call('closeConsumer')
    t.notOk(shmExists(name))
  })

  t.test('\'wait\': a receive waiting when the producer dies goes on waiting, and gets the replacement\'s message', async (t) => {
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<string>(name, { codec: 'utf8', onPeerDeath: 'wait', peerCheckInterval: 20 }))
    const dead = new ChannelPeer(t)
    await dead.call('openProducer', name, { codec: 'utf8' })
    const receiving = consumer.receive()
    await dead.kill()
    const replacement = new ChannelPeer(t)
    const opened = await replacement.call('openProducer', name, { codec: 'utf8' }) as { capacity: number }
    t.equal(opened.capacity, consumer.capacity, 'the same channel')
    await replacement.call('send', ['from the replacement'])
    t.equal(await within(10_000, receiving, 'the waiting receive'), 'from the replacement')
    await replacement.call('closeProducer')
    consumer.close()
    t.notOk(shmExists(name))
  })

  t.test('\'wait\' with peerDeathTimeout: ERR_PEER_DEAD when no replacement comes in time', async (t) => {
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<string>(name, { codec: 'utf8', onPeerDeath: 'wait', peerDeathTimeout: 200, peerCheckInterval: 20 }))
    const dead = new ChannelPeer(t)
    await dead.call('openProducer', name, { codec: 'utf8' })
    await dead.kill()
    t.equal((await within(10_000, rejection(consumer.receive()), 'receive')).code, 'ERR_PEER_DEAD')
    consumer.close()
    t.notOk(shmExists(name))
  })

  t.test('bad values are refused by name', async (t) => {
    t.equal(thrown(() => Consumer.open(channelName(), { onPeerDeath: 'retry' as 'wait' })).code, 'ERR_INVALID_ARG_VALUE')
    t.equal(thrown(() => Producer.open(channelName(), { peerDeathTimeout: -1 })).code, 'ERR_OUT_OF_RANGE')
  })
})

t.test('fresh: true removes what is under the name and starts an empty channel', async (t) => {
  const name = channelName()
  const dead = new ChannelPeer(t)
  await dead.call('openProducer', name, { codec: 'utf8', capacity: 8192 })
  await dead.call('send', ['unread'])
  await dead.kill()
  const consumer = closeAtEnd(t, Consumer.open<string>(name, { codec: 'utf8', capacity: 16384, fresh: true }))
  t.notOk(consumer.tookOver)
  t.equal(consumer.capacity, 16384)
  t.equal(consumer.tryReceive(), undefined, 'nothing of the old channel')
  consumer.close()
  unlinkIfPresent(name)
})

leavesNothingInDevShm(t)
