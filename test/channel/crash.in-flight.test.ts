/**
 * Crashes test/channel/crash.peer-death.test.ts does not reach: a producer SIGKILLed
 * with a claim open, or part way through a large message while the consumer
 * is reading its fragments; a process killed while parked in a futex wait;
 * and a pid reused by another process, told apart by its start time.
 * In every case the survivor delivers what was published before the death,
 * whole and once, then fails with ERR_PEER_DEAD, and the name works again.
 */
import { spawn } from 'node:child_process'
import t, { type Test } from 'tap'

import { Consumer, Producer, Region } from '../../lib/index'
import * as L from '../../lib/channel/layout'
import { processStartTime } from '../../lib/platform/liveness'
import { initSegment } from '../../lib/channel/segment'
import { StreamVerifier, perfectReport } from '../support/channel-helpers'
import { ChannelPeer, thrown, within } from '../support/peers'
import { channelName, closeAtEnd, leavesNothingInDevShm, shmExists, untilParked } from '../support/shm'
import { Prng, seedsFromEnv } from '../support/prng'

const KiB = 1024
const DETECTION_BOUND = 5000

/** Receives until an error; returns the verifier's report and the error's code. */
async function drain (consumer: Consumer<Uint8Array>, verifier: StreamVerifier): Promise<string | undefined> {
  for (;;) {
    try {
      verifier.check(await within(30_000, consumer.receive(), 'receive'))
    } catch (err) {
      return (err as { code?: string }).code
    }
  }
}

/** The end slot of `role` in the segment named `name`, read through a mapping of our own. */
function endSlot (name: string, role: 'producer' | 'consumer'): { pid: number, state: number, parked: number } {
  const region = Region.open(name)
  try {
    const h = new Int32Array(region.buffer, 0, L.HEADER_SIZE / 4)
    const base = L.word(role === 'producer' ? L.PRODUCER_END_OFFSET : L.CONSUMER_END_OFFSET)
    const parked = L.word(role === 'producer' ? L.PRODUCER_PARKED_OFFSET : L.CONSUMER_PARKED_OFFSET)
    return { pid: h[base + L.word(L.END_PID)], state: h[base + L.word(L.END_STATE)], parked: Atomics.load(h, parked) }
  } finally {
    region.close()
  }
}

/** A new producer and consumer on `name` exchange a message: the name works again. (Here rather than in a new process: forking one costs a second and a half, and the restart by name is the same.) */
async function nameWorksAgain (t: Test, name: string): Promise<void> {
  const consumer = closeAtEnd(t, Consumer.open<string>(name, { codec: 'utf8' }))
  const restarted = closeAtEnd(t, Producer.open<string>(name, { codec: 'utf8' }))
  await restarted.send('after the restart')
  t.equal(await within(10_000, consumer.receive(), 'receive after restart'), 'after the restart', 'the restarted channel delivers')
  restarted.close()
  consumer.close()
  t.notOk(shmExists(name), 'and leaves nothing when both close')
}

t.test('a producer killed with a claim open', async (t) => {
  t.test('the consumer delivers every message before it, nothing of the claim, then ERR_PEER_DEAD; the name restarts', async (t) => {
    const seed = 71
    const sizes = Array.from({ length: 300 }, (_, i) => 8 + ((i * 37) % 190))
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<Uint8Array>(name, { capacity: 64 * KiB, codec: 'bytes' }))
    const peer = new ChannelPeer(t, 'rel-peer.ts')
    await peer.call('openProducer', name, { codec: 'bytes' })
    // The consumer reads while the producer writes, so the claim lands at some index mid-ring.
    const verifier = new StreamVerifier(seed)
    const claimed = peer.call('sendThenClaim', seed, sizes, 1000)
    while (verifier.next < 100) verifier.check(await within(10_000, consumer.receive(), 'receive'))
    t.same(await claimed, { claimed: true })
    t.same(await peer.kill(), { code: null, signal: 'SIGKILL' })
    const code = await drain(consumer, verifier)
    const report = verifier.report
    t.same(report, perfectReport(sizes.length, sizes.reduce((a, b) => a + b, 0)), 'all 300, whole, once, in order; nothing of the claim')
    t.equal(code, 'ERR_PEER_DEAD')
    consumer.close()
    await nameWorksAgain(t, name)
  })

  t.test('a new producer taking over while the consumer is still open is not wedged by the claim: the consumer sees the old messages, then the new', async (t) => {
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<Uint8Array>(name, { capacity: 16 * KiB, codec: 'bytes' }))
    const peer = new ChannelPeer(t, 'rel-peer.ts')
    await peer.call('openProducer', name, { codec: 'bytes' })
    // Claim nearly a quarter of the ring after filling most of it: the ring is as full as a claim can leave it.
    await peer.call('sendThenClaim', 5, Array.from({ length: 10 }, () => 1000), 4 * KiB - 8)
    await peer.kill()
    const restarted = closeAtEnd(t, Producer.open<Uint8Array>(name, { codec: 'bytes', capacity: 16 * KiB }))
    t.ok(restarted.trySend(Buffer.from('fresh')), 'the new producer has room at once: the claim was never committed')
    const verifier = new StreamVerifier(5)
    for (let i = 0; i < 10; i++) verifier.check(await within(10_000, consumer.receive(), 'receive'))
    t.equal(verifier.report.intact, 10, 'the dead producer\'s messages, whole')
    t.equal(Buffer.from(await within(10_000, consumer.receive(), 'receive')).toString(), 'fresh', 'then the new producer\'s, and nothing of the claim')
    restarted.close()
    t.equal(thrown(() => consumer.tryReceive()).code, 'ERR_CHANNEL_CLOSED')
    consumer.close()
    t.notOk(shmExists(name))
  })
})

t.test('a producer killed part way through a large message while the consumer reads its fragments', async (t) => {
  for (const seed of seedsFromEnv('REL_FRAGMENT_SEED', [1, 2, 3])) {
    t.test(`seed ${seed}: the large message arrives whole or not at all; what came before arrives; then ERR_PEER_DEAD`, async (t) => {
      const random = new Prng(seed)
      const name = channelName()
      const consumer = closeAtEnd(t, Consumer.open<Uint8Array>(name, { capacity: 64 * KiB, codec: 'bytes', maxMessageSize: 32 * 1024 * KiB }))
      const peer = new ChannelPeer(t, 'rel-peer.ts')
      await peer.call('openProducer', name, { codec: 'bytes' })
      const sizes = Array.from({ length: random.range(1, 40) }, () => random.range(8, 20 * KiB))
      const bigSize = random.range(1, 16) * 1024 * KiB
      const verifier = new StreamVerifier(seed)
      void peer.call('sendThenFragment', seed, sizes, bigSize).catch(() => {})
      const reading = drain(consumer, verifier)
      await peer.event('fragmenting')
      await new Promise((resolve) => setTimeout(resolve, random.int(20)))
      await peer.kill()
      const code = await reading
      const report = verifier.report
      t.same(report, perfectReport(report.received, report.bytes), 'nothing lost, torn, duplicated or reordered')
      t.ok(report.received === sizes.length || report.received === sizes.length + 1,
        `${report.received} of ${sizes.length} small messages + the ${bigSize >> 20} MiB one (${report.received > sizes.length ? 'delivered' : 'cut off'})`)
      t.equal(code, 'ERR_PEER_DEAD')
      consumer.close()
      t.notOk(shmExists(name))
    })
  }
})

t.test('a process killed while parked in a futex wait leaves nothing that blocks the survivor', async (t) => {
  t.test('a consumer killed in receiveSync: the producer fills the ring, then learns of the death; a new consumer restarts the name', async (t) => {
    const name = channelName()
    // 'wait': trySend keeps going after the death (the replacement will read it), up to peerDeathTimeout.
    const producer = closeAtEnd(t, Producer.open<Uint8Array>(name, { capacity: 16 * KiB, codec: 'bytes', wait: 'block', onPeerDeath: 'wait', peerDeathTimeout: 500 }))
    const peer = new ChannelPeer(t, 'rel-peer.ts')
    await peer.call('openConsumer', name, { codec: 'bytes', wait: 'block' })
    void peer.call('parkInReceiveSync').catch(() => {})
    await peer.event('parking')
    await untilParked(name, 'consumer')
    t.equal(endSlot(name, 'consumer').parked, 1, 'the consumer is parked')
    await peer.kill()
    t.equal(endSlot(name, 'consumer').parked, 1, 'and its parked flag outlives it')
    let sent = 0
    while (producer.trySend(Buffer.alloc(100))) sent++
    t.ok(sent > 100, `trySend still fills the ring (${sent} messages), the stale flag costs only wake-ups`)
    const started = performance.now()
    const err = await within(10_000, producer.send(Buffer.alloc(100)).then(() => ({ code: 'resolved' }), (e) => e as { code?: string }), 'send')
    t.equal(err.code, 'ERR_PEER_DEAD')
    t.ok(performance.now() - started < DETECTION_BOUND)
    t.equal(thrown(() => { producer.sendSync(Buffer.alloc(100), { timeout: 2000 }) }).code, 'ERR_PEER_DEAD', 'sendSync too, without waiting out its timeout')
    producer.close()
    t.ok(shmExists(name), 'the producer leaves the name to a replacement consumer: messages remain unread')
    const replacement = closeAtEnd(t, Consumer.open<Uint8Array>(name, { codec: 'bytes' }))
    let drained = 0
    while (drained < sent && replacement.tryReceive() !== undefined) drained++
    t.equal(drained, sent, 'the replacement reads every message sent after the death')
    t.equal(thrown(() => replacement.tryReceive()).code, 'ERR_CHANNEL_CLOSED', 'then the producer\'s close')
    replacement.close()
    t.notOk(shmExists(name), 'the replacement, last out, removed the name')
    await nameWorksAgain(t, name)
  })

  t.test('a producer killed in sendSync on a full ring: the consumer drains it, then gets ERR_PEER_DEAD; a new producer restarts the name', async (t) => {
    const name = channelName()
    const consumer = closeAtEnd(t, Consumer.open<Uint8Array>(name, { capacity: 16 * KiB, codec: 'bytes', wait: 'block' }))
    const peer = new ChannelPeer(t, 'rel-peer.ts')
    await peer.call('openProducer', name, { codec: 'bytes', wait: 'block' })
    void peer.call('parkInSendSync', 200).catch(() => {})
    await peer.event('parking')
    await untilParked(name, 'producer')
    t.equal(endSlot(name, 'producer').parked, 1, 'the producer is parked')
    await peer.kill()
    let received = 0
    let code: string | undefined
    for (;;) {
      try {
        const message = await within(10_000, consumer.receive(), 'receive')
        t.equal(message.length, 200)
        received++
      } catch (err) {
        code = (err as { code?: string }).code
        break
      }
    }
    t.ok(received > 50, `${received} messages drained`)
    t.equal(code, 'ERR_PEER_DEAD')
    consumer.close()
    t.notOk(shmExists(name))
    await nameWorksAgain(t, name)
  })
})

t.test('pid reuse: an end held by a live pid with the wrong start time is stale', async (t) => {
  const helper = spawn('sleep', ['120'], { stdio: 'ignore' })
  t.teardown(() => { helper.kill('SIGKILL') })
  const pid = helper.pid as number
  let start = processStartTime(pid)
  for (let i = 0; i < 100 && start <= 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10))
    start = processStartTime(pid)
  }
  t.ok(start > 0, `the helper (pid ${pid}) started at tick ${start}`)

  /** A channel segment under `name` whose `role` end says pid `pid` started at `startTime` holds it open. */
  function segmentHeldBy (name: string, role: 'producer' | 'consumer', startTime: number): Region {
    const region = Region.create(name, L.segmentSize(4096))
    initSegment(region.buffer, 4096)
    const h = new Int32Array(region.buffer, 0, L.HEADER_SIZE / 4)
    const base = L.word(role === 'producer' ? L.PRODUCER_END_OFFSET : L.CONSUMER_END_OFFSET)
    h[base + L.word(L.END_PID)] = pid
    h[base + L.word(L.END_START_TIME)] = startTime % 0x100000000
    h[base + L.word(L.END_START_TIME) + 1] = Math.floor(startTime / 0x100000000)
    Atomics.store(h, base + L.word(L.END_STATE), L.END_OPEN)
    return region
  }

  for (const role of ['producer', 'consumer'] as const) {
    const Open = role === 'producer' ? Producer : Consumer
    t.test(`${role} slot, right start time: live, ERR_END_TAKEN, and the segment is left as it was`, async (t) => {
      const name = channelName()
      const old = closeAtEnd(t, segmentHeldBy(name, role, start))
      const before = Buffer.from(old.buffer).toString('hex')
      t.equal(thrown(() => Open.open(name)).code, 'ERR_END_TAKEN')
      t.equal(Buffer.from(old.buffer).toString('hex'), before, 'not a byte changed')
      t.ok(old.unlinkIfSame(), 'the name still refers to it')
    })

    t.test(`${role} slot, wrong start time: a reused pid, so the end is dead and taken over (its peer may still come)`, async (t) => {
      const name = channelName()
      const old = closeAtEnd(t, segmentHeldBy(name, role, start + 1))
      const end = closeAtEnd(t, Open.open(name))
      t.equal(endSlot(name, role).pid, process.pid, 'the end under the name is ours')
      t.equal(new Int32Array(old.buffer)[L.word(role === 'producer' ? L.PRODUCER_END_OFFSET : L.CONSUMER_END_OFFSET)], process.pid, 'in the same segment')
      t.ok(old.unlinkIfSame(), 'which still has the name')
      end.close()
    })
  }

  t.test('a consumer whose producer slot has the wrong start time sees ERR_PEER_DEAD, not a live peer', async (t) => {
    const name = channelName()
    closeAtEnd(t, segmentHeldBy(name, 'producer', start + 1)).close()
    // Consumers join a segment with a dead producer, to read what it published.
    const consumer = closeAtEnd(t, Consumer.open(name))
    const err = await within(5000, consumer.receive().then(() => ({ code: 'resolved' }), (e) => e as { code?: string }), 'receive')
    t.equal(err.code, 'ERR_PEER_DEAD')
    consumer.close()
    t.notOk(shmExists(name))
  })
})

leavesNothingInDevShm(t)
