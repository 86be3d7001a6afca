/**
 * An end that its process drops without close() is closed when it is
 * garbage-collected: its peer, in another process, sees the close instead of
 * an end held by a live process forever. The other process runs
 * test/fixtures/channel-forgotten.ts with --expose-gc and stays alive.
 */
import t from 'tap'

import { Consumer, Producer } from '../../lib/index'
import { Peer, rejection, within } from '../support/peers'
import { channelName, closeAtEnd, leavesNothingInDevShm, shmExists } from '../support/shm'

const GC = { execArgv: [...process.execArgv, '--expose-gc'] }

t.test('a producer collected unclosed in a live process: the consumer reads what it sent, then sees the end', async (t) => {
  const name = channelName()
  const consumer = closeAtEnd(t, Consumer.open<string>(name, { codec: 'utf8' }))
  const peer = new Peer(t, 'channel-forgotten.ts', [name, 'producer'], GC)
  t.match(await peer.event('dropped'), { closed: true }, 'the fixture saw its end closed by the collector')
  t.equal(await within(5000, consumer.receive(), 'receive'), 'last words')
  t.equal((await within(5000, rejection(consumer.receive()), 'the end')).code, 'ERR_CHANNEL_CLOSED')
  t.equal(peer.child.exitCode, null, 'the producer\'s process is still running')
  consumer.close()
  t.notOk(shmExists(name), 'the consumer, last out, removed the name')
  await peer.end()
})

t.test('a consumer collected unclosed in a live process: the producer\'s sends fail with ERR_CHANNEL_CLOSED', async (t) => {
  const name = channelName()
  const producer = closeAtEnd(t, Producer.open<string>(name, { codec: 'utf8' }))
  const peer = new Peer(t, 'channel-forgotten.ts', [name, 'consumer'], GC)
  t.match(await peer.event('dropped'), { closed: true })
  t.equal((await rejection(producer.send('anyone?'))).code, 'ERR_CHANNEL_CLOSED')
  t.equal(peer.child.exitCode, null, 'the consumer\'s process is still running')
  producer.close()
  t.notOk(shmExists(name))
  await peer.end()
})

t.test('ends bound with `using` close at the end of their scope', async (t) => {
  const name = channelName()
  let seen: { producer?: Producer<string>, consumer?: Consumer<string> } = {}
  {
    using consumer = Consumer.open<string>(name, { codec: 'utf8' })
    using producer = Producer.open<string>(name, { codec: 'utf8' })
    producer.trySend('in scope')
    t.equal(consumer.tryReceive(), 'in scope')
    seen = { producer, consumer }
  }
  t.equal(seen.producer?.closed, true)
  t.equal(seen.consumer?.closed, true)
  t.notOk(shmExists(name), 'both closed: the name is gone')
})

leavesNothingInDevShm(t)
