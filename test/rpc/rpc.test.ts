/**
 * Request/response between real processes: a round trip, many requests in
 * flight answered out of order, handler errors, timeouts and cancellation
 * that leave nothing stale, a server or a client killed with SIGKILL,
 * several clients at once, admission by name (waiting for a server,
 * refusing, reclaiming), and no /dev/shm leftovers.
 * The other processes run test/fixtures/rpc-server.ts and rpc-client.ts.
 */
import { once } from 'node:events'
import t, { type Test } from 'tap'

import { RemoteError, ShmChannelError, connect, serve, type Client, type Server } from '../../lib/index'
import { makeHandler, type Op, type Stats } from '../fixtures/rpc-handler'
import { settledFlag } from '../support/peers'
import { RpcPeer, leavesNothingInDevShm, rejection, serviceLeftovers, serviceName, shmLeftovers, until, within } from '../support/rpc-peer'

/** Generous: the machine running the tests may be loaded. */
const SETTLE_MS = 15_000

/** A server fixture serving a fresh name; returns the name and the peer. */
async function remoteServer (t: Test, options: Record<string, unknown> = {}): Promise<{ name: string, server: RpcPeer }> {
  const name = serviceName()
  const server = new RpcPeer(t, 'rpc-server.ts')
  await server.call('serve', name, options)
  return { name, server }
}

/** Connects from this process; closed when `t` ends. */
async function client (t: Test, name: string, options: Record<string, unknown> = {}): Promise<Client<Op, unknown>> {
  const c = await connect<Op, unknown>(name, { timeout: SETTLE_MS, ...options })
  t.teardown(() => { c.close() })
  return c
}

/** Serves from this process; closed when `t` ends. */
function localServer (t: Test, name: string, stats: Stats, options: Record<string, unknown> = {}): Server<Op, unknown> {
  const server = serve<Op, unknown>(name, makeHandler(stats), options)
  t.teardown(() => { server.close() })
  return server
}

t.test('a request crosses to the server process and its answer comes back', async (t) => {
  const { name, server } = await remoteServer(t)
  const c = await client(t, name)
  t.equal(c.serverPid, server.pid)
  t.same(await c.request({ op: 'echo', value: { hello: 'world', n: [1, 2, 3] } }), { hello: 'world', n: [1, 2, 3] })
  t.same(await c.request({ op: 'whoami' }), { server: server.pid, client: process.pid }, 'the handler sees which client asked')
  t.equal(await c.request({ op: 'nothing' }), undefined, 'a handler may answer undefined, even with the JSON codec')
  t.equal(c.pending, 0)
  c.close()
  await server.end()
})

t.test('1000 requests in flight, answered in reverse order, each matched to its caller', async (t) => {
  const { name, server } = await remoteServer(t)
  const c = await client(t, name)
  const total = 1000
  const finished: number[] = []
  const replies = await within(SETTLE_MS, Promise.all(Array.from({ length: total }, async (_, i) => {
    const reply = await c.request({ op: 'gather', total, i }) as { i: number }
    finished.push(i)
    return reply
  })), '1000 requests')
  t.equal(replies.filter((reply, i) => reply.i === i).length, total, 'every reply went to its own request')
  t.same(finished, Array.from({ length: total }, (_, i) => total - 1 - i), 'they finished in reverse order of sending')
  t.equal(c.pending, 0)
  await server.end()
})

t.test('a failing handler gives the caller a RemoteError with its message and code', async (t) => {
  const { name, server } = await remoteServer(t)
  const c = await client(t, name)

  const thrown = await rejection(c.request({ op: 'fail', message: 'no such key', code: 'E_NOKEY' }))
  t.ok(thrown instanceof RemoteError)
  t.ok(thrown instanceof ShmChannelError)
  t.equal(thrown.code, 'ERR_REMOTE')
  t.equal(thrown.message, 'no such key')
  t.equal(thrown.remoteCode, 'E_NOKEY')
  t.equal(thrown.remoteName, 'Error')

  const rejected = await rejection(c.request({ op: 'fail', message: 'later', code: 42, async: true }))
  t.match(rejected, { code: 'ERR_REMOTE', message: 'later', remoteCode: 42 }, 'a rejected promise too, with a number code')

  const value = await rejection(c.request({ op: 'throwValue', value: 'just a string' }))
  t.match(value, { code: 'ERR_REMOTE', message: 'just a string', remoteCode: undefined }, 'a thrown non-Error becomes its text')

  t.same(await c.request({ op: 'echo', value: 'after' }), 'after', 'the connection is fine afterwards')
  t.equal(c.pending, 0)
  await server.end()
})

t.test('timeouts and cancellation leave nothing stale', async (t) => {
  const { name, server } = await remoteServer(t)
  const c = await client(t, name)

  t.test('a request past its timeout fails with ERR_TIMEOUT; its late reply is dropped', async (t) => {
    // `spin` blocks the server, so its reply is written after the caller gave up.
    const late = await rejection(c.request({ op: 'spin', ms: 300, value: 'stale' }, { timeout: 30 }))
    t.equal(late.code, 'ERR_TIMEOUT')
    t.equal(c.pending, 0, 'the pending map is clean at once')
    // The server answers this only once the spin is over: its stale reply is written by then.
    await server.call('stats')
    t.same(await c.request({ op: 'echo', value: 'fresh' }), 'fresh', 'the next request gets its own answer, not the stale one')
    t.equal(c.pending, 0)
  })

  t.test('the handler of a timed-out request sees its signal abort', async (t) => {
    const before = await server.call<{ cancelled: number }>('stats')
    const err = await rejection(c.request({ op: 'delay', ms: 60_000, value: 'never' }, { timeout: 50 }))
    t.equal(err.code, 'ERR_TIMEOUT')
    let cancelled = before.cancelled
    await within(SETTLE_MS, (async () => {
      while (cancelled === before.cancelled) cancelled = (await server.call<{ cancelled: number }>('stats')).cancelled
    })(), 'the handler noticing the cancellation')
    t.equal(cancelled, before.cancelled + 1)
  })

  t.test('an AbortSignal cancels a request: AbortError, and the server is told', async (t) => {
    const before = await server.call<{ cancelled: number }>('stats')
    const controller = new AbortController()
    const request = c.request({ op: 'delay', ms: 60_000, value: 'never' }, { signal: controller.signal })
    setTimeout(() => { controller.abort() }, 50)
    const err = await rejection(request)
    t.equal(err.name, 'AbortError')
    t.equal(err.code, 'ABORT_ERR')
    t.equal(c.pending, 0)
    let cancelled = before.cancelled
    await within(SETTLE_MS, (async () => {
      while (cancelled === before.cancelled) cancelled = (await server.call<{ cancelled: number }>('stats')).cancelled
    })(), 'the handler noticing the abort')
    t.pass('the handler\'s signal aborted')
    t.equal((await rejection(c.request({ op: 'echo', value: 1 }, { signal: AbortSignal.abort() }))).name, 'AbortError', 'an aborted signal fails at once')
    t.same(await c.request({ op: 'echo', value: 'still fine' }), 'still fine')
    t.equal(c.pending, 0)
  })

  t.test('an idle client with a timed-out request does not keep its process alive', async (t) => {
    const idle = new RpcPeer(t, 'rpc-client.ts')
    await idle.call('connect', name)
    const err = await rejection(idle.call('request', { op: 'delay', ms: 60_000, value: 'never' }, { timeout: 50 }))
    t.equal(err.code, 'ERR_TIMEOUT')
    t.equal(await idle.call('pending'), 0)
    t.same(await idle.end(), { code: 0, signal: null })
  })

  t.test('afterwards the server holds only this process\'s connection', async (t) => {
    let clients = -1
    await within(SETTLE_MS, (async () => {
      while (clients !== 1) clients = (await server.call<{ clients: number }>('stats')).clients
    })(), 'the idle client leaving')
    t.equal(clients, 1)
  })
})

t.test('SIGKILL of the server: pending requests fail with ERR_PEER_DEAD, and its names are reclaimed', async (t) => {
  const { name, server } = await remoteServer(t)
  const c = await client(t, name)
  t.same(await c.request({ op: 'echo', value: 1 }), 1)
  const pending = Array.from({ length: 5 }, async () => await rejection(c.request({ op: 'delay', ms: 60_000, value: 'never' })))
  await until(() => c.pending === 5, SETTLE_MS, 'requests pending')
  const killedAt = Date.now()
  t.same(await server.kill('SIGKILL'), { code: null, signal: 'SIGKILL' })
  const errors = await within(SETTLE_MS, Promise.all(pending), 'the pending requests failing')
  t.ok(Date.now() - killedAt < 10_000, `they failed ${Date.now() - killedAt} ms after the kill`)
  t.same(errors.map((err) => err.code), Array(5).fill('ERR_PEER_DEAD'))
  t.equal(c.pending, 0)
  t.equal((await rejection(c.request({ op: 'echo', value: 2 }))).code, 'ERR_PEER_DEAD', 'later requests fail the same way')
  // The connection closes after the rejections, at the next turn of the event loop.
  await until(() => serviceLeftovers(name).length === 0, SETTLE_MS, 'the names being reclaimed')
  t.pass('the client removed the listener and its channels')
})

t.test('a client with nothing in flight learns that its server is gone: a \'close\' event', async (t) => {
  t.test('the server is SIGKILLed: close with ERR_PEER_DEAD, and the names are reclaimed', async (t) => {
    const { name, server } = await remoteServer(t)
    const c = await client(t, name, { peerCheckInterval: 50 })
    t.same(await c.request({ op: 'echo', value: 1 }), 1)
    t.equal(c.pending, 0, 'nothing in flight')
    const closed = once(c, 'close')
    await server.kill('SIGKILL')
    const [error] = await within(SETTLE_MS, closed, 'the close event')
    t.equal((error as { code?: string }).code, 'ERR_PEER_DEAD')
    t.equal((await rejection(c.request({ op: 'echo', value: 2 }))).code, 'ERR_PEER_DEAD', 'later requests fail the same way')
    await until(() => serviceLeftovers(name).length === 0, SETTLE_MS, 'the names being reclaimed')
    t.pass('the client removed the listener and its channels')
  })

  t.test('the server closes: close with ERR_CHANNEL_CLOSED; closing the client after emits nothing more', async (t) => {
    const name = serviceName()
    const server = localServer(t, name, { handled: 0, cancelled: 0 })
    const c = await client(t, name, { peerCheckInterval: 50 })
    t.same(await c.request({ op: 'echo', value: 1 }), 1)
    const events: unknown[] = []
    c.on('close', (error) => { events.push((error as { code?: string } | undefined)?.code) })
    const closed = once(c, 'close')
    server.close()
    await within(SETTLE_MS, closed, 'the close event')
    c.close()
    t.same(events, ['ERR_CHANNEL_CLOSED'])
  })

  t.test('close() emits close with no error', async (t) => {
    const name = serviceName()
    localServer(t, name, { handled: 0, cancelled: 0 })
    const c = await client(t, name)
    const closed = once(c, 'close')
    c.close()
    t.same(await closed, [undefined])
  })
})

t.test('the server as a resource', async (t) => {
  t.test('signal: aborting it closes the server; an aborted one refuses to start', async (t) => {
    const name = serviceName()
    const controller = new AbortController()
    const server = serve(name, () => 1, { signal: controller.signal })
    t.teardown(() => { server.close() })
    const c = await client(t, name)
    t.equal(await c.request({ op: 'echo', value: 'anything' }), 1)
    controller.abort()
    t.equal(server.closed, true)
    t.same(serviceLeftovers(name).filter((entry) => entry === name), [], 'the listener name is gone')
    t.throws(() => serve(serviceName(), () => 1, { signal: controller.signal }), { name: 'AbortError' })
    t.throws(() => serve(serviceName(), () => 1, { signal: 'soon' as never }), { code: 'ERR_INVALID_ARG_TYPE' })
  })

  t.test('unref()ed, a server still admits and answers clients; ref() undoes it', async (t) => {
    const name = serviceName()
    const server = localServer(t, name, { handled: 0, cancelled: 0 })
    t.equal(server.unref(), server)
    const a = await client(t, name)
    t.same(await a.request({ op: 'echo', value: 'unrefed' }), 'unrefed')
    t.equal(server.ref(), server)
    const b = await client(t, name)
    t.same(await b.request({ op: 'echo', value: 'refed again' }), 'refed again')
  })

  t.test('an unref()ed server does not keep its process alive', async (t) => {
    const name = serviceName()
    const server = new RpcPeer(t, 'rpc-unref.ts', [name])
    t.same(await server.event('serving'), { name: `/${name}` })
    t.same(await server.exited, { code: 0, signal: null }, 'the process ended on its own, its server open')
    t.same(serviceLeftovers(name), [], 'and closed it on the way out')
  })

  t.test('a server, client and duplex bound with `using` close at the end of their scope', async (t) => {
    const name = serviceName()
    let seen: { server?: Server<unknown, unknown>, client?: Client<unknown, unknown> } = {}
    {
      using server = serve(name, (value: unknown) => value)
      using c = await connect(name, { timeout: SETTLE_MS })
      t.equal(await c.request(7), 7)
      seen = { server, client: c }
    }
    t.equal(seen.server?.closed, true)
    t.equal(seen.client?.closed, true)
    await until(() => serviceLeftovers(name).length === 0, SETTLE_MS, 'the names being removed')
    t.pass('nothing of the service is left')
  })
})

t.test('SIGKILL of a client: the server drops it and goes on serving the others', async (t) => {
  const name = serviceName()
  const stats: Stats = { handled: 0, cancelled: 0 }
  const server = localServer(t, name, stats)
  const disconnects: Array<{ pid: number, code: string | undefined }> = []
  server.on('disconnect', (client, err) => { disconnects.push({ pid: client.pid, code: (err as ShmChannelError | undefined)?.code }) })

  const doomed = new RpcPeer(t, 'rpc-client.ts')
  const survivor = new RpcPeer(t, 'rpc-client.ts')
  await doomed.call('connect', name)
  await survivor.call('connect', name)
  t.equal(server.clients.length, 2)
  // The doomed client dies with a request of its own in the server's hands.
  await doomed.call('startRequests', 1, { op: 'delay', ms: 60_000, value: 'never' })
  await until(() => stats.handled === 1, SETTLE_MS, 'the request reaching the server')
  const doomedChannels = shmLeftovers(`${name}.${doomed.pid}.`)
  t.equal(doomedChannels.length, 2, 'the doomed client has its two channels')

  await doomed.kill('SIGKILL')
  await within(SETTLE_MS, until(() => disconnects.length === 1, SETTLE_MS, 'the disconnect'), 'the server noticing')
  t.same(disconnects, [{ pid: doomed.pid, code: 'ERR_PEER_DEAD' }])
  t.equal(stats.cancelled, 1, 'its running handler was cancelled')
  t.same(shmLeftovers(`${name}.${doomed.pid}.`), [], 'its channel names were removed')
  t.same(server.clients.map((c) => c.pid), [survivor.pid])

  t.same(await survivor.call('burst', 500, 'survivor'), { matched: 500, pending: 0 }, 'the other client is still served')
  await survivor.end()
  await until(() => disconnects.length === 2, SETTLE_MS, 'the survivor leaving')
  t.same(disconnects[1], { pid: survivor.pid, code: undefined }, 'a client that closes leaves without an error')
})

t.test('requests and replies many times the ring go in fragments, several at once, in both directions', async (t) => {
  const name = serviceName()
  const server = localServer(t, name, { handled: 0, cancelled: 0 }, { capacity: 4096 })
  const c = await client(t, name)
  const values = [0, 1, 2].map((k) => `${k}`.repeat(256 * 1024 + k))
  const replies = await within(SETTLE_MS, Promise.all(values.map(async (value) => await c.request({ op: 'echo', value }))), 'the large replies')
  t.ok(replies.every((reply, k) => reply === values[k]), 'each reply is its request\'s value, whole')
  t.same(await c.request({ op: 'echo', value: 'small after' }), 'small after', 'the connection goes on')
  t.equal(server.clients.length, 1)
})

t.test('three clients at once, each served its own answers', async (t) => {
  const name = serviceName()
  const stats: Stats = { handled: 0, cancelled: 0 }
  const server = localServer(t, name, stats)
  const peers = [0, 1, 2].map(() => new RpcPeer(t, 'rpc-client.ts'))
  await Promise.all(peers.map(async (peer) => await peer.call('connect', name)))
  t.equal(server.clients.length, 3)
  const results = await within(SETTLE_MS * 2, Promise.all(peers.map(async (peer, k) => await peer.call('burst', 2000, `client-${k}`))), 'three bursts')
  t.same(results, [0, 1, 2].map(() => ({ matched: 2000, pending: 0 })))
  t.equal(stats.handled, 6000)
  await Promise.all(peers.map(async (peer) => await peer.end()))
  await until(() => server.clients.length === 0, SETTLE_MS, 'the clients leaving')
  t.pass('all three left')
})

t.test('admission by name', async (t) => {
  t.test('connect waits for a server that comes later', async (t) => {
    const name = serviceName()
    const connecting = connect<Op, unknown>(name, { timeout: SETTLE_MS })
    // connect() looked for the listener within the call and found none: it is waiting now.
    const pending = settledFlag(connecting)
    await new Promise((resolve) => setImmediate(resolve))
    t.equal(pending(), false, 'still connecting while there is no server')
    const server = new RpcPeer(t, 'rpc-server.ts')
    await server.call('serve', name)
    const c = await within(SETTLE_MS, connecting, 'connect')
    t.same(await c.request({ op: 'echo', value: 'late server' }), 'late server')
    c.close()
    t.same(await server.end(), { code: 0, signal: null }, server.stderr)
  })

  t.test('connect with no server fails with ERR_TIMEOUT', async (t) => {
    const err = await rejection(connect(serviceName(), { timeout: 100 }))
    t.equal(err.code, 'ERR_TIMEOUT')
  })

  t.test('connect gives up on an abort signal', async (t) => {
    const err = await rejection(connect(serviceName(), { signal: AbortSignal.timeout(50) }))
    t.equal(err.name, 'AbortError')
  })

  t.test('a second server on a live name gets ERR_END_TAKEN; a dead server\'s listener is reclaimed', async (t) => {
    const { name, server } = await remoteServer(t)
    t.equal((await rejection(Promise.resolve().then(() => serve(name, () => 1)))).code, 'ERR_END_TAKEN')
    await server.kill('SIGKILL')
    t.same(serviceLeftovers(name), [name], 'the dead server left its listener')
    const stats: Stats = { handled: 0, cancelled: 0 }
    localServer(t, name, stats)
    const c = await client(t, name)
    t.same(await c.request({ op: 'whoami' }), { server: process.pid, client: process.pid }, 'the new server answers')
  })

  t.test('clients over maxClients are refused with ERR_BUSY', async (t) => {
    const name = serviceName()
    localServer(t, name, { handled: 0, cancelled: 0 }, { maxClients: 1 })
    await client(t, name)
    t.equal((await rejection(connect(name, { timeout: SETTLE_MS }))).code, 'ERR_BUSY')
    t.same(serviceLeftovers(name).length, 3, 'the refused client removed its channels (the listener and the admitted client\'s two remain)')
  })

  t.test('the codecs must agree', async (t) => {
    const name = serviceName()
    localServer(t, name, { handled: 0, cancelled: 0 }, { codec: 'structured' })
    const err = await rejection(connect(name, { timeout: SETTLE_MS }))
    t.equal(err.code, 'ERR_INVALID_ARG_VALUE')
    const c = await client(t, name, { codec: 'structured' })
    const value = new Map<string, unknown>([['when', new Date(0)], ['big', 2n ** 70n]])
    t.same(await c.request({ op: 'echo', value }), value, 'structured values cross whole')
  })

  t.test('a client killed half way through connecting gives its slot back', async (t) => {
    const name = serviceName()
    const server = localServer(t, name, { handled: 0, cancelled: 0 }, { backlog: 1 })
    const stuck = new RpcPeer(t, 'rpc-client.ts')
    await stuck.call('holdSlot', name)
    t.equal((await rejection(connect(name, { timeout: 300 }))).code, 'ERR_TIMEOUT', 'the only slot is taken')
    await stuck.kill('SIGKILL')
    const c = await client(t, name) // the server's sweep frees the slot within a second or so
    t.same(await c.request({ op: 'echo', value: 'in' }), 'in')
    await until(() => shmLeftovers(`${name}.${stuck.pid}.`).length === 0, SETTLE_MS, 'the stuck client\'s channels being removed')
    t.equal(server.clients.length, 1)
  })

  t.test('closing: the server\'s close fails pending requests; the client\'s close too', async (t) => {
    const name = serviceName()
    const stats = { handled: 0, cancelled: 0 }
    const server = localServer(t, name, stats)
    const a = await client(t, name)
    const b = await client(t, name)
    const held = rejection(a.request({ op: 'delay', ms: 60_000, value: 'never' }))
    const own = rejection(b.request({ op: 'delay', ms: 60_000, value: 'never' }))
    await until(() => stats.handled === 2, SETTLE_MS, 'both requests in their handlers')
    b.close()
    t.equal((await own).code, 'ERR_CHANNEL_CLOSED', 'a client closing fails its own pending requests')
    await until(() => server.clients.length === 1, SETTLE_MS, 'the server seeing b leave')
    server.close()
    t.equal((await within(SETTLE_MS, held, 'the held request')).code, 'ERR_CHANNEL_CLOSED')
    t.equal((await rejection(a.request({ op: 'echo', value: 1 }))).code, 'ERR_CHANNEL_CLOSED')
    t.same(serviceLeftovers(name), [], 'nothing of the service is left')
  })
})

t.test('bad arguments throw naming the option', async (t) => {
  t.throws(() => serve(serviceName(), 'not a function' as never), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => serve(serviceName(), () => 1, { backlog: 0 }), { code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => serve(serviceName(), () => 1, { capacity: 5000 }), { code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => serve('x'.repeat(240), () => 1), { code: 'ERR_INVALID_ARG_VALUE' })
  t.equal((await rejection(connect(serviceName(), { timeout: -1 }))).code, 'ERR_OUT_OF_RANGE')
})

leavesNothingInDevShm(t)
