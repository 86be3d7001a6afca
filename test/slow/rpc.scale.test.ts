/**
 * A server with a thousand clients in several processes: killed clients
 * are dropped and their names removed while the others go on; a killed
 * server fails every pending request with ERR_PEER_DEAD within a second,
 * and nothing of it stays in /dev/shm after `shm-channel gc`.
 */
import fs from 'node:fs'
import t, { type Test } from 'tap'

import { serve } from '../../lib/index'
import { main } from '../../lib/tools/cli'
import { RpcPeer, leavesNothingInDevShm, serviceLeftovers, serviceName, until } from '../support/rpc-peer'

const PROCESSES = 4
const PER_PROCESS = 250
const SETTLE_MS = 120_000

function holders (t: Test): RpcPeer[] {
  return Array.from({ length: PROCESSES }, () => new RpcPeer(t, '../slow/rpc-many-clients.ts'))
}

t.test('1,000 clients in 4 processes; two processes SIGKILLed: the server frees their connections and names, the others are still served', async (t) => {
  const name = serviceName()
  const server = serve(name, (value: unknown) => (value as { value: unknown }).value)
  t.teardown(() => { server.close() })
  const peers = holders(t)
  const pids = (await Promise.all(peers.map(async (peer) => await peer.call('connect', name, PER_PROCESS)))) as Array<{ pid: number }>
  t.equal(server.clients.length, PROCESSES * PER_PROCESS, 'all connected')
  t.same(await Promise.all(peers.map(async (peer) => await peer.call('requestAll', 'first'))), Array(PROCESSES).fill(PER_PROCESS))
  t.equal(serviceLeftovers(name).length, 1 + 2 * PROCESSES * PER_PROCESS, 'the listener and two channels per connection')

  await Promise.all(peers.slice(0, 2).map(async (peer) => await peer.kill('SIGKILL')))
  await until(() => server.clients.length === (PROCESSES - 2) * PER_PROCESS, SETTLE_MS, 'the server dropping the dead clients')
  const dead = pids.slice(0, 2).map(({ pid }) => `${name}.${pid}.`)
  t.same(serviceLeftovers(name).filter((entry) => dead.some((prefix) => entry.startsWith(prefix))), [], 'their channels were removed')
  t.same(await Promise.all(peers.slice(2).map(async (peer) => await peer.call('requestAll', 'second'))), Array(PROCESSES - 2).fill(PER_PROCESS), 'the survivors are served')

  await Promise.all(peers.slice(2).map(async (peer) => await peer.end()))
  await until(() => server.clients.length === 0, SETTLE_MS, 'the survivors leaving')
  server.close()
  t.same(serviceLeftovers(name), [])
})

t.test('a server SIGKILLed with 1,000 clients connected: every pending request fails with ERR_PEER_DEAD, and gc leaves none of its names', async (t) => {
  const name = serviceName()
  const server = new RpcPeer(t, 'rpc-server.ts')
  await server.call('serve', name)
  const peers = holders(t)
  await Promise.all(peers.map(async (peer) => await peer.call('connect', name, PER_PROCESS)))
  await Promise.all(peers.map(async (peer) => await peer.call('holdAll')))
  const deadline = Date.now() + SETTLE_MS
  while (!(await Promise.all(peers.map(async (peer) => await peer.call('pending') as number))).every((n) => n === PER_PROCESS)) {
    if (Date.now() > deadline) throw new Error('not every request became pending')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const killedAt = Date.now()
  t.same(await server.kill('SIGKILL'), { code: null, signal: 'SIGKILL' })
  const outcomes = (await Promise.all(peers.map(async (peer) => await peer.call('outcomes')))).flat() as Array<{ code: unknown, at: number }>
  t.equal(outcomes.length, PROCESSES * PER_PROCESS)
  t.same([...new Set(outcomes.map((o) => o.code))], ['ERR_PEER_DEAD'], 'every one failed with ERR_PEER_DEAD')
  // The bound, from the kill: each client process checks its server
  // at least every 200 ms while requests are pending, and fails every
  // request before it closes the connections.
  const last = Math.max(...outcomes.map((o) => o.at)) - killedAt
  t.ok(last <= 1000, `the last failed ${last} ms after the kill (at most 1,000)`)
  await Promise.all(peers.map(async (peer) => await peer.end()))
  const out = { write: () => {} }
  t.equal(await main(['gc', '--prefix', name], { stdout: out, stderr: out }), 0)
  t.same(fs.readdirSync('/dev/shm').filter((entry) => entry === name || entry.startsWith(`${name}.`)), [], '/dev/shm holds none of its names')
})

leavesNothingInDevShm(t)
