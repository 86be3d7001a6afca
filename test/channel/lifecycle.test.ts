/**
 * How channels end: a producer's close lets the consumer drain and then see
 * the end; a consumer's close fails the producer's sends, waiting ones
 * included; close is idempotent and a closed end refuses every use; the last
 * end out removes the name, and the name can then start a fresh channel.
 * The other end runs in a forked process (test/fixtures/channel-peer.ts).
 */
import t from 'tap'

import { Consumer, Producer } from '../../lib/index'
import { makeMessage } from '../support/channel-helpers'
import { ChannelPeer, rejection, thrown, within } from '../support/peers'
import { channelName, closeAtEnd, leavesNothingInDevShm, shmExists, untilParked } from '../support/shm'

const KiB = 1024

t.test('when the producer closes, the consumer drains everything sent, then sees the end', async (t) => {
  const peer = new ChannelPeer(t)

  t.test('the iterator yields every message, fragmented ones included, then finishes; every way of receiving then reports ERR_CHANNEL_CLOSED', async (t) => {
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<unknown>(name, { capacity: 256 * KiB, codec: 'structured' }))
    await peer.call('openProducer', name, { codec: 'structured' })
    const values: unknown[] = Array.from({ length: 1000 }, (_, i) => ({ i }))
    values.splice(500, 0, makeMessage(1, 0, 100 * KiB)) // larger than a 64 KiB record
    await peer.call('send', values)
    await peer.call('closeProducer')
    const drained: unknown[] = []
    for await (const value of consumer) drained.push(value)
    t.strictSame(drained, values)
    t.equal((await rejection(consumer.receive())).code, 'ERR_CHANNEL_CLOSED')
    t.equal(thrown(() => consumer.tryReceive()).code, 'ERR_CHANNEL_CLOSED')
    t.equal(thrown(() => consumer.receiveSync()).code, 'ERR_CHANNEL_CLOSED')
    t.equal(consumer.closed, false, 'the consumer end itself is still open until closed')
    consumer.close()
    t.notOk(shmExists(name))
  })

  t.test('a receive waiting here when the producer there closes rejects with ERR_CHANNEL_CLOSED', async (t) => {
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open(name))
    await peer.call('openProducer', name)
    const waiting = rejection(consumer.receive())
    await peer.call('closeProducer')
    t.equal((await within(5000, waiting, 'the waiting receive')).code, 'ERR_CHANNEL_CLOSED')
  })

  t.test('a consumer there blocked in receiveSync, or waiting in receive, is released with ERR_CHANNEL_CLOSED when the producer here closes', async (t) => {
    for (const method of ['receiveSync', 'receive']) {
      const name = channelName()
      const producer = closeAtEnd(t, Producer.open(name))
      await peer.call('openConsumer', name)
      await producer.send('before the close')
      t.same(await peer.call(method, 1), ['before the close'])
      const waiting = rejection(peer.call(method, 1))
      await untilParked(name, 'consumer')
      producer.close()
      t.equal((await within(5000, waiting, method)).code, 'ERR_CHANNEL_CLOSED', method)
      await peer.call('closeConsumer')
      t.notOk(shmExists(name))
    }
  })

  t.test('closing while a fragmented message is only partly written fails that send; the consumer sees what came before, then the end', async (t) => {
    const name = channelName()
    const producer = closeAtEnd(t, Producer.open<Uint8Array>(name, { capacity: 64 * KiB, codec: 'bytes' }))
    await peer.call('openConsumer', name, { codec: 'bytes' })
    await producer.send(Buffer.from('whole'))
    const partial = rejection(producer.send(makeMessage(2, 0, 1024 * KiB))) // 16 times the ring: waits for a reader
    producer.close()
    t.equal((await partial).code, 'ERR_CHANNEL_CLOSED')
    t.same(await peer.call('drain'), [Buffer.from('whole')])
    await peer.call('closeConsumer')
  })
})

t.test('when the consumer closes, the producer\'s sends fail with ERR_CHANNEL_CLOSED', async (t) => {
  const peer = new ChannelPeer(t)

  t.test('send rejects, trySend and sendSync throw', async (t) => {
    const name = channelName()
    const producer = closeAtEnd(t, Producer.open(name))
    await peer.call('openConsumer', name)
    await producer.send('read')
    t.same(await peer.call('receive', 1), ['read'])
    await peer.call('closeConsumer')
    t.equal((await rejection(producer.send('too late'))).code, 'ERR_CHANNEL_CLOSED')
    t.equal(thrown(() => producer.trySend('too late')).code, 'ERR_CHANNEL_CLOSED')
    t.equal(thrown(() => { producer.sendSync('too late') }).code, 'ERR_CHANNEL_CLOSED')
    t.equal(producer.closed, false, 'the producer end itself is still open until closed')
    producer.close()
    t.notOk(shmExists(name))
  })

  t.test('sends waiting here on a full ring are released with ERR_CHANNEL_CLOSED', async (t) => {
    const name = channelName()
    const producer = closeAtEnd(t, Producer.open<string>(name, { capacity: 4096, codec: 'utf8' }))
    await peer.call('openConsumer', name, { codec: 'utf8' })
    while (producer.trySend('fill')) ;
    const waiting = [producer.send('waits'), producer.send('queued behind it'), producer.send('and another')].map(rejection)
    await untilParked(name, 'producer')
    await peer.call('closeConsumer')
    const errors = await within(5000, Promise.all(waiting), 'the waiting sends')
    t.same(errors.map((e) => e.code), ['ERR_CHANNEL_CLOSED', 'ERR_CHANNEL_CLOSED', 'ERR_CHANNEL_CLOSED'])
  })

  t.test('a producer there blocked in send or sendSync on a full ring is released with ERR_CHANNEL_CLOSED when the consumer here closes', async (t) => {
    for (const how of ['sendSync', 'send']) {
      const name = channelName()
      const consumer = closeAtEnd(t, Consumer.open(name, { capacity: 4096 }))
      await peer.call('openProducer', name)
      const blocked = rejection(peer.call('fillThenSend', 'fill', how))
      t.ok(await peer.event<number>('full') > 0)
      await untilParked(name, 'producer')
      consumer.close()
      t.equal((await within(5000, blocked, how)).code, 'ERR_CHANNEL_CLOSED', how)
      await peer.call('closeProducer')
      t.notOk(shmExists(name))
    }
  })
})

t.test('close() is idempotent, and a closed end refuses every use with ERR_CHANNEL_CLOSED', async (t) => {
  const peer = new ChannelPeer(t)

  t.test('a closed producer', async (t) => {
    const name = channelName()
    const producer = Producer.open(name)
    await peer.call('openConsumer', name)
    producer.close()
    producer.close()
    t.equal(producer.closed, true)
    t.equal((await rejection(producer.send(1))).code, 'ERR_CHANNEL_CLOSED')
    t.equal(thrown(() => producer.trySend(1)).code, 'ERR_CHANNEL_CLOSED')
    t.equal(thrown(() => { producer.sendSync(1) }).code, 'ERR_CHANNEL_CLOSED')
    producer.close()
    await peer.call('closeConsumer')
  })

  t.test('a closed consumer, even with messages waiting', async (t) => {
    const name = channelName()
    const consumer = Consumer.open(name)
    await peer.call('openProducer', name)
    await peer.call('send', ['never read'])
    consumer.close()
    consumer.close()
    t.equal(consumer.closed, true)
    t.equal((await rejection(consumer.receive())).code, 'ERR_CHANNEL_CLOSED')
    t.equal(thrown(() => consumer.tryReceive()).code, 'ERR_CHANNEL_CLOSED')
    t.equal(thrown(() => consumer.receiveSync()).code, 'ERR_CHANNEL_CLOSED')
    const iterated: unknown[] = []
    for await (const value of consumer) iterated.push(value)
    t.same(iterated, [], 'iterating a closed consumer ends at once')
    consumer.close()
    await peer.call('closeProducer')
  })

  t.test('closing an end fails its own waiting calls with ERR_CHANNEL_CLOSED', async (t) => {
    const name = channelName()
    const consumer = Consumer.open(name, { capacity: 4096 })
    const producer = Producer.open(name)
    const receiving = rejection(consumer.receive())
    consumer.close()
    t.equal((await within(5000, receiving)).code, 'ERR_CHANNEL_CLOSED')

    const other = channelName()
    const producer2 = Producer.open(other, { capacity: 4096 })
    await peer.call('openConsumer', other)
    while (producer2.trySend('fill')) ;
    const sending = rejection(producer2.send('waits'))
    producer2.close()
    t.equal((await within(5000, sending)).code, 'ERR_CHANNEL_CLOSED')
    producer.close()
    await peer.call('closeConsumer')
  })
})

t.test('the last end out removes the name, and the name then starts a fresh channel', async (t) => {
  const peer = new ChannelPeer(t)

  for (const first of ['producer', 'consumer']) {
    t.test(`the ${first} closes first, in either process: the name goes with the second close`, async (t) => {
      for (const firstHere of [true, false]) {
        const name = channelName()
        const producerHere = (first === 'producer') === firstHere
        const here = producerHere ? Producer.open(name) : Consumer.open(name)
        await peer.call(producerHere ? 'openConsumer' : 'openProducer', name)
        const closeThere = async (): Promise<unknown> => await peer.call(producerHere ? 'closeConsumer' : 'closeProducer')
        if (firstHere) here.close()
        else await closeThere()
        t.ok(shmExists(name), `still there after the first close (${firstHere ? 'here' : 'there'})`)
        if (firstHere) await closeThere()
        else here.close()
        t.notOk(shmExists(name), 'gone after the second close')
      }
    })
  }

  t.test('a producer that sends and closes before any consumer came leaves the name: a late consumer gets every message, then the end', async (t) => {
    const name = channelName()
    await peer.call('openProducer', name, { codec: 'utf8' })
    await peer.call('send', ['sent early', 'and closed'])
    await peer.call('closeProducer')
    t.ok(shmExists(name), 'the name waits for its consumer')
    const consumer = Consumer.open<string>(name, { codec: 'utf8' })
    const drained: string[] = []
    for await (const value of consumer) drained.push(value)
    t.same(drained, ['sent early', 'and closed'])
    consumer.close()
    t.notOk(shmExists(name), 'the consumer, last out, removed it')
  })

  t.test('a consumer that closes before any producer came leaves the name; the next producer starts a fresh channel there', async (t) => {
    const name = channelName()
    const early = Consumer.open(name, { capacity: 4096 })
    early.close()
    t.ok(shmExists(name), 'left for a producer')
    await peer.call('openProducer', name, { capacity: 8192 })
    await peer.call('send', ['for a new consumer'])
    const consumer = Consumer.open(name)
    t.equal(consumer.capacity, 8192, 'the producer made a fresh channel with its own capacity')
    t.equal(await consumer.receive(), 'for a new consumer')
    consumer.close()
    await peer.call('closeProducer')
    t.notOk(shmExists(name))
  })

  t.test('re-opening a name after a clean close creates a fresh channel: nothing of the old one is seen', async (t) => {
    const name = channelName()
    const oldProducer = Producer.open<string>(name, { capacity: 4096, codec: 'utf8' })
    await peer.call('openConsumer', name, { codec: 'utf8' })
    await oldProducer.send('read before the close')
    t.same(await peer.call('receive', 1), ['read before the close'])
    await oldProducer.send('never read')
    oldProducer.close()
    await peer.call('closeConsumer')
    t.notOk(shmExists(name))

    // This time the consumer creates it, with another capacity.
    await peer.call('openConsumer', name, { codec: 'utf8', capacity: 8192 })
    const producer = closeAtEnd(t, Producer.open<string>(name, { codec: 'utf8' }))
    t.equal(producer.capacity, 8192, 'the new creator\'s capacity')
    t.same(await peer.call('tryReceive'), undefined, 'no message of the old channel')
    await producer.send('new')
    t.same(await peer.call('receive', 1), ['new'])
    producer.close()
    await peer.call('closeConsumer')
    t.notOk(shmExists(name))
  })
})

leavesNothingInDevShm(t)
