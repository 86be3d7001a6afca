/**
 * Services across hosts against a real nats-server: one serve() answers
 * local and NATS clients; errors keep their codes; a client survives a
 * server restart.
 */
import t, { type Test } from 'tap'
import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node'

import { connect as connectLocal } from '../../lib/index'
import { connect, serve } from '../../lib/nats/index'
import { startServer } from '../support/nats-server'
import { channelName, leavesNothingInDevShm } from '../support/shm'
import { rejection } from '../support/peers'

async function natsConnection (t: Test, url: string): Promise<NatsConnection> {
  const nc = await natsConnect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 100 })
  t.teardown(async () => { await nc.close() })
  return nc
}

interface Req { op: 'add' | 'fail' | 'hang', a?: number, b?: number }

function handler (req: Req, ctx: { signal: AbortSignal }): number | Promise<number> {
  if (req.op === 'fail') throw Object.assign(new RangeError('no such thing'), { code: 'E_THING' })
  if (req.op === 'hang') return new Promise((_resolve, reject) => { ctx.signal.addEventListener('abort', () => { reject(new Error('closed')) }) })
  return (req.a ?? 0) + (req.b ?? 0)
}

t.test('one serve() answers local clients and clients on another host', async (t) => {
  const server = await startServer(t)
  const serverSide = await natsConnection(t, server.url)
  const remoteSide = await natsConnection(t, server.url)
  const name = channelName()
  const service = serve<Req, number>(name, handler, { nats: serverSide })
  t.teardown(() => { service.close() })
  // The subscription is on the server once a flush of its connection returns (requests come on another connection).
  await serverSide.flush()

  const local = await connectLocal<Req, number>(name)
  t.teardown(() => { local.close() })
  t.equal(await local.request({ op: 'add', a: 1, b: 2 }), 3, 'a local client')

  const preferred = await connect<Req, number>(name, { nats: remoteSide })
  t.teardown(() => { preferred.close() })
  t.equal(preferred.transport, 'shm', 'connect() takes shared memory when the service runs on this machine')
  t.equal(await preferred.request({ op: 'add', a: 2, b: 2 }), 4)

  const remote = await connect<Req, number>(name, { nats: remoteSide, local: 'never' })
  t.equal(remote.transport, 'nats')
  t.equal(await remote.request({ op: 'add', a: 20, b: 22 }), 42, 'a client over NATS')

  const failed = await rejection(remote.request({ op: 'fail' }))
  t.equal(failed.code, 'ERR_REMOTE', 'a handler error is ERR_REMOTE, as locally')
  t.equal(failed.remoteName, 'RangeError')
  t.equal(failed.remoteCode, 'E_THING')
  t.equal(failed.message, 'no such thing')

  t.equal((await rejection(remote.request({ op: 'hang' }, { timeout: 100 }))).code, 'ERR_TIMEOUT', 'a timeout is ERR_TIMEOUT')
  const controller = new AbortController()
  const cancelled = remote.request({ op: 'hang' }, { signal: controller.signal })
  controller.abort()
  t.equal((await rejection(cancelled)).name, 'AbortError', 'a cancelled request is an AbortError')

  service.close()
  await serverSide.flush()
  t.equal((await rejection(remote.request({ op: 'add' }, { timeout: 5000 }))).code, 'ERR_PEER_DEAD', 'no server answering is ERR_PEER_DEAD')
  remote.close()
  t.equal((await rejection(remote.request({ op: 'add' }))).code, 'ERR_CHANNEL_CLOSED', 'a closed client refuses requests')
})

t.test('a client over NATS survives a nats-server restart', async (t) => {
  const server = await startServer(t)
  const serverSide = await natsConnection(t, server.url)
  const remoteSide = await natsConnection(t, server.url)
  const name = channelName()
  const service = serve<Req, number>(name, handler, { nats: serverSide })
  t.teardown(() => { service.close() })
  await serverSide.flush()
  const remote = await connect<Req, number>(name, { nats: remoteSide, local: 'never' })
  t.equal(await remote.request({ op: 'add', a: 1, b: 1 }), 2)

  await server.restart()
  // Both connections reconnect on their own; the first requests may meet a server the service has not re-subscribed on yet.
  let answer: number | undefined
  for (let attempt = 0; answer === undefined && attempt < 100; attempt++) {
    try {
      answer = await remote.request({ op: 'add', a: 3, b: 4 }, { timeout: 1000 })
    } catch (err) {
      if (!['ERR_PEER_DEAD', 'ERR_TIMEOUT'].includes((err as { code: string }).code)) throw err
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  t.equal(answer, 7, 'the same client is answered after the restart')
})

leavesNothingInDevShm(t)
