/**
 * A channel bridge over a three-server NATS cluster on loopback (routes
 * between them, the stream replicated three times): servers are killed
 * (SIGKILL) one at a time while the bridge runs, the stream's leader
 * first; nothing is lost or doubled, and the bridge reconnects to the
 * servers that remain.
 */
import { fork } from 'node:child_process'
import path from 'node:path'
import t from 'tap'
import { connect } from '@nats-io/transport-node'
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream'

import { Consumer, Producer } from '../../lib/index'
import { startCluster, type NatsServer } from '../support/nats-server'
import { ensureCompiled } from '../support/dist'
import { channelName, closeAtEnd, leavesNothingInDevShm, unlinkIfPresent } from '../support/shm'

async function addStream (jsm: JetStreamManager, name: string): Promise<void> {
  // A fresh cluster elects its JetStream meta leader first: until then, adding a stream fails.
  for (let attempt = 0; ; attempt++) {
    try {
      await jsm.streams.add({ name, subjects: [name], num_replicas: 3 })
      return
    } catch (err) {
      if (attempt > 100) throw err
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  }
}

/** Stream info, asked again while a restarted server's cluster elects the stream's leader. */
async function streamInfo (jsm: JetStreamManager, name: string): ReturnType<JetStreamManager['streams']['info']> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await jsm.streams.info(name)
    } catch (err) {
      if (attempt > 50) throw err
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  }
}

t.test('servers of the cluster killed under a running bridge: every message once, in order', async (t) => {
  ensureCompiled()
  const servers = await startCluster(t)
  const urls = servers.map((s) => s.url).join(',')
  const nc = await connect({ servers: urls.split(','), maxReconnectAttempts: -1, reconnectTimeWait: 100 })
  t.teardown(async () => { await nc.close() })
  const jsm = await jetstreamManager(nc, { checkAPI: false })
  await addStream(jsm, 'cluster')

  const from = channelName()
  const to = channelName()
  t.teardown(() => { for (const c of [from, to]) { unlinkIfPresent(`${c}.nats-out`); unlinkIfPresent(`${c}.nats-in`); unlinkIfPresent(c) } })
  const producer = closeAtEnd(t, Producer.open<Buffer>(from, { codec: 'bytes', capacity: 16384, onPeerDeath: 'wait' }))
  const consumer = closeAtEnd(t, Consumer.open<Buffer>(to, { codec: 'bytes', capacity: 16384, onPeerDeath: 'wait' }))
  const bridge = fork(path.join(__dirname, '..', 'nats', 'fixtures', 'bridge.js'), [urls, 'cluster', from, to], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  t.teardown(() => { bridge.kill('SIGKILL') })
  await new Promise<void>((resolve, reject) => {
    bridge.once('message', () => { resolve() })
    bridge.once('exit', (code) => { reject(new Error(`the bridge exited with ${String(code)}`)) })
  })

  const total = 20_000
  const sending = (async () => {
    for (let i = 1; i <= total; i++) {
      const b = Buffer.alloc(64, i & 0xff)
      b.writeUInt32LE(i, 0)
      await producer.send(b)
    }
  })()
  const killAt = [total / 4, total / 2]
  const killed: NatsServer[] = []
  let received = 0
  let duplicates = 0
  while (received < total) {
    let m: Buffer
    try {
      m = await consumer.receive({ timeout: 60_000 })
    } catch (err) {
      t.comment(`stalled after ${received} received; the stream holds ${(await streamInfo(jsm, 'cluster')).state.messages}`)
      throw err
    }
    const i = m.readUInt32LE(0)
    if (i <= received) { duplicates++; continue }
    if (i !== received + 1) { t.fail(`message ${received + 1} was skipped: ${i} came`); break }
    received = i
    if (received === killAt[killed.length]) {
      // The stream's leader first, then (once it is back) another server.
      const leader = (await streamInfo(jsm, 'cluster')).cluster?.leader
      const victim = servers.find((s) => s.spec.name === leader && !killed.includes(s)) ?? servers.find((s) => !killed.includes(s)) as NatsServer
      t.comment(`killing ${victim.spec.name} at ${received}`)
      await victim.kill()
      killed.push(victim)
      if (killed.length > 1) await killed[0].start()
    }
  }
  await sending
  t.equal(duplicates, 0, `${total} messages, ${killed.length} servers killed, ${duplicates} duplicates`)
  t.equal((await streamInfo(jsm, 'cluster')).state.messages, total, 'the stream holds each message once')
})

leavesNothingInDevShm(t)
