/**
 * Replies at scale (lib/rpc/client.ts, Replies): the clients of one process
 * wait for their replies through one waiter on the listener's reply bell,
 * which the server rings once per pass. Many clients in several processes,
 * each with a request in flight all the time, all get their own replies; a
 * reply too large for the ring (the connection answering without ringing)
 * still reaches every client of a process at once.
 */
import t from 'tap'

import { connect, serve, type Client } from '../../lib/index'
import { RpcPeer, leavesNothingInDevShm, serviceName } from '../support/rpc-peer'

t.test('48 clients in 3 processes, each making 200 requests one after the other, all at once: every reply is the client\'s own', async (t) => {
  const PROCESSES = 3
  const PER_PROCESS = 16
  const ROUNDS = 200
  const name = serviceName()
  const server = serve(name, (request: unknown) => (request as { value: unknown }).value)
  t.teardown(() => { server.close() })
  const peers = Array.from({ length: PROCESSES }, () => new RpcPeer(t, '../slow/rpc-many-clients.ts'))
  await Promise.all(peers.map(async (peer) => await peer.call('connect', name, PER_PROCESS)))
  t.equal(server.clients.length, PROCESSES * PER_PROCESS, 'all connected')
  const right = await Promise.all(peers.map(async (peer) => await peer.call('requestRounds', 'r', ROUNDS)))
  t.same(right, Array(PROCESSES).fill(PER_PROCESS * ROUNDS), 'every request answered with its own value')
  // A second burst after the reply waiters ended (nothing pending): they start again.
  t.same(await Promise.all(peers.map(async (peer) => await peer.call('requestRounds', 's', 5))), Array(PROCESSES).fill(PER_PROCESS * 5))
  await Promise.all(peers.map(async (peer) => await peer.call('close')))
})

t.test('replies larger than the ring, to 8 clients of one process at once: each client follows its channel until the reply is out', async (t) => {
  const name = serviceName()
  const SIZE = 300_000
  // 4 KiB rings: each reply goes in some 75 fragments, published as the client reads.
  const server = serve(name, (request: unknown) => 'x'.repeat(SIZE) + String(request), { capacity: 4096 })
  t.teardown(() => { server.close() })
  const clients: Array<Client<number, string>> = []
  for (let i = 0; i < 8; i++) clients.push(await connect<number, string>(name))
  t.teardown(() => { for (const client of clients) client.close() })
  for (let round = 0; round < 3; round++) {
    // The timeout detects a reply that waits for the reply waiter's slices (a lost wake-up), not a speed.
    const replies = await Promise.all(clients.map(async (client, i) => await client.request(i, { timeout: 20_000 })))
    t.same(replies.map((reply) => reply.length), clients.map((_, i) => SIZE + String(i).length), `round ${round}: every reply whole`)
    t.ok(replies.every((reply, i) => reply.endsWith(String(i))), `round ${round}: each client got its own`)
  }
})

leavesNothingInDevShm(t)
