/**
 * Channels between two real processes: opening by name from either end,
 * whole and ordered delivery, the non-waiting, waiting and blocking ways to
 * send and receive, timeouts and abort signals, one live end of each kind,
 * messages larger than the ring, and each wait strategy in a ping-pong.
 * The other process runs test/fixtures/channel-peer.ts.
 */
import t from 'tap'

import { Consumer, DEFAULT_CAPACITY, Producer, createChannelBuffer, type WaitStrategy } from '../../lib/index'
import { StreamVerifier, consumeStream, makeMessage, perfectReport, produceStream, type StreamReport, type StreamSpec } from '../support/channel-helpers'
import { ChannelPeer, rejection, thrown, within } from '../support/peers'
import { channelName, closeAtEnd, leavesNothingInDevShm, shmExists, unlinkIfPresent } from '../support/shm'

const KiB = 1024
const MiB = 1024 * KiB

/** 20 000 messages of 8 bytes to 2 KiB: many laps of a small ring, with padding records at its end. */
const STREAM: StreamSpec = { seed: 0x5eed, count: 20_000, sizes: { min: 8, max: 2 * KiB } }

t.test('either end may create the channel; messages arrive whole and in order', async (t) => {
  const peer = new ChannelPeer(t)

  const cases = [
    { creator: 'producer', producerHere: true },
    { creator: 'producer', producerHere: false },
    { creator: 'consumer', producerHere: true },
    { creator: 'consumer', producerHere: false }
  ] as const

  for (const { creator, producerHere } of cases) {
    const where = producerHere ? 'the producer here, the consumer in another process' : 'the consumer here, the producer in another process'
    t.test(`the ${creator} creates it (${where}); the other end attaches and takes the creator's capacity`, async (t) => {
      const name = channelName()
      const created = { capacity: 64 * KiB, codec: 'bytes' }
      const attached = { codec: 'bytes' } // default capacity asked for, creator's used
      const producerOptions = creator === 'producer' ? created : attached
      const consumerOptions = creator === 'consumer' ? created : attached
      let here: Producer<Uint8Array> | Consumer<Uint8Array>
      const openHere = (): void => {
        here = producerHere
          ? closeAtEnd(t, Producer.open<Uint8Array>(name, producerOptions as { codec: 'bytes' }))
          : closeAtEnd(t, Consumer.open<Uint8Array>(name, consumerOptions as { codec: 'bytes' }))
      }
      const openThere = async (): Promise<{ capacity: number }> =>
        await peer.call(producerHere ? 'openConsumer' : 'openProducer', name, producerHere ? consumerOptions : producerOptions)

      t.notOk(shmExists(name))
      const creatorHere = (creator === 'producer') === producerHere
      let thereCapacity: number
      if (creatorHere) {
        openHere()
        t.ok(shmExists(name), 'the creator made the name')
        thereCapacity = (await openThere()).capacity
      } else {
        thereCapacity = (await openThere()).capacity
        t.ok(shmExists(name), 'the creator made the name')
        openHere()
      }
      t.equal(here!.capacity, 64 * KiB)
      t.equal(thereCapacity, 64 * KiB)
      t.equal(here!.name, `/${name}`)

      let report: StreamReport
      let bytes: number
      if (producerHere) {
        const consumed = peer.call<StreamReport>('consumeStream', STREAM)
        await peer.event('consuming')
        bytes = (await produceStream(here! as Producer<Uint8Array>, STREAM)).bytes
        report = await consumed
      } else {
        const produced = peer.call<{ bytes: number }>('produceStream', STREAM)
        report = await consumeStream(here! as Consumer<Uint8Array>, STREAM)
        bytes = (await produced).bytes
      }
      t.same(report, perfectReport(STREAM.count, bytes), 'every message arrived once, in order, byte for byte')

      here!.close()
      t.ok(shmExists(name), 'the name stays while the other end is open')
      await peer.call(producerHere ? 'closeConsumer' : 'closeProducer')
      t.notOk(shmExists(name), 'the last end out removed the name')
    })
  }
})

t.test('trySend never waits', async (t) => {
  const peer = new ChannelPeer(t)

  t.test('returns false when the ring is full, and true again once the consumer has read', async (t) => {
    const name = channelName()
    const producer = closeAtEnd(t, Producer.open<string>(name, { capacity: 4096, codec: 'utf8' }))
    await peer.call('openConsumer', name, { codec: 'utf8' })
    const sent: string[] = []
    while (producer.trySend(`message ${sent.length}`)) sent.push(`message ${sent.length}`)
    t.ok(sent.length > 100, `${sent.length} messages fit in a 4 KiB ring`)
    const refused = `message ${sent.length}`
    t.equal(producer.trySend(refused), false, 'still full: nothing was read')
    t.same(await peer.call('receive', sent.length), sent)
    t.equal(producer.trySend('after'), true)
    t.same(await peer.call('receive', 1), ['after'], 'the refused message was never sent')
    await peer.call('closeConsumer')
  })

  t.test('a message of several records goes whole when it fits, and one larger than the ring throws ERR_MESSAGE_TOO_LARGE', async (t) => {
    const name = channelName()
    const producer = closeAtEnd(t, Producer.open<Uint8Array>(name, { capacity: 64 * KiB, codec: 'bytes' }))
    await peer.call('openConsumer', name, { codec: 'bytes' })
    const fragmented = makeMessage(1, 0, 40 * KiB) // over the 16 KiB record limit of a 64 KiB ring
    t.equal(producer.trySend(fragmented), true)
    t.equal(thrown(() => producer.trySend(makeMessage(1, 1, 64 * KiB))).code, 'ERR_MESSAGE_TOO_LARGE')
    const report = await peer.call<StreamReport & { sizes: number[] }>('receiveMessages', 1, 1)
    t.same(report.sizes, [40 * KiB])
    t.equal(report.intact, 1)
    await peer.call('closeConsumer')
  })
})

t.test('receiving: tryReceive, receiveSync, receive and async iteration', async (t) => {
  const peer = new ChannelPeer(t)

  t.test('tryReceive returns undefined when nothing waits; each way of receiving takes the next message', async (t) => {
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<string>(name, { codec: 'utf8' }))
    await peer.call('openProducer', name, { codec: 'utf8' })
    t.equal(consumer.tryReceive(), undefined)
    await peer.call('send', ['one', 'two', 'three', ''])
    t.equal(consumer.tryReceive(), 'one')
    t.equal(consumer.receiveSync(), 'two')
    t.equal(await consumer.receive(), 'three')
    t.equal(consumer.tryReceive(), '', 'an empty message is a message')
    t.equal(consumer.tryReceive(), undefined)
    await peer.call('closeProducer')
  })

  t.test('receive waits without blocking the event loop until the other process sends', async (t) => {
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<number>(name))
    await peer.call('openProducer', name)
    const received = consumer.receive()
    // The loop is free: a call to the other process completes while receive waits.
    t.same(await peer.call('trySend', [42]), [true])
    t.equal(await received, 42)
    await peer.call('closeProducer')
  })

  t.test('receiveSync blocks the thread until the other process sends', async (t) => {
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<string>(name, { codec: 'utf8' }))
    await peer.call('openProducer', name, { codec: 'utf8' })
    await peer.call('sendAfter', 100, ['woken'])
    t.equal(consumer.receiveSync({ timeout: 30_000 }), 'woken')
    await peer.call('closeProducer')
  })

  t.test('async iteration yields every message and ends when the producer closes', async (t) => {
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<{ n: number }>(name, { capacity: 4096 }))
    await peer.call('openProducer', name)
    const seen: Array<{ n: number }> = []
    const iterated = (async () => { for await (const value of consumer) seen.push(value) })()
    const values = Array.from({ length: 2000 }, (_, n) => ({ n }))
    await peer.call('send', values)
    await peer.call('closeProducer')
    await iterated
    t.same(seen, values)
  })
})

t.test('timeouts', async (t) => {
  const peer = new ChannelPeer(t)

  t.test('receive({ timeout }) rejects with ERR_TIMEOUT when nothing comes, and receiveSync throws it', async (t) => {
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open(name))
    await peer.call('openProducer', name)
    const start = performance.now()
    const err = await rejection(consumer.receive({ timeout: 200 }))
    t.equal(err.code, 'ERR_TIMEOUT')
    t.ok(performance.now() - start >= 190, 'not before the timeout')
    t.equal(thrown(() => consumer.receiveSync({ timeout: 50 })).code, 'ERR_TIMEOUT')
    await peer.call('send', ['still works'])
    t.equal(await consumer.receive({ timeout: 30_000 }), 'still works')
    await peer.call('closeProducer')
  })

  t.test('send({ timeout }) on a full ring nobody reads rejects with ERR_TIMEOUT, and that message is never delivered', async (t) => {
    const name = channelName()
    const producer = closeAtEnd(t, Producer.open<string>(name, { capacity: 4096, codec: 'utf8' }))
    await peer.call('openConsumer', name, { codec: 'utf8' })
    let n = 0
    while (producer.trySend(`fill ${n}`)) n++
    const start = performance.now()
    t.equal((await rejection(producer.send('timed out', { timeout: 200 }))).code, 'ERR_TIMEOUT')
    t.ok(performance.now() - start >= 190, 'not before the timeout')
    t.equal(thrown(() => { producer.sendSync('timed out too', { timeout: 50 }) }).code, 'ERR_TIMEOUT')
    const fills = await peer.call<string[]>('receive', n)
    t.equal(fills.length, n)
    await producer.send('next')
    t.same(await peer.call('receive', 1), ['next'])
    await peer.call('closeConsumer')
  })
})

t.test('calls that overlap', async (t) => {
  const peer = new ChannelPeer(t)

  t.test('sends made without awaiting arrive in call order, lapping a small ring', async (t) => {
    const name = channelName()
    const producer = closeAtEnd(t, Producer.open<number>(name, { capacity: 4096 }))
    await peer.call('openConsumer', name)
    const count = 5000
    const receiving = peer.call<number[]>('receive', count)
    const sends: Array<Promise<void>> = []
    for (let i = 0; i < count; i++) sends.push(producer.send(i))
    t.equal(producer.trySend(-1), false, 'trySend does not overtake waiting sends')
    t.equal(thrown(() => { producer.sendSync(-1) }).code, 'ERR_BUSY', 'nor does sendSync')
    await Promise.all(sends)
    t.same(await receiving, Array.from({ length: count }, (_, i) => i))
    await peer.call('closeConsumer')
  })

  t.test('receives made without awaiting are served in call order', async (t) => {
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<number>(name))
    await peer.call('openProducer', name)
    const receives = Array.from({ length: 100 }, () => consumer.receive())
    await peer.call('send', Array.from({ length: 100 }, (_, i) => i))
    t.same(await Promise.all(receives), Array.from({ length: 100 }, (_, i) => i))
    await peer.call('closeProducer')
  })

  t.test('a send queued behind one waiting for room times out or aborts on its own schedule, and is never delivered', async (t) => {
    const name = channelName()
    const producer = closeAtEnd(t, Producer.open<string>(name, { capacity: 4096, codec: 'utf8' }))
    await peer.call('openConsumer', name, { codec: 'utf8' })
    let n = 0
    while (producer.trySend(`fill ${n}`)) n++
    const start = performance.now()
    const head = producer.send('head') // no limit: waits until the consumer reads
    const controller = new AbortController()
    const timedOut = rejection(producer.send('timed out', { timeout: 200 }))
    const aborted = rejection(producer.send('aborted', { signal: controller.signal }))
    const tail = producer.send('tail')
    setTimeout(() => { controller.abort() }, 200)
    t.equal((await within(5000, timedOut)).code, 'ERR_TIMEOUT')
    t.equal((await within(5000, aborted)).code, 'ABORT_ERR')
    t.ok(performance.now() - start < 3000, 'without waiting for the send ahead of them')
    const received = await peer.call<string[]>('receive', n + 2)
    await Promise.all([head, tail])
    t.same(received.slice(n), ['head', 'tail'], 'the expired sends were never delivered')
    await peer.call('closeConsumer')
  })

  t.test('a receive queued behind a waiting one times out or aborts on its own schedule, and takes no message', async (t) => {
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<string>(name, { codec: 'utf8' }))
    await peer.call('openProducer', name, { codec: 'utf8' })
    const start = performance.now()
    const first = consumer.receive() // no limit
    const controller = new AbortController()
    const timedOut = rejection(consumer.receive({ timeout: 200 }))
    const aborted = rejection(consumer.receive({ signal: controller.signal }))
    const fourth = consumer.receive()
    setTimeout(() => { controller.abort() }, 200)
    t.equal((await within(5000, timedOut)).code, 'ERR_TIMEOUT')
    t.equal((await within(5000, aborted)).code, 'ABORT_ERR')
    t.ok(performance.now() - start < 3000, 'without waiting for the receive ahead of them')
    await peer.call('send', ['a', 'b', 'c'])
    t.equal(await first, 'a')
    t.equal(await fourth, 'b', 'the expired receives took nothing')
    t.equal(await consumer.receive(), 'c')
    await peer.call('closeProducer')
  })
})

t.test('abort signals', async (t) => {
  const peer = new ChannelPeer(t)

  t.test('a pending receive rejects with ABORT_ERR when its signal aborts; an aborted signal rejects at once', async (t) => {
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<string>(name, { codec: 'utf8' }))
    await peer.call('openProducer', name, { codec: 'utf8' })
    const controller = new AbortController()
    const pending = consumer.receive({ signal: controller.signal })
    setTimeout(() => { controller.abort(new Error('no longer needed')) }, 50)
    const err = await rejection(pending)
    t.equal(err.code, 'ABORT_ERR')
    t.equal(err.name, 'AbortError')
    t.equal((err.cause as Error).message, 'no longer needed')
    t.equal((await rejection(consumer.receive({ signal: AbortSignal.abort() }))).code, 'ABORT_ERR')
    await peer.call('send', ['after the aborts'])
    t.equal(await consumer.receive(), 'after the aborts', 'the consumer still works')
    await peer.call('closeProducer')
  })

  t.test('a send waiting for room rejects with ABORT_ERR when its signal aborts, and that message is never delivered', async (t) => {
    const name = channelName()
    const producer = closeAtEnd(t, Producer.open<string>(name, { capacity: 4096, codec: 'utf8' }))
    await peer.call('openConsumer', name, { codec: 'utf8' })
    let n = 0
    while (producer.trySend(`fill ${n}`)) n++
    const controller = new AbortController()
    const pending = producer.send('aborted', { signal: controller.signal })
    setTimeout(() => { controller.abort() }, 50)
    t.equal((await rejection(pending)).code, 'ABORT_ERR')
    t.equal((await rejection(producer.send('aborted too', { signal: AbortSignal.abort() }))).code, 'ABORT_ERR')
    t.equal((await peer.call<string[]>('receive', n)).length, n)
    await producer.send('next')
    t.same(await peer.call('receive', 1), ['next'])
    await peer.call('closeConsumer')
  })
})

t.test('a channel has one live end of each kind', async (t) => {
  const first = new ChannelPeer(t)
  const second = new ChannelPeer(t)

  t.test('a second producer, here or in a third process, gets ERR_END_TAKEN while the first lives; the first keeps working', async (t) => {
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<string>(name, { codec: 'utf8' }))
    await first.call('openProducer', name, { codec: 'utf8' })
    t.equal(thrown(() => Producer.open(name)).code, 'ERR_END_TAKEN')
    t.equal((await rejection(second.call('openProducer', name))).code, 'ERR_END_TAKEN')
    await first.call('send', ['from the first producer'])
    t.equal(await consumer.receive(), 'from the first producer')
    await first.call('closeProducer')
  })

  t.test('a second consumer, here or in a third process, gets ERR_END_TAKEN while the first lives; the first keeps working', async (t) => {
    const name = channelName()
    const producer = closeAtEnd(t, Producer.open<string>(name, { codec: 'utf8' }))
    await first.call('openConsumer', name, { codec: 'utf8' })
    t.equal(thrown(() => Consumer.open(name)).code, 'ERR_END_TAKEN')
    t.equal((await rejection(second.call('openConsumer', name))).code, 'ERR_END_TAKEN')
    await producer.send('to the first consumer')
    t.same(await first.call('receive', 1), ['to the first consumer'])
    await first.call('closeConsumer')
  })
})

t.test('messages larger than a record travel in fragments, byte for byte', async (t) => {
  const peer = new ChannelPeer(t)

  for (const capacity of [DEFAULT_CAPACITY, 64 * KiB]) {
    const sizes = [1 * MiB, 5 * MiB, 3 * capacity, 17, 3 * capacity + 1]
    const label = sizes.map((s) => s % MiB === 0 ? `${s / MiB} MiB` : s % KiB === 0 ? `${s / KiB} KiB` : `${s} B`).join(', ')

    t.test(`${label} from another process through a ${capacity / KiB} KiB ring`, async (t) => {
      const name = channelName()
      const consumer = closeAtEnd(t, Consumer.open<Uint8Array>(name, { capacity, codec: 'bytes' }))
      await peer.call('openProducer', name, { codec: 'bytes' })
      for (const how of ['send', 'sendSync'] as const) {
        const sending = peer.call('sendMessages', capacity, sizes, how)
        const verifier = new StreamVerifier(capacity)
        const got: number[] = []
        for (let i = 0; i < sizes.length; i++) {
          const message = await consumer.receive({ timeout: 60_000 })
          t.ok(Buffer.isBuffer(message))
          got.push(message.length)
          verifier.check(message)
        }
        await sending
        t.same(got, sizes, `sizes as sent (${how})`)
        t.same(verifier.report, perfectReport(sizes.length, got.reduce((a, b) => a + b)), `every byte as sent (${how})`)
      }
      await peer.call('closeProducer')
    })

    t.test(`${label} to another process through a ${capacity / KiB} KiB ring`, async (t) => {
      const name = channelName()
      const producer = closeAtEnd(t, Producer.open<Uint8Array>(name, { capacity, codec: 'bytes' }))
      await peer.call('openConsumer', name, { codec: 'bytes' })
      const received = peer.call<StreamReport & { sizes: number[] }>('receiveMessages', capacity, sizes.length)
      for (let seq = 0; seq < sizes.length; seq++) await producer.send(makeMessage(capacity, seq, sizes[seq]))
      const { sizes: got, ...report } = await received
      t.same(got, sizes, 'sizes as sent')
      t.same(report, perfectReport(sizes.length, sizes.reduce((a, b) => a + b)), 'every byte as sent')
      await peer.call('closeConsumer')
    })
  }

  t.test('maxMessageSize: an oversize message rejects that receive with ERR_MESSAGE_TOO_LARGE and the next one is delivered', async (t) => {
    for (const capacity of [DEFAULT_CAPACITY, 64 * KiB]) {
      const name = channelName()
      const consumer = closeAtEnd(t, Consumer.open<Uint8Array>(name, { capacity, codec: 'bytes', maxMessageSize: 1000 }))
      await peer.call('openProducer', name, { codec: 'bytes' })
      // One record over the limit, a fragmented message over it, and one larger than the ring.
      const sizes = [100, 1000, 1001, 200, 5000, 300, 300 * KiB, 400, 2 * MiB, 500]
      const allowed = sizes.map((s) => s <= 1000)
      const sending = peer.call('sendMessages', 7, sizes)
      const outcomes: Array<number | string> = []
      for (let i = 0; i < sizes.length; i++) {
        try {
          const message = await consumer.receive({ timeout: 60_000 })
          outcomes.push(Buffer.from(message.buffer, message.byteOffset, message.length).readUInt32LE(0)) // its sequence number
        } catch (err) {
          outcomes.push((err as { code: string }).code)
        }
      }
      await sending
      t.same(outcomes, sizes.map((_, seq) => allowed[seq] ? seq : 'ERR_MESSAGE_TOO_LARGE'), `in a ${capacity / KiB} KiB ring`)
      await peer.call('closeProducer')
      consumer.close()
    }
  })
})

t.test('zero-copy and batching across processes', async (t) => {
  const peer = new ChannelPeer(t)

  t.test('claim/commit writes in place; commit may shorten the message; a discarded claim (discard(), or its deprecated name abort()) is never seen', async (t) => {
    const name = channelName()
    const producer = closeAtEnd(t, Producer.open<Uint8Array>(name, { codec: 'bytes' }))
    await peer.call('openConsumer', name, { codec: 'bytes' })
    const whole = producer.claim(5)
    t.ok(whole !== null)
    whole!.write('whole')
    producer.commit()
    const dropped = producer.claim(7)
    dropped!.write('dropped')
    producer.discard()
    const alias = producer.claim(5)
    alias!.write('alias')
    producer.abort() // the deprecated name of discard()
    const shortened = producer.claim(100)
    shortened!.write('short')
    producer.commit(5)
    const empty = producer.claim(0)
    t.equal(empty!.length, 0)
    t.throws(() => { producer.commit(1) }, { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, 'a commit longer than the claim')
    producer.commit()
    t.same((await peer.call<Array<{ value: Buffer }>>('receiveTyped', 3)).map((r) => r.value.toString()), ['whole', 'short', ''])
    t.equal(await peer.call('tryReceive'), undefined, 'nothing of the discarded claims')
    await peer.call('closeConsumer')
  })

  t.test('cork holds messages back from the other process until uncork publishes them together', async (t) => {
    const name = channelName()
    const producer = closeAtEnd(t, Producer.open<number>(name))
    await peer.call('openConsumer', name)
    producer.cork()
    for (let i = 0; i < 100; i++) t.equal(producer.trySend(i), true)
    t.equal(await peer.call('tryReceive'), undefined, 'nothing visible while corked')
    producer.uncork()
    t.same(await peer.call('receive', 100), Array.from({ length: 100 }, (_, i) => i))
    await peer.call('closeConsumer')
  })

  t.test('readable, read and release: views of the other process\'s messages, then false at the end', async (t) => {
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open(name, { capacity: 64 * KiB }))
    await peer.call('openProducer', name, { codec: 'utf8' })
    const receiving = (async () => {
      const seen: string[] = []
      // read() throws ERR_CHANNEL_CLOSED, not undefined, once the producer has
      // closed and all was read: a drain that reaches the end stops there.
      const next = (): Buffer | undefined => {
        try {
          return consumer.read()
        } catch (err) {
          if ((err as { code?: string }).code === 'ERR_CHANNEL_CLOSED') return undefined
          throw err
        }
      }
      while (await consumer.readable({ timeout: 30_000 })) {
        for (let view = next(); view !== undefined; view = next()) seen.push(view.toString())
        consumer.release()
      }
      return seen
    })()
    const values = Array.from({ length: 3000 }, (_, i) => `message ${i}`)
    await peer.call('send', values)
    await peer.call('closeProducer')
    t.same(await receiving, values)
    t.equal(thrown(() => consumer.read()).code, 'ERR_CHANNEL_CLOSED', 'read() after the end')
  })

  t.test('readEach hands over every message of another process\'s stream as (bytes, start, end), fragmented ones included, at most max per call', async (t) => {
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open(name, { capacity: 64 * KiB }))
    // One message in 50 is up to 40 KiB: over a quarter of the ring, so it comes in fragments.
    const spec: StreamSpec = { seed: 0xeac4, count: 5000, sizes: { min: 8, max: 512, rareEvery: 50, rareMax: 40 * KiB } }
    await peer.call('openProducer', name, { codec: 'bytes' })
    const producing = peer.call<{ count: number, bytes: number }>('produceStream', spec, { close: true })
    const verifier = new StreamVerifier(spec.seed, spec.sizes)
    let calls = 0
    let overMax = 0
    let outside = 0
    const onMessage = (bytes: Buffer, start: number, end: number): void => {
      if (!(start >= 0 && start <= end && end <= bytes.length)) outside++
      verifier.check(bytes.subarray(start, end))
    }
    while (await consumer.readable({ timeout: 30_000 })) {
      const n = consumer.readEach(onMessage, 7)
      calls++
      // 0 is possible: readable() sees records, and the first fragments of a message are not yet a message.
      if (n > 7) overMax++
    }
    const sent = await producing
    t.same(verifier.report, perfectReport(spec.count, sent.bytes), 'every message whole, in order')
    t.equal(overMax, 0, 'no call took more than max messages')
    t.equal(outside, 0, 'start and end always lie inside bytes')
    t.ok(calls >= spec.count / 7, `${calls} calls for ${spec.count} messages`)
    t.equal(thrown(() => consumer.readEach(onMessage)).code, 'ERR_CHANNEL_CLOSED', 'readEach after the end')
  })

  t.test('readEach returns 0 when nothing waits; a throwing callback consumes its message and the rest stay for the next call', async (t) => {
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<string>(name, { codec: 'utf8' }))
    await peer.call('openProducer', name, { codec: 'utf8' })
    const seen: string[] = []
    const collect = (bytes: Buffer, start: number, end: number): void => { seen.push(bytes.toString('utf8', start, end)) }
    t.equal(consumer.readEach(collect), 0)
    await peer.call('send', ['a', 'b', 'boom', 'c', 'd'])
    t.ok(await consumer.readable({ timeout: 30_000 }))
    const err = thrown(() => consumer.readEach((bytes, start, end) => {
      collect(bytes, start, end)
      if (seen.at(-1) === 'boom') throw new Error('from the callback')
    }))
    t.equal(err.message, 'from the callback', 'the callback\'s error propagates')
    t.same(seen, ['a', 'b', 'boom'])
    t.equal(consumer.readEach(collect), 2)
    t.same(seen, ['a', 'b', 'boom', 'c', 'd'])
    t.equal(consumer.tryReceive(), undefined, 'nothing read twice')
    t.equal(thrown(() => consumer.readEach('not a function' as any)).code, 'ERR_INVALID_ARG_TYPE')
    t.equal(thrown(() => consumer.readEach(collect, 0)).code, 'ERR_OUT_OF_RANGE')
    t.equal(thrown(() => consumer.readEach(collect, 1.5)).code, 'ERR_OUT_OF_RANGE')
    await peer.call('closeProducer')
  })
})

t.test('names and options', async (t) => {
  t.test('a name with or without its leading slash is the same channel', async (t) => {
    const name = channelName()
    const producer = closeAtEnd(t, Producer.open(name))
    const consumer = closeAtEnd(t, Consumer.open(`/${name}`))
    t.equal(producer.name, consumer.name)
    producer.trySend('same channel')
    t.equal(consumer.tryReceive(), 'same channel')
    producer.close()
    consumer.close()
    t.notOk(shmExists(name))
  })

  t.test('bad options are refused with errors that name the option, and leave no name behind', async (t) => {
    const name = channelName()
    const cases: Array<[() => unknown, string, RegExp]> = [
      [() => Producer.open(name, { capacity: 5000 }), 'ERR_OUT_OF_RANGE', /"capacity"/],
      [() => Producer.open(name, { capacity: 2048 }), 'ERR_OUT_OF_RANGE', /"capacity"/],
      [() => Consumer.open(name, { wait: 'sometimes' as WaitStrategy }), 'ERR_INVALID_ARG_VALUE', /"wait"/],
      [() => Consumer.open(name, { peerCheckInterval: 0 }), 'ERR_OUT_OF_RANGE', /"peerCheckInterval"/],
      [() => Consumer.open(name, { spinMicros: -1 }), 'ERR_OUT_OF_RANGE', /"spinMicros"/],
      [() => Consumer.open(name, { codec: 'yaml' as 'json' }), 'ERR_INVALID_ARG_VALUE', /"codec"/],
      [() => Consumer.open(name, { maxMessageSize: -1 }), 'ERR_OUT_OF_RANGE', /"maxMessageSize"/],
      [() => Producer.open(42 as unknown as string), 'ERR_INVALID_ARG_TYPE', /"name"/],
      [() => Producer.open(''), 'ERR_INVALID_ARG_VALUE', /"name"/],
      [() => Producer.open('a/b'), 'ERR_INVALID_ARG_VALUE', /"name"/]
    ]
    for (const [open, code, message] of cases) {
      const err = thrown(open)
      t.equal(err.code, code, err.message)
      t.match(err.message, message)
    }
    t.notOk(shmExists(name))
    const producer = closeAtEnd(t, Producer.open(name))
    const consumer = closeAtEnd(t, Consumer.open(name))
    t.equal((await rejection(producer.send(1, { timeout: -1 }))).code, 'ERR_OUT_OF_RANGE', 'a negative send timeout, even with room')
    t.equal(thrown(() => { producer.sendSync(1, { timeout: NaN }) }).code, 'ERR_OUT_OF_RANGE')
    producer.trySend(1)
    t.equal((await rejection(consumer.receive({ timeout: -1 }))).code, 'ERR_OUT_OF_RANGE', 'a negative receive timeout, even with a message waiting')
    t.equal(thrown(() => consumer.receiveSync({ timeout: -1 })).code, 'ERR_OUT_OF_RANGE')
    t.equal(consumer.tryReceive(), 1, 'and the message is still there')
    producer.close()
    consumer.close()
    t.notOk(shmExists(name))

    // Refused options of a second open leave the ends free for a good one.
    const buffer = createChannelBuffer(4096)
    t.equal(thrown(() => Consumer.fromBuffer(buffer, { maxMessageSize: 1.5 })).code, 'ERR_OUT_OF_RANGE')
    t.equal(thrown(() => Producer.fromBuffer(buffer, { wait: 'never' as WaitStrategy })).code, 'ERR_INVALID_ARG_VALUE')
    Consumer.fromBuffer(buffer).close()
    Producer.fromBuffer(buffer).close()
    t.equal(thrown(() => Consumer.open(name, { maxMessageSize: -1 })).code, 'ERR_OUT_OF_RANGE')
    t.notOk(shmExists(name), 'a refused open leaves no name')
    const again = Consumer.open(name)
    t.equal(again.closed, false, 'and the consumer end is free')
    again.close()
    t.ok(shmExists(name), 'left for a producer that never came')
    unlinkIfPresent(name)
  })
})

t.test('each wait strategy carries a cross-process ping-pong, sync on one side and async on the other', async (t) => {
  const ROUNDS = 3000
  const peer = new ChannelPeer(t)

  for (const wait of ['spin', 'block', 'adaptive'] as WaitStrategy[]) {
    for (const syncThere of [true, false]) {
      const how = syncThere ? 'receiveSync there, receive here' : 'receive there, receiveSync here'
      t.test(`'${wait}': ${ROUNDS} round trips, ${how}`, async (t) => {
        const toPeer = channelName()
        const fromPeer = channelName()
        const producer = closeAtEnd(t, Producer.open<number>(toPeer, { wait }))
        const consumer = closeAtEnd(t, Consumer.open<number>(fromPeer, { wait }))
        await peer.call('openConsumer', toPeer, { wait })
        await peer.call('openProducer', fromPeer, { wait })
        const echoed = peer.call('echo', ROUNDS, syncThere ? 'sync' : 'async')
        await peer.event('echoing')
        let wrong = 0
        for (let i = 0; i < ROUNDS; i++) {
          let answer: number
          if (syncThere) {
            await producer.send(i)
            answer = await consumer.receive({ timeout: 60_000 })
          } else {
            producer.sendSync(i, { timeout: 60_000 })
            answer = consumer.receiveSync({ timeout: 60_000 })
          }
          if (answer !== 2 * i) wrong++
        }
        t.equal(await echoed, ROUNDS)
        t.equal(wrong, 0, 'every answer matched its question')
        await peer.call('closeConsumer')
        await peer.call('closeProducer')
      })
    }
  }
})

leavesNothingInDevShm(t)
