/**
 * Processes that die without closing: SIGKILL a forked end (idle, blocked,
 * or in the middle of writing) and check what the survivor sees. Everything
 * published before the death is delivered whole and in order, then the
 * survivor's wait fails with ERR_PEER_DEAD within a bounded time (the
 * default peerCheckInterval is 250 ms; 5 s is the generous bound). A
 * crashed end is taken over by the next open of its role while its peer
 * lives or messages remain unread; a live one never is. (The restart loops
 * are test/channel/restart*.test.ts.)
 */
import t from 'tap'

import { Consumer, Producer, Region } from '../../lib/index'
import { StreamVerifier, makeMessage, perfectReport, type StreamSpec } from '../support/channel-helpers'
import { ChannelPeer, rejection, thrown, within } from '../support/peers'
import { channelName, closeAtEnd, leavesNothingInDevShm, shmExists, untilParked, unlinkIfPresent } from '../support/shm'
import { Prng } from '../support/prng'

const KiB = 1024
/** How long a survivor may take to notice a dead peer. */
const DETECTION_BOUND = 5000

/** Milliseconds from `since` until `promise` rejects, and the error. */
async function rejectionAfter (since: () => number, promise: Promise<unknown>): Promise<{ code?: string, ms: number }> {
  const err = await within(30_000, rejection(promise), 'the survivor\'s call')
  return { code: err.code, ms: performance.now() - since() }
}

t.test('the producer dies: the consumer gets what was sent, then ERR_PEER_DEAD', async (t) => {
  t.test('messages sent before the SIGKILL are all delivered, then receive rejects with ERR_PEER_DEAD', async (t) => {
    const peer = new ChannelPeer(t)
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<{ seq: number }>(name))
    await peer.call('openProducer', name)
    const K = 1000
    const sent = Array.from({ length: K }, (_, seq) => ({ seq }))
    t.equal(await peer.call('send', sent), K, 'the producer reports it sent them')
    t.same(await peer.kill(), { code: null, signal: 'SIGKILL' })
    const killedAt = performance.now()
    const received: Array<{ seq: number }> = []
    let outcome: { code?: string, ms: number } | undefined
    for (;;) {
      try {
        received.push(await within(30_000, consumer.receive(), 'receive'))
      } catch (err) {
        outcome = { code: (err as { code?: string }).code, ms: performance.now() - killedAt }
        break
      }
    }
    t.same(received, sent, 'every message, in order')
    t.equal(outcome.code, 'ERR_PEER_DEAD')
    t.ok(outcome.ms < DETECTION_BOUND, `noticed ${Math.round(outcome.ms)} ms after the kill`)
    consumer.close()
    t.notOk(shmExists(name), 'the consumer, last out, removed the name')
  })

  t.test('a receive already waiting when the producer is SIGKILLed rejects with ERR_PEER_DEAD', async (t) => {
    const peer = new ChannelPeer(t)
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<string>(name, { codec: 'utf8' }))
    await peer.call('openProducer', name, { codec: 'utf8' })
    await peer.call('send', ['last words'])
    t.equal(await consumer.receive(), 'last words')
    let killedAt = 0
    const waiting = rejectionAfter(() => killedAt, consumer.receive())
    await untilParked(name, 'consumer')
    killedAt = performance.now()
    await peer.kill()
    const { code, ms } = await waiting
    t.equal(code, 'ERR_PEER_DEAD')
    t.ok(ms < DETECTION_BOUND, `noticed ${Math.round(ms)} ms after the kill`)
  })

  t.test('a consumer blocked in receiveSync in another process throws ERR_PEER_DEAD when its producer is SIGKILLed', async (t) => {
    const producer = new ChannelPeer(t)
    const consumer = new ChannelPeer(t)
    const name = channelName()
    await consumer.call('openConsumer', name)
    await producer.call('openProducer', name)
    await producer.call('send', ['one', 'two'])
    let killedAt = 0
    const blocked = rejectionAfter(() => killedAt, consumer.call('receiveSync', 3, { timeout: 30_000 }))
    await untilParked(name, 'consumer')
    killedAt = performance.now()
    await producer.kill()
    const { code, ms } = await blocked
    t.equal(code, 'ERR_PEER_DEAD')
    t.ok(ms < DETECTION_BOUND, `noticed ${Math.round(ms)} ms after the kill`)
    await consumer.call('closeConsumer')
    t.notOk(shmExists(name))
  })
})

t.test('a dead peer is noticed under every wait strategy', async (t) => {
  for (const wait of ['spin', 'block', 'adaptive'] as const) {
    t.test(`'${wait}': a waiting receive here, and a send blocked here on a full ring`, async (t) => {
      const producerPeer = new ChannelPeer(t)
      const consumerPeer = new ChannelPeer(t)
      const toHere = channelName()
      const fromHere = channelName()
      const consumer = closeAtEnd(t, Consumer.open(toHere, { wait }))
      await producerPeer.call('openProducer', toHere)
      const producer = closeAtEnd(t, Producer.open<string>(fromHere, { wait, capacity: 4096, codec: 'utf8' }))
      await consumerPeer.call('openConsumer', fromHere, { codec: 'utf8' })
      while (producer.trySend('fill')) ;
      let killedAt = 0
      const receiving = rejectionAfter(() => killedAt, consumer.receive())
      const sending = rejectionAfter(() => killedAt, producer.send('fill'))
      if (wait !== 'spin') {
        // A spinning end raises no flag: its wait began within the call above.
        await untilParked(toHere, 'consumer')
        await untilParked(fromHere, 'producer')
      }
      killedAt = performance.now()
      await Promise.all([producerPeer.kill(), consumerPeer.kill()])
      for (const [what, outcome] of [['receive', await receiving], ['send', await sending]] as const) {
        t.equal(outcome.code, 'ERR_PEER_DEAD', what)
        t.ok(outcome.ms < DETECTION_BOUND, `${what}: noticed ${Math.round(outcome.ms)} ms after the kill`)
      }
      consumer.close()
      producer.close()
      t.notOk(shmExists(toHere), 'the consumer, last out, removed its name')
      t.ok(shmExists(fromHere), 'the producer leaves its name to a replacement consumer: messages remain unread')
      const replacement = Consumer.open<string>(fromHere, { codec: 'utf8' })
      t.ok(replacement.tookOver)
      t.equal(replacement.tryReceive(), 'fill')
      replacement.close()
      t.notOk(shmExists(fromHere), 'the replacement, last out, removed it')
    })
  }
})

t.test('a survivor polling with timeouts shorter than the peer check still learns of the death', async (t) => {
  /** Calls `attempt` until it fails with something other than ERR_TIMEOUT; that code, and how long after the kill. */
  /** Calls `attempt` until it fails with something other than ERR_TIMEOUT; that code, and how long after the kill. `timedOut` resolves at the first ERR_TIMEOUT. */
  function pollUntilNotTimeout (killedAt: () => number, attempt: () => Promise<unknown>): { outcome: Promise<{ code?: string, ms: number }>, timedOut: Promise<void> } {
    let firstTimeout = (): void => {}
    const timedOut = new Promise<void>((resolve) => { firstTimeout = resolve })
    return { outcome: poll(), timedOut }
    async function poll (): Promise<{ code?: string, ms: number }> {
      for (;;) {
        try {
          await attempt()
        } catch (err) {
          const code = (err as { code?: string }).code
          if (code === 'ERR_TIMEOUT') firstTimeout()
          if (code !== 'ERR_TIMEOUT' || (killedAt() > 0 && performance.now() - killedAt() > 10_000)) return { code, ms: performance.now() - killedAt() }
        }
        await new Promise((resolve) => setImmediate(resolve)) // a blocking attempt leaves the loop no other turn
      }
    }
  }

  t.test('receive({ timeout: 100 }) and receiveSync({ timeout: 50 }) in a loop end with ERR_PEER_DEAD, not ERR_TIMEOUT forever', async (t) => {
    for (const how of ['receive', 'receiveSync'] as const) {
      const peer = new ChannelPeer(t)
      const name = channelName()
      const consumer = closeAtEnd(t, Consumer.open(name))
      await peer.call('openProducer', name)
      let killedAt = 0
      const polling = pollUntilNotTimeout(() => killedAt, how === 'receive'
        ? async () => await consumer.receive({ timeout: 100 })
        : async () => consumer.receiveSync({ timeout: 50 }))
      await polling.timedOut // polling for real: one attempt has run out its timeout
      killedAt = performance.now()
      await peer.kill()
      const { code, ms } = await polling.outcome
      t.equal(code, 'ERR_PEER_DEAD', how)
      t.ok(ms < DETECTION_BOUND, `${how}: noticed ${Math.round(ms)} ms after the kill`)
      consumer.close()
    }
  })

  t.test('send({ timeout: 100 }) on a full ring in a loop ends with ERR_PEER_DEAD once the consumer is gone', async (t) => {
    const peer = new ChannelPeer(t)
    const name = channelName()
    const producer = closeAtEnd(t, Producer.open<string>(name, { capacity: 4096, codec: 'utf8' }))
    await peer.call('openConsumer', name, { codec: 'utf8' })
    while (producer.trySend('fill')) ;
    let killedAt = 0
    const polling = pollUntilNotTimeout(() => killedAt, async () => { await producer.send('fill', { timeout: 100 }) })
    await polling.timedOut // polling for real: one attempt has run out its timeout
    killedAt = performance.now()
    await peer.kill()
    const { code, ms } = await polling.outcome
    t.equal(code, 'ERR_PEER_DEAD')
    t.ok(ms < DETECTION_BOUND, `noticed ${Math.round(ms)} ms after the kill`)
    producer.close()
    t.ok(shmExists(name), 'the producer leaves the name to a replacement consumer: messages remain unread')
    unlinkIfPresent(name)
  })
})

t.test('the producer dies in the middle of writing: the survivor never sees a torn message', async (t) => {
  t.test('killed with a fragmented message partly in the ring: what came before is delivered, then ERR_PEER_DEAD', async (t) => {
    const peer = new ChannelPeer(t)
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<Uint8Array>(name, { capacity: 64 * KiB, codec: 'bytes' }))
    await peer.call('openProducer', name, { codec: 'bytes' })
    const before = [makeMessage(9, 0, 100), makeMessage(9, 1, 20 * KiB), makeMessage(9, 2, 8)]
    t.same(await peer.call('sendThenStall', before, makeMessage(9, 3, 1024 * KiB)), { stalled: true }, 'the large send waits for room')
    await peer.kill()
    const verifier = new StreamVerifier(9)
    let code: string | undefined
    for (;;) {
      try {
        verifier.check(await within(30_000, consumer.receive(), 'receive'))
      } catch (err) {
        code = (err as { code?: string }).code
        break
      }
    }
    t.same(verifier.report, perfectReport(3, 100 + 20 * KiB + 8), 'the three whole messages, and nothing of the fourth')
    t.equal(code, 'ERR_PEER_DEAD')
  })

  t.test('killed at random moments of a stream of mixed sizes: every message received is whole and in sequence', async (t) => {
    const random = new Prng(0xdead)
    for (let round = 0; round < 4; round++) {
      const peer = new ChannelPeer(t)
      const name = channelName()
      const consumer = closeAtEnd(t, Consumer.open<Uint8Array>(name, { capacity: 64 * KiB, codec: 'bytes' }))
      await peer.call('openProducer', name, { codec: 'bytes' })
      // Mostly small messages; one in 16 up to 48 KiB, fragmented in this ring.
      const spec: StreamSpec = { seed: 1000 + round, count: 1e9, sizes: { min: 8, max: 512, rareEvery: 16, rareMax: 48 * KiB } }
      void peer.call('produceStream', spec).catch(() => {})
      const killAfter = 2000 + random.int(20_000)
      const verifier = new StreamVerifier(spec.seed, spec.sizes)
      let error: Error & { code?: string } = new Error('none')
      for (;;) {
        if (verifier.next === killAfter) await peer.kill()
        try {
          verifier.check(await within(30_000, consumer.receive(), 'receive'))
        } catch (err) {
          error = err as Error & { code?: string }
          break
        }
      }
      const report = verifier.report
      t.ok(report.received >= killAfter, `round ${round}: killed after ${killAfter} messages, ${report.received} received in all`)
      t.same(report, perfectReport(report.received, report.bytes), `round ${round}: none lost, duplicated, reordered or torn`)
      t.equal(error.code, 'ERR_PEER_DEAD', error.message)
      consumer.close()
    }
  })
})

t.test('the consumer dies: a producer waiting for room gets ERR_PEER_DEAD', async (t) => {
  t.test('send waiting on a full ring here rejects with ERR_PEER_DEAD when the consumer is SIGKILLed, and so do sends queued behind it', async (t) => {
    const peer = new ChannelPeer(t)
    const name = channelName()
    const producer = closeAtEnd(t, Producer.open<string>(name, { capacity: 4096, codec: 'utf8' }))
    await peer.call('openConsumer', name, { codec: 'utf8' })
    while (producer.trySend('fill')) ;
    let killedAt = 0
    const waiting = [producer.send('waits'), producer.send('queued')].map((p) => rejectionAfter(() => killedAt, p))
    await untilParked(name, 'producer')
    killedAt = performance.now()
    await peer.kill()
    const outcomes = await Promise.all(waiting)
    t.same(outcomes.map((o) => o.code), ['ERR_PEER_DEAD', 'ERR_PEER_DEAD'])
    t.ok(outcomes[0].ms < DETECTION_BOUND, `noticed ${Math.round(outcomes[0].ms)} ms after the kill`)
    producer.close()
    t.ok(shmExists(name), 'the producer leaves the name to a replacement consumer: messages remain unread')
    unlinkIfPresent(name)
  })

  t.test('sendSync in another process throws ERR_PEER_DEAD: blocked when the consumer is killed, or called after', async (t) => {
    const producer = new ChannelPeer(t)
    const name = channelName()
    const consumer = new ChannelPeer(t)
    await consumer.call('openConsumer', name, { capacity: 4096 })
    await producer.call('openProducer', name)
    let killedAt = 0
    const blocked = rejectionAfter(() => killedAt, producer.call('fillThenSend', 'fill', 'sendSync'))
    t.ok(await producer.event<number>('full') > 0)
    await untilParked(name, 'producer')
    killedAt = performance.now()
    await consumer.kill()
    const { code, ms } = await blocked
    t.equal(code, 'ERR_PEER_DEAD')
    t.ok(ms < DETECTION_BOUND, `noticed ${Math.round(ms)} ms after the kill`)
    t.equal((await rejection(producer.call('sendSync', ['still full']))).code, 'ERR_PEER_DEAD', 'a later sendSync on the full ring')
    await producer.call('closeProducer')
    t.ok(shmExists(name), 'left to a replacement consumer: messages remain unread')
    unlinkIfPresent(name)
  })
})

t.test('restarting after a crash: the new end takes over the same channel', async (t) => {
  t.test('a new producer process opens the name of a SIGKILLed one while the consumer is open: the consumer sees one stream, old messages then new', async (t) => {
    const oldProducer = new ChannelPeer(t)
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<string>(name, { codec: 'utf8' }))
    await oldProducer.call('openProducer', name, { codec: 'utf8' })
    await oldProducer.call('send', ['old 1', 'old 2', 'old unread'])
    t.equal(await consumer.receive(), 'old 1')
    await oldProducer.kill()

    const newProducer = new ChannelPeer(t)
    await newProducer.call('openProducer', name, { codec: 'utf8' })
    await newProducer.call('send', ['new 1', 'new 2'])
    const got: string[] = []
    for (let i = 0; i < 4; i++) got.push(await consumer.receive())
    t.same(got, ['old 2', 'old unread', 'new 1', 'new 2'], 'nothing lost, nothing repeated')
    t.equal(thrown(() => Consumer.open(name)).code, 'ERR_END_TAKEN', 'the live consumer keeps its end')

    await newProducer.call('closeProducer')
    t.equal((await rejection(consumer.receive())).code, 'ERR_CHANNEL_CLOSED', 'the new producer\'s close ends the stream')
    consumer.close()
    t.notOk(shmExists(name))
  })

  t.test('a name left behind by a SIGKILLed producer with no consumer is taken over by Producer.open: a new consumer gets the old messages, then the new', async (t) => {
    const crashed = new ChannelPeer(t)
    const name = channelName()
    await crashed.call('openProducer', name, { codec: 'utf8', capacity: 8192 })
    await crashed.call('send', ['unread 1', 'unread 2'])
    await crashed.kill()
    t.ok(shmExists(name), 'a crash leaves the name behind')

    const producer = closeAtEnd(t, Producer.open<string>(name, { codec: 'utf8', capacity: 16384 }))
    t.equal(producer.capacity, 8192, 'the same channel, with its creator\'s capacity')
    const consumer = new ChannelPeer(t)
    await consumer.call('openConsumer', name, { codec: 'utf8' })
    await producer.send('fresh')
    t.same(await consumer.call('receive', 3), ['unread 1', 'unread 2', 'fresh'])
    t.equal(await consumer.call('tryReceive'), undefined)
    producer.close()
    await consumer.call('closeConsumer')
    t.notOk(shmExists(name))
  })

  t.test('a name left behind when both ends were SIGKILLed with a message unread is taken over by Consumer.open: the message is not lost', async (t) => {
    const a = new ChannelPeer(t)
    const b = new ChannelPeer(t)
    const name = channelName()
    await a.call('openProducer', name, { codec: 'utf8' })
    await b.call('openConsumer', name, { codec: 'utf8' })
    await a.call('send', ['unread'])
    await a.kill()
    await b.kill()
    t.ok(shmExists(name))
    const consumer = closeAtEnd(t, Consumer.open<string>(name, { codec: 'utf8' }))
    t.ok(consumer.tookOver)
    t.equal(consumer.tryReceive(), 'unread')
    const producer = new ChannelPeer(t)
    await producer.call('openProducer', name, { codec: 'utf8' })
    await producer.call('send', ['after'])
    t.equal(await consumer.receive(), 'after')
    await producer.call('closeProducer')
    consumer.close()
    t.notOk(shmExists(name))
  })

  t.test('a name left behind when both ends were SIGKILLed with nothing unread is reclaimed: a fresh channel', async (t) => {
    const a = new ChannelPeer(t)
    const b = new ChannelPeer(t)
    const name = channelName()
    await a.call('openProducer', name, { codec: 'utf8', capacity: 8192 })
    await b.call('openConsumer', name, { codec: 'utf8' })
    await a.call('send', ['read'])
    t.same(await b.call('receive', 1), ['read'])
    t.equal(await b.call('tryReceive'), undefined, 'the ring runs dry: everything read is released')
    await a.kill()
    await b.kill()
    const consumer = closeAtEnd(t, Consumer.open<string>(name, { codec: 'utf8', capacity: 16384 }))
    t.notOk(consumer.tookOver)
    t.equal(consumer.capacity, 16384, 'a fresh channel, with this creator\'s capacity')
    consumer.close()
    t.ok(shmExists(name), 'left for a producer that may still come')
    unlinkIfPresent(name)
  })

  t.test('a consumer that opens after its producer was SIGKILLed still drains what was published, then gets ERR_PEER_DEAD', async (t) => {
    const crashed = new ChannelPeer(t)
    const name = channelName()
    await crashed.call('openProducer', name, { codec: 'utf8' })
    await crashed.call('send', ['published 1', 'published 2'])
    await crashed.kill()
    const consumer = closeAtEnd(t, Consumer.open<string>(name, { codec: 'utf8' }))
    t.equal(await consumer.receive(), 'published 1')
    t.equal(await consumer.receive(), 'published 2')
    t.equal((await rejection(consumer.receive())).code, 'ERR_PEER_DEAD')
    consumer.close()
    t.notOk(shmExists(name), 'the consumer, last out, removed the name')
  })

  t.test('a new consumer opening the name of a SIGKILLed consumer takes over its end: the live producer carries on into the same ring (no split brain)', async (t) => {
    const name = channelName()
    const producer = closeAtEnd(t, Producer.open<string>(name, { codec: 'utf8', capacity: 4096 }))
    const dead = new ChannelPeer(t)
    await dead.call('openConsumer', name, { codec: 'utf8' })
    await producer.send('read by the dead consumer')
    t.same(await dead.call('receive', 1), ['read by the dead consumer'])
    await dead.kill()

    const restarted = new ChannelPeer(t)
    const opened = await restarted.call('openConsumer', name, { codec: 'utf8' }) as { tookOver: boolean, redelivered: number }
    t.same(opened, { ...opened, tookOver: true, redelivered: 1 }, 'read, never released: delivered again')
    const sent = ['after the restart 1', 'after the restart 2']
    for (const value of sent) t.ok(producer.trySend(value), 'trySend into the ring the new consumer reads')
    t.same(await restarted.call('receive', 3), ['read by the dead consumer', ...sent])
    t.equal(await restarted.call('tryReceive'), undefined)
    producer.close()
    await restarted.call('closeConsumer')
    t.notOk(shmExists(name))
  })
})

t.test('a creator that dies before finishing the header', async (t) => {
  t.test('leaves a name the next open reclaims once openTimeout has passed', async (t) => {
    const name = channelName()
    // What a creator SIGKILLed between making the name and writing the header leaves: a sized, zeroed object.
    Region.create(name, 8192).close()
    const start = performance.now()
    const producer = closeAtEnd(t, Producer.open<string>(name, { codec: 'utf8', openTimeout: 300 }))
    t.ok(performance.now() - start >= 290, 'it waited for the creator first')
    const consumer = closeAtEnd(t, Consumer.open<string>(name, { codec: 'utf8' }))
    producer.trySend('works')
    t.equal(consumer.tryReceive(), 'works')
    producer.close()
    consumer.close()
    t.notOk(shmExists(name))
  })

  t.test('a segment that is not a channel is refused with ERR_INVALID_SEGMENT and left alone', async (t) => {
    const name = channelName()
    const foreign = Region.create(name, 8192)
    Buffer.from(foreign.buffer).write('not a channel header')
    t.equal(thrown(() => Consumer.open(name)).code, 'ERR_INVALID_SEGMENT')
    t.equal(thrown(() => Producer.open(name)).code, 'ERR_INVALID_SEGMENT')
    t.ok(shmExists(name), 'someone else\'s object is not unlinked')
    t.equal(Buffer.from(foreign.buffer).toString('utf8', 0, 20), 'not a channel header', 'nor written to')
    foreign.close()
    unlinkIfPresent(name)
  })
})

t.test('a live channel is never reclaimed', async (t) => {
  t.test('while the producer lives, a second producer here or in another process gets ERR_END_TAKEN, and the first still works', async (t) => {
    const first = new ChannelPeer(t)
    const second = new ChannelPeer(t)
    const name = channelName()
    await first.call('openProducer', name, { codec: 'utf8' })
    await first.call('send', ['sent before anyone else came'])
    t.equal(thrown(() => Producer.open(name)).code, 'ERR_END_TAKEN')
    t.equal((await rejection(second.call('openProducer', name))).code, 'ERR_END_TAKEN')
    const consumer = closeAtEnd(t, Consumer.open<string>(name, { codec: 'utf8' }))
    t.equal(await consumer.receive(), 'sent before anyone else came', 'the consumer joined the live channel, message and all')
    await first.call('send', ['and after'])
    t.equal(await consumer.receive(), 'and after')
    await first.call('closeProducer')
    consumer.close()
    t.notOk(shmExists(name))
  })

  t.test('a producer that closed cleanly is not mistaken for a dead one: its consumer drains and sees the end, not ERR_PEER_DEAD, even once its process is gone', async (t) => {
    const peer = new ChannelPeer(t)
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<string>(name, { codec: 'utf8' }))
    await peer.call('openProducer', name, { codec: 'utf8' })
    await peer.call('send', ['goodbye'])
    await peer.call('closeProducer')
    await peer.kill()
    t.equal(await consumer.receive(), 'goodbye')
    t.equal((await rejection(consumer.receive())).code, 'ERR_CHANNEL_CLOSED')
  })
})

leavesNothingInDevShm(t)
