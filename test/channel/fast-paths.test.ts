/**
 * The idiomatic path's fast paths keep what send and receive promise: a
 * send that finds room settles at once but is published with the rest of
 * its tick; the async iterator and receive() hand out waiting messages as
 * already-settled promises, in order with every other way of sending and
 * receiving; timeouts, AbortSignals, closes and a dead peer still end the
 * waits they end on the slow paths. Across real processes where the
 * behaviour is cross-process.
 */
import t, { type Test } from 'tap'

import { Consumer, Producer, createChannelBuffer } from '../../lib/index'
import { ChannelPeer, rejection, within } from '../support/peers'
import { channelName, closeAtEnd, leavesNothingInDevShm, untilParked } from '../support/shm'

leavesNothingInDevShm(t)

/** Both ends of a channel in one buffer (the smallest ring unless `capacity`). */
function pair<T = unknown> (t: Test, codec: 'json' | 'bytes' = 'json', capacity = 4096): { producer: Producer<T>, consumer: Consumer<T>, buffer: SharedArrayBuffer } {
  const buffer = createChannelBuffer(capacity)
  const producer = closeAtEnd(t, Producer.fromBuffer<T>(buffer, { codec }))
  const consumer = closeAtEnd(t, Consumer.fromBuffer<T>(buffer, { codec }))
  return { producer, consumer, buffer }
}

/** True if `promise` has settled by the time one microtask has run: it was already settled. */
async function settledAtOnce (promise: Promise<unknown>): Promise<boolean> {
  let settled = false
  promise.then(() => { settled = true }, () => { settled = true })
  await Promise.resolve()
  return settled
}

t.test('send', async (t) => {
  t.test('a send that finds room is already settled, and the sends of one tick are published together at its end', async (t) => {
    const { producer, consumer } = pair<number>(t)
    const first = producer.send(1)
    t.ok(producer.trySend(2), 'trySend in the same tick')
    const third = producer.send(3)
    t.ok(await settledAtOnce(first), 'the first send is settled at once')
    t.ok(await settledAtOnce(third), 'so is the third')
    const seen: number[] = []
    // Publication is the end of the tick: by now (after microtasks) all three are visible, in call order.
    for (let m = consumer.tryReceive(); m !== undefined; m = consumer.tryReceive()) seen.push(m)
    t.same(seen, [1, 2, 3])
  })

  t.test('sends made in one tick are not visible before the tick ends', async (t) => {
    const { producer, consumer } = pair<number>(t)
    void producer.send(1)
    void producer.send(2)
    // trySend publishes what came before it too: check before it, in the same tick.
    t.equal(consumer.tryReceive(), undefined, 'nothing is published yet within the tick')
    await Promise.resolve()
    t.equal(consumer.tryReceive(), 1)
    t.equal(consumer.tryReceive(), 2)
  })

  t.test('a full ring: sends queue in call order behind the first that waits, trySend refuses to jump the queue', async (t) => {
    const { producer, consumer } = pair<string>(t)
    let filled = 0
    while (producer.trySend(`fill ${filled}`)) filled++
    const waiting = [producer.send('a'), producer.send('b')]
    t.notOk(await settledAtOnce(waiting[0]), 'a send that finds no room waits')
    t.notOk(producer.trySend('c'), 'trySend does not overtake the waiting sends')
    const more = producer.send('d')
    const got: string[] = []
    while (got.length < filled + 3) {
      const m = await within(10_000, consumer.receive(), 'receive')
      got.push(m)
    }
    await Promise.all([...waiting, more])
    t.same(got.slice(filled), ['a', 'b', 'd'], 'the queued sends arrive after the fill, in call order')
    t.same(got.slice(0, filled), Array.from({ length: filled }, (_, i) => `fill ${i}`))
  })

  t.test('a waiting send ends with ERR_TIMEOUT, with an AbortSignal, and with ERR_CHANNEL_CLOSED on close; none of them is sent', async (t) => {
    const { producer, consumer, buffer } = pair<string>(t)
    let filled = 0
    while (producer.trySend('x')) filled++
    t.equal((await rejection(producer.send('timed', { timeout: 20 }))).code, 'ERR_TIMEOUT')
    const controller = new AbortController()
    const aborted = producer.send('aborted', { signal: controller.signal })
    await untilParked(buffer, 'producer')
    controller.abort()
    t.equal((await rejection(aborted)).code, 'ABORT_ERR')
    const closing = producer.send('closed')
    producer.close()
    t.equal((await rejection(closing)).code, 'ERR_CHANNEL_CLOSED')
    let n = 0
    try {
      for (;;) { t.equal(consumer.receiveSync({ timeout: 1000 }), 'x'); n++ }
    } catch (err) {
      t.equal((err as { code?: string }).code, 'ERR_CHANNEL_CLOSED', 'then the end')
    }
    t.equal(n, filled, 'only the fill was sent')
  })
})

t.test('for await and receive()', async (t) => {
  t.test('next() hands out every waiting message as an already-settled promise, in order', async (t) => {
    const { producer, consumer } = pair<number>(t)
    for (let i = 0; i < 50; i++) t.ok(producer.trySend(i))
    const iterator = consumer[Symbol.asyncIterator]()
    for (let i = 0; i < 50; i++) {
      const next = iterator.next()
      t.ok(await settledAtOnce(next), `message ${i} is settled at once`)
      t.same(await next, { done: false, value: i })
    }
    const empty = iterator.next()
    t.notOk(await settledAtOnce(empty), 'on an empty ring next() waits')
    producer.trySend(50)
    t.same(await within(10_000, empty, 'next'), { done: false, value: 50 })
  })

  t.test('receive() takes the same fast path when a message is waiting', async (t) => {
    const { producer, consumer } = pair<string>(t)
    producer.trySend('here')
    const p = consumer.receive()
    t.ok(await settledAtOnce(p))
    t.equal(await p, 'here')
  })

  t.test('the receive() right after one that had to wait takes the fast path again', async (t) => {
    const { producer, consumer } = pair<number>(t)
    const first = consumer.receive()
    t.notOk(await settledAtOnce(first), 'the first waits on an empty ring')
    producer.trySend(1)
    producer.trySend(2)
    // Straight after the first settles, as `await consumer.receive()` in a loop does.
    const value = await first
    const second = consumer.receive()
    t.equal(value, 1)
    t.ok(await settledAtOnce(second), 'the second, with a message waiting, is settled at once')
    t.equal(await second, 2)
    const iterated = consumer[Symbol.asyncIterator]().next()
    producer.trySend(3)
    t.same(await within(10_000, iterated, 'next'), { done: false, value: 3 })
  })

  t.test('a receive() still waiting is served before the iterator, and calls mixed in one tick keep their order', async (t) => {
    const { producer, consumer } = pair<number>(t)
    const iterator = consumer[Symbol.asyncIterator]()
    const first = consumer.receive()
    const second = iterator.next()
    const third = consumer.receive()
    const fourth = iterator.next()
    for (let i = 1; i <= 4; i++) producer.trySend(i)
    t.same(await within(10_000, Promise.all([first, second, third, fourth]), 'the four'), [1, { done: false, value: 2 }, 3, { done: false, value: 4 }])
  })

  t.test('the iterator ends when the producer closes, after the last message; break ends it too', async (t) => {
    const { producer, consumer } = pair<number>(t)
    for (let i = 0; i < 10; i++) producer.trySend(i)
    producer.close()
    const got: number[] = []
    for await (const m of consumer) got.push(m)
    t.same(got, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    const again = consumer[Symbol.asyncIterator]()
    t.same(await again.next(), { done: true, value: undefined }, 'a new iterator is done at once')

    const other = pair<number>(t)
    for (let i = 0; i < 5; i++) other.producer.trySend(i)
    const iterator = other.consumer[Symbol.asyncIterator]()
    const seen: number[] = []
    for await (const m of { [Symbol.asyncIterator]: () => iterator }) {
      seen.push(m)
      if (m === 2) break
    }
    t.same(seen, [0, 1, 2])
    t.same(await iterator.next(), { done: true, value: undefined }, 'after break the iterator stays done')
    t.equal(other.consumer.tryReceive(), 3, 'the rest stays in the channel')
  })

  t.test('an iterator waiting on an empty ring ends (done) when this consumer closes', async (t) => {
    const { consumer } = pair<number>(t)
    const next = consumer[Symbol.asyncIterator]().next()
    t.notOk(await settledAtOnce(next))
    consumer.close()
    t.same(await within(10_000, next, 'next'), { done: true, value: undefined })
  })

  t.test('a message the codec cannot decode: the iterator throws ERR_DECODE, then stays done', async (t) => {
    const buffer = createChannelBuffer(4096)
    const producer = closeAtEnd(t, Producer.fromBuffer<Uint8Array>(buffer, { codec: 'bytes' }))
    const consumer = closeAtEnd(t, Consumer.fromBuffer(buffer, { codec: 'json' }))
    producer.trySend(Buffer.from('"fine"'))
    producer.trySend(Buffer.from('{not json'))
    producer.trySend(Buffer.from('"after"'))
    const iterator = consumer[Symbol.asyncIterator]()
    t.same(await iterator.next(), { done: false, value: 'fine' })
    t.equal((await rejection(iterator.next())).code, 'ERR_DECODE')
    t.same(await iterator.next(), { done: true, value: undefined }, 'done after the error, as a generator would be')
    t.equal(consumer.tryReceive(), 'after', 'the channel itself goes on')
  })

  t.test('receive() on an empty ring ends with ERR_TIMEOUT, with an AbortSignal, and with ERR_CHANNEL_CLOSED on close', async (t) => {
    const { consumer, buffer } = pair<number>(t)
    t.equal((await rejection(consumer.receive({ timeout: 20 }))).code, 'ERR_TIMEOUT')
    const controller = new AbortController()
    const aborted = consumer.receive({ signal: controller.signal })
    await untilParked(buffer, 'consumer')
    controller.abort()
    t.equal((await rejection(aborted)).code, 'ABORT_ERR')
    const closing = consumer.receive()
    consumer.close()
    t.equal((await rejection(closing)).code, 'ERR_CHANNEL_CLOSED')
  })
})

t.test('across processes', async (t) => {
  t.test('await send in one process, for await in another, through a ring far smaller than the stream: all of it, in order', async (t) => {
    const peer = new ChannelPeer(t)
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<{ i: number, text: string }>(name, { capacity: 4096 }))
    await peer.call('openProducer', name, {})
    const values = Array.from({ length: 3000 }, (_, i) => ({ i, text: 'y'.repeat(i % 97) }))
    const sending = peer.call('send', values)
    const got: number[] = []
    let wrong = 0
    for await (const m of consumer) {
      if (m.text.length !== m.i % 97) wrong++
      got.push(m.i)
      if (got.length === values.length) break
    }
    t.equal(await sending, values.length, 'every send resolved')
    t.equal(wrong, 0, 'no message torn')
    t.same(got, values.map((v) => v.i), 'in order')
    await peer.call('closeProducer')
  })

  t.test('deferred publish: the tail of a run of awaited sends reaches a consumer in another process with no further call', async (t) => {
    const peer = new ChannelPeer(t)
    const name = channelName()
    // A ring large enough that the run never fills it: no wait for room publishes the tail.
    const consumer = closeAtEnd(t, Consumer.open<number>(name, { capacity: 1 << 20 }))
    await peer.call('openProducer', name, {})
    const values = Array.from({ length: 2000 }, (_, i) => i)
    // The peer awaits each send, then only answers this call and idles.
    t.equal(await peer.call('send', values), values.length)
    const got: number[] = []
    await within(10_000, (async () => {
      for await (const m of consumer) if (got.push(m) === values.length) break
    })(), 'the last messages')
    t.same(got, values, 'all of them, in order')
    await peer.call('closeProducer')
  })

  t.test('deferred publish: awaited sends with CPU work between them are published while the loop still runs', async (t) => {
    const peer = new ChannelPeer(t)
    const toPeer = channelName()
    const fromPeer = channelName()
    const producer = closeAtEnd(t, Producer.open<number>(toPeer, { capacity: 1 << 20 }))
    const consumer = closeAtEnd(t, Consumer.open<number>(fromPeer, { capacity: 1 << 20 }))
    await peer.call('openConsumer', toPeer, {})
    await peer.call('openProducer', fromPeer, {})
    const FAST = 500
    const SLOW = 8
    const echoed = peer.call('echo', FAST + SLOW, 'async')
    await peer.event('echoing')
    // A fast run first, so that sends are being held back when the slow loop starts.
    for (let i = 0; i < FAST; i++) await producer.send(i)
    for (let i = FAST; i < FAST + SLOW; i++) {
      await producer.send(i)
      const until = Date.now() + 4 // CPU work, no await: only the producer's own bound publishes
      while (Date.now() < until) { /* busy */ }
    }
    // Still inside the loop's synchronous run (no await since its last send):
    // every message but the last must be published by now; its echo comes back.
    const answers: number[] = []
    const deadline = Date.now() + 10_000
    while (answers.length < FAST + SLOW - 1 && Date.now() < deadline) {
      const m = consumer.tryReceive()
      if (m !== undefined) answers.push(m)
    }
    t.same(answers, Array.from({ length: FAST + SLOW - 1 }, (_, i) => 2 * i), 'each message but the last was delivered during the loop')
    t.equal(await echoed, FAST + SLOW, 'and the last one after it')
    await peer.call('closeConsumer')
    await peer.call('closeProducer')
  })

  t.test('deferred publish: a receiveSync in the same thread publishes the sends held back before it blocks', async (t) => {
    const peer = new ChannelPeer(t)
    const toPeer = channelName()
    const fromPeer = channelName()
    const producer = closeAtEnd(t, Producer.open<number>(toPeer, { capacity: 1 << 20 }))
    const consumer = closeAtEnd(t, Consumer.open<number>(fromPeer, { capacity: 1 << 20 }))
    await peer.call('openConsumer', toPeer, {})
    await peer.call('openProducer', fromPeer, {})
    const ROUNDS = 500
    const echoed = peer.call('echo', ROUNDS, 'async')
    await peer.event('echoing')
    for (let i = 0; i < ROUNDS; i++) await producer.send(i)
    // No await from here on: the tail of the run is published by the first
    // receiveSync that has to wait, or no answer to it ever comes.
    let wrong = 0
    for (let i = 0; i < ROUNDS; i++) if (consumer.receiveSync({ timeout: 10_000 }) !== 2 * i) wrong++
    t.equal(wrong, 0, 'every answer, in order')
    t.equal(await echoed, ROUNDS)
    await peer.call('closeConsumer')
    await peer.call('closeProducer')
  })

  t.test('a for await loop waiting when its producer is SIGKILLed throws ERR_PEER_DEAD, after what was sent', async (t) => {
    const peer = new ChannelPeer(t)
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<number>(name, { peerCheckInterval: 20 }))
    await peer.call('openProducer', name, {})
    await peer.call('send', [1, 2, 3])
    const got: number[] = []
    const loop = rejection((async () => {
      for await (const m of consumer) got.push(m)
    })())
    await untilParked(name, 'consumer')
    t.same(got, [1, 2, 3], 'the messages sent are read first')
    t.same(await peer.kill(), { code: null, signal: 'SIGKILL' })
    t.equal((await within(10_000, loop, 'the loop')).code, 'ERR_PEER_DEAD')
  })

  t.test('an await send waiting for room when its consumer is SIGKILLed rejects with ERR_PEER_DEAD', async (t) => {
    const peer = new ChannelPeer(t)
    const name = channelName()
    const producer = closeAtEnd(t, Producer.open<string>(name, { capacity: 4096, peerCheckInterval: 20 }))
    await peer.call('openConsumer', name, {})
    while (producer.trySend('fill')) { /* fill the ring */ }
    const waiting = rejection(producer.send('one more'))
    await untilParked(name, 'producer')
    t.same(await peer.kill(), { code: null, signal: 'SIGKILL' })
    t.equal((await within(10_000, waiting, 'the send')).code, 'ERR_PEER_DEAD')
  })
})
