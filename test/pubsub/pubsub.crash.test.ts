/**
 * Topics when processes die or come and go (test/fixtures/pubsub-peer.ts):
 * a SIGKILLed subscriber stops gating the publisher and its entry is reused;
 * a SIGKILLed publisher's subscribers read what it published, then get
 * ERR_PEER_DEAD. The join-and-leave churn is in test/slow/pubsub.churn.test.ts.
 */
import t, { type Test } from 'tap'

import { Publisher, Subscriber } from '../../lib/index'
import { Peer } from '../support/peers'
import { channelName, closeAtEnd, leavesNothingInDevShm, unlinkIfPresent } from '../support/shm'
import { checkTopicMessage, topicMessage } from '../support/topic-messages'

function freshName (t: Test): string {
  const name = channelName()
  t.teardown(() => { unlinkIfPresent(name) })
  return name
}

t.test("'block': a SIGKILLed subscriber stops gating the publisher, and its entry goes to the next subscriber", async (t) => {
  const name = freshName(t)
  const publisher = closeAtEnd(t, Publisher.open<Uint8Array>(name, { codec: 'bytes', capacity: 4096, maxSubscribers: 1, peerCheckInterval: 100 }))
  const peer = new Peer(t, 'pubsub-peer.ts')
  await peer.call('openSubscriber', name)
  t.throws(() => Subscriber.open(name), { code: 'ERR_TOO_MANY_ENDS' }, 'the one entry is taken')
  let seq = 0
  while (publisher.tryPublish(topicMessage(seq, 100))) seq++
  const waiting = publisher.publish(topicMessage(seq, 100), { timeout: 10_000 })
  await peer.kill()
  await waiting
  t.pass('the publisher went on once the subscriber was dead')
  const next = closeAtEnd(t, Subscriber.open<Uint8Array>(name, { codec: 'bytes' }))
  publisher.tryPublish(topicMessage(seq + 1, 100))
  t.equal(checkTopicMessage(await next.receive({ timeout: 10_000 })), seq + 1, 'a newcomer took the dead subscriber\'s entry')
})

t.test('a SIGKILLed publisher: its subscribers read everything it published, then get ERR_PEER_DEAD', async (t) => {
  const name = freshName(t)
  const peer = new Peer(t, 'pubsub-peer.ts')
  await peer.call('openPublisher', name, { capacity: 1 << 16 })
  const subscriber = closeAtEnd(t, Subscriber.open<Uint8Array>(name, { codec: 'bytes', peerCheckInterval: 50 }))
  await peer.call('publishMany', 0, 100, 100)
  await peer.kill()
  for (let seq = 0; seq < 100; seq++) t.equal(checkTopicMessage(await subscriber.receive({ timeout: 10_000 })), seq)
  await t.rejects(subscriber.receive({ timeout: 10_000 }), { code: 'ERR_PEER_DEAD' })
  const late = closeAtEnd(t, Subscriber.open<Uint8Array>(name, { codec: 'bytes', from: 'oldest', peerCheckInterval: 50 }))
  let count = 0
  await t.rejects((async () => { for await (const m of late) if (checkTopicMessage(m) === count) count++ })(), { code: 'ERR_PEER_DEAD' })
  t.equal(count, 100, 'a subscriber that joins after the death reads what is retained, then ends the same way')
})

leavesNothingInDevShm(t)
