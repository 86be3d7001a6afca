/**
 * The inspector on topics and fan-ins: `shm-channel ls` shows each
 * subscriber with its lag and each producer with its claim in flight;
 * `stat NAME` describes one in full.
 */
import t from 'tap'

import { FanInConsumer, FanInProducer, Publisher, Subscriber } from '../../lib/index'
import { FanInRing, FanInWriter } from '../../lib/fanin/ring'
import { checkFanIn, openFanIn } from '../../lib/fanin/segment'
import { main, EXIT_OK, type CliIO } from '../../lib/tools/cli'
import { SHM_PREFIX, channelName, closeAtEnd, leavesNothingInDevShm, unlinkIfPresent } from '../support/shm'

async function run (argv: string[]): Promise<{ code: number, out: string }> {
  let out = ''
  const io: CliIO = { stdout: { write: (chunk: string) => { out += chunk } }, stderr: { write: () => {} } }
  const code = await main(argv, io)
  return { code, out }
}

t.test('ls and stat show a topic\'s subscribers with their lag', async (t) => {
  const name = channelName()
  const publisher = closeAtEnd(t, Publisher.open<Uint8Array>(name, { codec: 'bytes', capacity: 4096 }))
  const subscriber = closeAtEnd(t, Subscriber.open<Uint8Array>(name, { codec: 'bytes' }))
  for (let i = 0; i < 10; i++) publisher.tryPublish(Buffer.alloc(48))
  const ls = await run(['ls', '--prefix', SHM_PREFIX])
  t.equal(ls.code, EXIT_OK)
  t.match(ls.out, `topic ${name} (block): 10 published, publisher ${process.pid} alive; subscribers: ${process.pid}:alive:lag 640 B`)
  // A subscriber stores its cursor every capacity / 16 bytes read (four of these 64-byte records) and when it has read everything.
  for (let i = 0; i < 5; i++) subscriber.tryReceive()
  const stat = await run(['stat', name])
  t.equal(stat.code, EXIT_OK)
  t.match(stat.out, `subscriber 0: pid ${process.pid} (alive), lag 384 bytes, 4 received, 0 lost`)
  const json = JSON.parse((await run(['stat', name, '--json'])).out)
  t.equal(json.subscribers[0].lag, 384)
  while (subscriber.tryReceive() !== undefined) { /* read the rest */ }
  t.equal(JSON.parse((await run(['stat', name, '--json'])).out).subscribers[0].lag, 0, 'caught up: all stored')
})

t.test('ls and stat show a fan-in\'s producers with their claims in flight', async (t) => {
  const name = channelName()
  t.teardown(() => { unlinkIfPresent(name) })
  const consumer = closeAtEnd(t, FanInConsumer.open(name))
  const producer = closeAtEnd(t, FanInProducer.open(name))
  producer.trySend('hello')
  const { region, index } = openFanIn(name, 'producer', {})
  t.teardown(() => { region.close() })
  new FanInWriter(new FanInRing(region.buffer, checkFanIn(region.buffer)), index).claim(40)
  const ls = await run(['ls', '--prefix', SHM_PREFIX])
  t.match(ls.out, `fan-in ${name}:`)
  t.match(ls.out, `${process.pid}:alive:in flight 48 B`)
  t.match(ls.out, '0 claims skipped, 0 partial messages dropped')
  const stat = await run(['stat', name])
  t.match(stat.out, `producer ${index}: pid ${process.pid} (alive), 0 sent, claim in flight: 48 bytes at 16`)
  t.match(stat.out, /^dropped +0 partial messages/m)
  t.equal(consumer.tryReceive(), 'hello')
})

leavesNothingInDevShm(t)
