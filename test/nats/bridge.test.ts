/**
 * Channel bridges against a real nats-server: order, exactly once across a
 * bridge process SIGKILLed at random points, backpressure both ways.
 */
import { fork } from 'node:child_process'
import path from 'node:path'
import t, { type Test } from 'tap'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { DiscardPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream'

import { Consumer, Producer } from '../../lib/index'
import { bridgeChannelToStream, bridgeStreamToChannel } from '../../lib/nats/index'
import { startServer } from '../support/nats-server'
import { channelName, closeAtEnd, leavesNothingInDevShm, unlinkIfPresent, untilParked } from '../support/shm'
import { ensureCompiled } from '../support/dist'
import { until } from '../support/peers'
import { Prng } from '../support/prng'

async function natsConnection (t: Test, url: string): Promise<NatsConnection> {
  const nc = await connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 100 })
  t.teardown(async () => { await nc.close() })
  return nc
}

/** Removes the cursors a bridge keeps beside `channel`. */
function removeCursorsAtEnd (t: Test, ...channels: string[]): void {
  t.teardown(() => {
    for (const c of channels) {
      unlinkIfPresent(`${c}.nats-out`)
      unlinkIfPresent(`${c}.nats-in`)
      unlinkIfPresent(c)
    }
  })
}

function message (i: number, size = 16): Buffer {
  const b = Buffer.alloc(Math.max(size, 8), i & 0xff)
  b.writeUInt32LE(i, 0)
  return b
}

t.test('a channel crosses a stream into another channel in order, each message once', async (t) => {
  const server = await startServer(t)
  const nc = await natsConnection(t, server.url)
  const from = channelName()
  const to = channelName()
  removeCursorsAtEnd(t, from, to)
  const producer = closeAtEnd(t, Producer.open<Buffer>(from, { codec: 'bytes' }))
  const consumer = closeAtEnd(t, Consumer.open<Buffer>(to, { codec: 'bytes' }))
  const out = await bridgeChannelToStream({ nats: nc, stream: 'order', channel: from })
  const into = await bridgeStreamToChannel({ nats: nc, stream: 'order', channel: to })
  t.teardown(async () => { await out.close(); await into.close() })

  const total = 3000
  const sizes = new Prng(7)
  const sent = (async () => { for (let i = 1; i <= total; i++) await producer.send(message(i, sizes.range(8, 3000))) })()
  for (let i = 1; i <= total; i++) {
    const m = await consumer.receive({ timeout: 20_000 })
    if (m.readUInt32LE(0) !== i) t.fail(`message ${i} arrived as ${m.readUInt32LE(0)}`)
  }
  await sent
  t.equal(out.forwarded, total)
  t.equal(into.forwarded, total)
  const info = await (await jetstreamManager(nc)).streams.info('order')
  t.equal(info.state.messages, total, 'the stream holds each message once')
})

t.test('backpressure: a stream that does not acknowledge fills the ring and the local producer waits', async (t) => {
  const server = await startServer(t)
  const nc = await natsConnection(t, server.url)
  const from = channelName()
  removeCursorsAtEnd(t, from)
  const producer = closeAtEnd(t, Producer.open<Buffer>(from, { codec: 'bytes', capacity: 4096, onPeerDeath: 'wait' }))
  const out = await bridgeChannelToStream({ nats: nc, stream: 'bp', channel: from, batch: 8 })
  t.teardown(async () => { await out.close() })

  await server.stop()
  let sent = 0
  const sending = (async () => { for (; sent < 2000; sent++) await producer.send(message(sent + 1, 100)) })()
  await untilParked(from, 'producer')
  t.ok(sent < 2000, `the producer waits after ${sent} messages`)
  await server.start()
  await sending
  const nc2 = await natsConnection(t, server.url)
  const jsm = await jetstreamManager(nc2)
  await until(() => out.forwarded === 2000, 20_000, 'every message out')
  t.equal((await jsm.streams.info('bp')).state.messages, 2000, 'nothing lost or doubled across the server restart')
})

t.test('a stream that refuses messages (full, discard new): the batch goes again under the same ids once it has room', async (t) => {
  const server = await startServer(t)
  const nc = await natsConnection(t, server.url)
  const jsm = await jetstreamManager(nc)
  await jsm.streams.add({ name: 'full', subjects: ['full'], max_msgs: 100, discard: DiscardPolicy.New })
  const from = channelName()
  removeCursorsAtEnd(t, from)
  const producer = closeAtEnd(t, Producer.open<Buffer>(from, { codec: 'bytes', capacity: 4096, onPeerDeath: 'wait' }))
  const out = await bridgeChannelToStream({ nats: nc, stream: 'full', channel: from, batch: 64 })
  t.teardown(async () => { await out.close() })

  const total = 300
  const sending = (async () => { for (let i = 1; i <= total; i++) await producer.send(message(i, 100)) })()
  // The stream fills, then refuses the rest of the batch again and again; the ring fills behind it.
  for (let stored = 0; stored < 100;) {
    stored = (await jsm.streams.info('full')).state.messages
    if (stored < 100) await new Promise((resolve) => setTimeout(resolve, 20))
  }
  await untilParked(from, 'producer')
  t.equal((await jsm.streams.info('full')).state.messages, 100, 'the stream took what it had room for, no more')
  t.ok(out.forwarded <= 100, `no batch the stream refused counts as forwarded (${out.forwarded})`)
  await jsm.streams.update('full', { max_msgs: -1 })
  await sending
  await until(() => out.forwarded === total, 20_000, 'every message out')
  t.equal((await jsm.streams.info('full')).state.messages, total, 'each message once')
  let inOrder = 0
  for (let seq = 1; seq <= total; seq++) {
    const stored = await jsm.streams.getMessage('full', { seq })
    if (stored !== null && Buffer.from(stored.data).readUInt32LE(0) === seq) inOrder++
  }
  t.equal(inOrder, total, 'in order')
})

t.test('backpressure: a local consumer that does not read leaves the messages in the stream', async (t) => {
  const server = await startServer(t)
  const nc = await natsConnection(t, server.url)
  const to = channelName()
  removeCursorsAtEnd(t, to)
  const jsm = await jetstreamManager(nc)
  await jsm.streams.add({ name: 'bpin', subjects: ['bpin'] })
  const js = jetstream(nc)
  const total = 2000
  for (let i = 1; i <= total; i++) await js.publish('bpin', message(i, 100))
  const consumer = closeAtEnd(t, Consumer.open<Buffer>(to, { codec: 'bytes', capacity: 4096 }))
  const into = await bridgeStreamToChannel({ nats: nc, stream: 'bpin', channel: to, window: 16 })
  t.teardown(async () => { await into.close() })
  await untilParked(to, 'producer')
  t.ok(into.forwarded < total, `the bridge waits after ${into.forwarded} of ${total}`)
  let inOrder = 0
  for (let i = 1; i <= total; i++) if ((await consumer.receive({ timeout: 20_000 })).readUInt32LE(0) === i) inOrder++
  t.equal(inOrder, total, 'every message, in order')
  t.equal(into.forwarded, total)
})

t.test('a bridge process killed at random points: every message arrives once, in order', async (t) => {
  const server = await startServer(t)
  const from = channelName()
  const to = channelName()
  removeCursorsAtEnd(t, from, to)
  const producer = closeAtEnd(t, Producer.open<Buffer>(from, { codec: 'bytes', capacity: 16384, onPeerDeath: 'wait' }))
  const consumer = closeAtEnd(t, Consumer.open<Buffer>(to, { codec: 'bytes', capacity: 16384, onPeerDeath: 'wait' }))
  ensureCompiled()
  const fixture = path.join(__dirname, 'fixtures', 'bridge.js')
  let child: ReturnType<typeof fork> | undefined
  t.teardown(() => { child?.kill('SIGKILL') })
  async function startBridge (): Promise<void> {
    child = fork(fixture, [server.url, 'crash', from, to], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const c = child
    await new Promise<void>((resolve, reject) => {
      c.once('message', () => { resolve() })
      c.once('exit', (code) => { reject(new Error(`the bridge exited with ${String(code)} before it was ready`)) })
    })
  }
  async function killBridge (): Promise<void> {
    const c = child
    if (c === undefined || c.exitCode !== null) return
    const exited = new Promise((resolve) => c.once('exit', resolve))
    c.kill('SIGKILL')
    await exited
  }

  const total = 2000
  const prng = new Prng(16)
  const sending = (async () => { for (let i = 1; i <= total; i++) await producer.send(message(i, prng.range(8, 1500))) })()
  await startBridge()
  let restarts = 0
  let duplicates = 0
  let received = 0
  let nextKill = prng.range(50, 400)
  while (received < total) {
    const m = await consumer.receive({ timeout: 60_000 })
    const i = m.readUInt32LE(0)
    if (i <= received) { duplicates++; continue }
    if (i !== received + 1) { t.fail(`message ${received + 1} was skipped: ${i} came`); break }
    received = i
    if (received >= nextKill && received < total) {
      await killBridge()
      restarts++
      nextKill = received + prng.range(50, 400)
      await startBridge()
    }
  }
  await sending
  await killBridge()
  const nc = await natsConnection(t, server.url)
  t.equal((await (await jetstreamManager(nc)).streams.info('crash')).state.messages, total, 'the stream holds each message once')
  t.equal(duplicates, 0, `${total} messages, ${restarts} bridge kills, ${duplicates} duplicates`)
  t.ok(restarts >= 3, `the bridge was killed ${restarts} times`)
})

leavesNothingInDevShm(t)
