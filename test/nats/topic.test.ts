/**
 * Topics across hosts against a real nats-server: a topic mirrored to a
 * subject and that subject fed into a topic on "another host" (another
 * connection and topic name), in order; a mirror and a feed of one topic do
 * not echo.
 */
import t, { type Test } from 'tap'
import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node'

import { Publisher, Subscriber } from '../../lib/index'
import { feedSubjectToTopic, mirrorTopicToSubject } from '../../lib/nats/index'
import { startServer } from '../support/nats-server'
import { channelName, closeAtEnd, leavesNothingInDevShm } from '../support/shm'

async function natsConnection (t: Test, url: string): Promise<NatsConnection> {
  const nc = await natsConnect({ servers: url })
  t.teardown(async () => { await nc.close() })
  return nc
}

t.test('a topic mirrored to a subject reaches a topic fed from it on another host, in order', async (t) => {
  const server = await startServer(t)
  const hostA = await natsConnection(t, server.url)
  const hostB = await natsConnection(t, server.url)
  const here = channelName()
  const there = channelName()

  const subscriber = closeAtEnd(t, Subscriber.open<string>(there, { codec: 'utf8' }))
  const feed = feedSubjectToTopic({ nats: hostB, subject: 'prices', topic: there })
  t.teardown(async () => { await feed.close() })
  await hostB.flush()
  const publisher = closeAtEnd(t, Publisher.open<string>(here, { codec: 'utf8' }))
  const mirror = mirrorTopicToSubject({ nats: hostA, topic: here, subject: 'prices' })
  t.teardown(async () => { await mirror.close() })

  const total = 500
  const publishing = (async () => { for (let i = 1; i <= total; i++) await publisher.publish(`tick ${i}`) })()
  let inOrder = 0
  for (let i = 1; i <= total; i++) if (await subscriber.receive({ timeout: 10_000 }) === `tick ${i}`) inOrder++
  await publishing
  t.equal(inOrder, total, 'every message, in order')
  t.equal(mirror.forwarded, total)
  t.equal(feed.forwarded, total)

  publisher.close()
  await mirror.done
  t.pass('a mirror ends when its topic\'s publisher closes')
})

t.test('a topic both fed from and mirrored to one subject does not echo', async (t) => {
  const server = await startServer(t)
  const host = await natsConnection(t, server.url)
  const other = await natsConnection(t, server.url)
  const topic = channelName()
  const subscriber = closeAtEnd(t, Subscriber.open<string>(topic, { codec: 'utf8' }))
  const feed = feedSubjectToTopic({ nats: host, subject: 'room', topic })
  const mirror = mirrorTopicToSubject({ nats: host, topic, subject: 'room' })
  t.teardown(async () => { await mirror.close(); await feed.close() })
  await host.flush()

  const heard: string[] = []
  const listener = other.subscribe('room', { callback: (_err, m) => { heard.push(m.string()) } })
  t.teardown(() => { listener.unsubscribe() })
  await other.flush()
  other.publish('room', 'first')
  other.publish('room', 'second')
  t.equal(await subscriber.receive({ timeout: 10_000 }), 'first')
  t.equal(await subscriber.receive({ timeout: 10_000 }), 'second', 'the mirrored copy of "first" did not come back in between')
  // The mirror republished both (the other host hears them twice: its own and the mirror's); the feed took neither copy back.
  await other.flush()
  while (heard.length < 4) await host.flush()
  t.same(heard.sort(), ['first', 'first', 'second', 'second'])
  t.equal(feed.forwarded, 2)
})

leavesNothingInDevShm(t)
