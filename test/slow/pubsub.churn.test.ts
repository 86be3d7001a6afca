/**
 * Slow tier: topic subscribers joining and leaving 1,000 times while a
 * publisher in another process (test/fixtures/pubsub-peer.ts) runs.
 */
import t, { type Test } from 'tap'

import { Region, Subscriber } from '../../lib/index'
import * as L from '../../lib/pubsub/layout'
import { END_FREE, END_CLOSED, END_STATE } from '../../lib/segment/ends'
import { word } from '../../lib/segment/words'
import { Peer } from '../support/peers'
import { channelName, closeAtEnd, leavesNothingInDevShm, mappingsOf, unlinkIfPresent } from '../support/shm'
import { checkTopicMessage } from '../support/topic-messages'

function freshName (t: Test): string {
  const name = channelName()
  t.teardown(() => { unlinkIfPresent(name) })
  return name
}

t.test('1,000 subscribers join and leave while a publisher in another process runs: no stall, no leaked entry or mapping', async (t) => {
  const name = freshName(t)
  const peer = new Peer(t, 'pubsub-peer.ts')
  await peer.call('openPublisher', name, { capacity: 1 << 14, maxSubscribers: 4 })
  // One subscriber stays for the whole run, so the topic outlives the churn.
  const steady = closeAtEnd(t, Subscriber.open<Uint8Array>(name, { codec: 'bytes' }))
  let steadyReceived = 0
  const steadyReading = (async () => { for await (const m of steady) if (checkTopicMessage(m) !== -1) steadyReceived++ })()
  const running = peer.call<number>('publishUntilStopped', 100)
  running.catch(() => {})
  await peer.event('publishing')
  const baseline = mappingsOf(`/dev/shm/${name}`)
  let torn = 0
  for (let i = 0; i < 1000; i++) {
    const s = Subscriber.open<Uint8Array>(name, { codec: 'bytes' })
    if (checkTopicMessage(await s.receive({ timeout: 10_000 })) === -1) torn++
    s.close()
  }
  t.equal(torn, 0, 'every message whole')
  t.equal(mappingsOf(`/dev/shm/${name}`), baseline, 'every left subscriber unmapped')
  const h = new Int32Array(closeAtEnd(t, Region.open(name, { readOnly: true })).buffer)
  let open = 0
  for (let i = 0; i < 4; i++) {
    const state = h[word(L.subscriberEntryOffset(i) + END_STATE)]
    if (state !== END_FREE && state !== END_CLOSED) open++
  }
  t.equal(open, 1, 'only the steady subscriber holds an entry')
  await peer.call('stopPublishing')
  const published = await running
  t.ok(published > 1000, 'the publisher kept publishing')
  steady.close()
  await steadyReading
  t.ok(steadyReceived > 1000, 'and the steady subscriber kept reading')
})

leavesNothingInDevShm(t)
