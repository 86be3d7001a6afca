/**
 * Duplex: two channels opened by one call, one each way, in one process and
 * between two.
 */
import { fork } from 'node:child_process'
import path from 'node:path'
import t from 'tap'

import { Duplex } from '../../lib/index'
import { leavesNothingInDevShm, serviceLeftovers, serviceName, within } from '../support/rpc-peer'

t.test('the listening side and the connecting side talk both ways, whichever opens first', async (t) => {
  for (const first of ['listen', 'connect'] as const) {
    const name = serviceName()
    const open = { listen: () => Duplex.listen<string, string>(name), connect: () => Duplex.connect<string, string>(name) }
    const a = open[first]()
    const b = open[first === 'listen' ? 'connect' : 'listen']()
    t.same(serviceLeftovers(name), [`${name}.down`, `${name}.up`], 'two channels, named for their direction')
    await a.send('to b')
    t.equal(await b.receive(), 'to b')
    t.ok(b.trySend('to a'))
    t.equal(a.tryReceive(), 'to a')
    t.equal(a.name, name)
    a.close()
    t.equal(a.closed, true)
    const rest: string[] = []
    await b.send('ignored').catch((err: { code?: string }) => { rest.push(err.code ?? '') })
    t.same(rest, ['ERR_CHANNEL_CLOSED'], `(${first} first) sending to a closed side fails`)
    b.close()
    t.same(serviceLeftovers(name), [], 'the last side out removed both names')
  }
})

t.test('between two processes: a request stream and its answers, until the listener closes', async (t) => {
  const name = serviceName()
  const duplex = Duplex.listen<number, number>(name)
  const child = fork(path.join(__dirname, '..', 'fixtures', 'duplex-echo.ts'), [name], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  t.teardown(() => { child.kill('SIGKILL') })
  const answers: number[] = []
  const reading = (async () => { for await (const n of duplex) { answers.push(n); if (answers.length === 1000) return } })()
  for (let i = 0; i < 1000; i++) await duplex.send(i)
  await within(30_000, reading, 'the answers')
  t.same(answers, Array.from({ length: 1000 }, (_, i) => i * 2), 'all answered, in order')
  duplex.close()
  t.equal(await within(30_000, exited, 'the other side ending'), 0)
  t.same(serviceLeftovers(name), [])
})

t.test('Duplex.unlink removes both names and skips missing ones', async (t) => {
  const name = serviceName()
  const lone = Duplex.listen(name)
  lone.close() // the peer never came: the names stay for it
  t.same(serviceLeftovers(name), [`${name}.down`, `${name}.up`])
  Duplex.unlink(name)
  t.same(serviceLeftovers(name), [])
  Duplex.unlink(name)
  t.pass('a second unlink is harmless')
})

leavesNothingInDevShm(t)
