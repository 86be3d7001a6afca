/**
 * A client that opts into `reconnect` rides out a server restart under the
 * same name: requests in flight at the death fail with ERR_PEER_DEAD and are
 * never sent again; the next request connects to the new server. Servers
 * are real processes (test/fixtures/rpc-server.ts), killed with SIGKILL.
 */
import { once } from 'node:events'
import t, { type Test } from 'tap'

import { connect, type Client } from '../../lib/index'
import type { Op } from '../fixtures/rpc-handler'
import { Prng } from '../support/prng'
import { RpcPeer, leavesNothingInDevShm, rejection, serviceName, until, within } from '../support/rpc-peer'

/** Generous: the machine running the tests may be loaded. */
const SETTLE_MS = 15_000

async function startServer (t: Test, name: string): Promise<RpcPeer> {
  const server = new RpcPeer(t, 'rpc-server.ts')
  await server.call('serve', name)
  return server
}

async function reconnectingClient (t: Test, name: string): Promise<Client<Op, unknown>> {
  const c = await connect<Op, unknown>(name, { timeout: SETTLE_MS, peerCheckInterval: 50, reconnect: true })
  t.teardown(() => { c.close() })
  return c
}

async function handled (server: RpcPeer): Promise<number> {
  return (await server.call<{ handled: number }>('stats')).handled
}

t.test('the server is killed and restarted: in-flight requests fail once, the next request reaches the new server', async (t) => {
  const name = serviceName()
  const first = await startServer(t, name)
  const c = await reconnectingClient(t, name)
  t.same(await c.request({ op: 'whoami' }), { server: first.pid, client: process.pid })
  const inFlight = Array.from({ length: 3 }, async () => await rejection(c.request({ op: 'delay', ms: 60_000, value: 'never' })))
  await until(() => c.pending === 3, SETTLE_MS, 'requests pending')
  const disconnected = once(c, 'disconnect')
  const closes: unknown[] = []
  c.on('close', (err) => { closes.push(err) })
  await first.kill('SIGKILL')
  const errors = await within(SETTLE_MS, Promise.all(inFlight), 'the in-flight requests failing')
  t.same(errors.map((err) => err.code), ['ERR_PEER_DEAD', 'ERR_PEER_DEAD', 'ERR_PEER_DEAD'], 'in flight at the death: ERR_PEER_DEAD')
  const [error] = await within(SETTLE_MS, disconnected, 'the disconnect event')
  t.equal((error as { code?: string }).code, 'ERR_PEER_DEAD')
  t.equal(c.closed, false, 'the client stays open')

  const second = await startServer(t, name)
  t.same(await within(SETTLE_MS, c.request({ op: 'whoami' }), 'the request after the restart'), { server: second.pid, client: process.pid })
  t.equal(c.serverPid, second.pid)
  t.equal(await handled(second), 1, 'the new server handled that request only: nothing was sent again')
  t.same(await c.request({ op: 'echo', value: [1, 2] }), [1, 2])

  c.close()
  t.same(closes, [undefined], "'close' comes once, from close()")
  t.equal((await rejection(c.request({ op: 'echo', value: 3 }))).code, 'ERR_CHANNEL_CLOSED')
  await second.end()
})

t.test('a request made while no server serves the name waits, within its own timeout, for one to come', async (t) => {
  const name = serviceName()
  const first = await startServer(t, name)
  const c = await reconnectingClient(t, name)
  t.equal(await c.request({ op: 'echo', value: 1 }), 1)
  const disconnected = once(c, 'disconnect')
  await first.kill('SIGKILL')
  await within(SETTLE_MS, disconnected, 'the disconnect event')

  t.equal((await rejection(c.request({ op: 'echo', value: 'short' }, { timeout: 100 }))).code, 'ERR_TIMEOUT', 'no server within the request\'s timeout')
  const aborted = new AbortController()
  const cancelled = rejection(c.request({ op: 'echo', value: 'cancelled' }, { signal: aborted.signal }))
  aborted.abort()
  t.equal((await cancelled).name, 'AbortError', 'its signal ends the wait too')

  const waiting = c.request({ op: 'echo', value: 'waited' })
  const second = await startServer(t, name)
  t.equal(await within(SETTLE_MS, waiting, 'the waiting request'), 'waited', 'answered by the server that came')
  t.equal(c.serverPid, second.pid)
  c.close()
  await second.end()
})

t.test('without reconnect, the client stays broken: a restarted server is not reached', async (t) => {
  const name = serviceName()
  const first = await startServer(t, name)
  const c = await connect<Op, unknown>(name, { timeout: SETTLE_MS, peerCheckInterval: 50 })
  t.teardown(() => { c.close() })
  const closed = once(c, 'close')
  await first.kill('SIGKILL')
  await within(SETTLE_MS, closed, 'the close event')
  const second = await startServer(t, name)
  t.equal((await rejection(c.request({ op: 'echo', value: 1 }))).code, 'ERR_PEER_DEAD')
  t.equal(await handled(second), 0)
  c.close()
  await second.end()
})

t.test('servers killed under load: every request is answered once, with its own value, or fails with ERR_PEER_DEAD; none hangs', async (t) => {
  const name = serviceName()
  const random = new Prng(20261202)
  let server = await startServer(t, name)
  const client = await reconnectingClient(t, name)
  const answered = new Set<number>()
  let failed = 0
  let issued = 0
  const state = { stop: false }
  const lanes = Array.from({ length: 8 }, async () => {
    while (!state.stop) {
      const i = issued++
      try {
        const value = await within(SETTLE_MS, client.request({ op: 'echo', value: i }), `request ${i}`) as number
        if (value !== i) t.fail(`request ${i} was answered ${value}`)
        if (answered.has(i)) t.fail(`request ${i} was answered twice`)
        answered.add(i)
      } catch (err) {
        if ((err as { code?: string }).code !== 'ERR_PEER_DEAD') throw err
        failed++
      }
    }
  })
  const restarts = 5
  for (let k = 0; k < restarts; k++) {
    const target = answered.size + 200 + random.int(800)
    await until(() => answered.size >= target, SETTLE_MS, `${target} answers`)
    await server.kill('SIGKILL')
    server = await startServer(t, name)
  }
  const target = answered.size + 200
  await until(() => answered.size >= target, SETTLE_MS, 'answers from the last server')
  state.stop = true
  await within(SETTLE_MS, Promise.all(lanes), 'the lanes finishing')
  t.equal(answered.size + failed, issued, 'every request settled')
  t.ok(answered.size > restarts * 200, `${answered.size} answered`)
  t.comment(`${restarts} restarts: ${issued} requests, ${answered.size} answered once each, ${failed} failed with ERR_PEER_DEAD (in flight at a death), none answered twice`)
  client.close()
  await server.end()
})

leavesNothingInDevShm(t)
