/**
 * The store across real processes: concurrent writers on disjoint and
 * shared keys, visibility as soon as a set returns, watches, the writer
 * lock taken over from a holder that was SIGKILLed, and the owner policy.
 */
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'

import { Store } from '../../lib/index'
import { Peer, thrown, within } from '../support/peers'
import { closeAtEnd, leavesNothingInDevShm, tempDir } from '../support/shm'

interface Tagged { writer: string, i: number }

/** The last i in [0, n) with i % keyCount === k. */
function lastIndex (n: number, keyCount: number, k: number): number {
  return n - 1 - ((n - 1 - k) % keyCount + keyCount) % keyCount
}

t.test('three processes writing disjoint and shared keys at once all end with the same state, the last writer winning per key', async (t) => {
  const file = path.join(tempDir(t), 'shared.kv')
  const writers = ['w0', 'w1', 'w2'].map((name) => ({ name, peer: new Peer(t, 'kv-peer.ts') }))
  for (const { peer } of writers) t.same(await peer.call('open', file, { compactMinSize: 64 * 1024 }), { opened: true })
  const n = 3000
  const keyCount = 40
  const writing = Promise.all(writers.map(async ({ name, peer }) => {
    await Promise.all([
      peer.call('setMany', `own-${name}-`, n, name, keyCount),
      peer.call('setMany', 'shared-', n, name, keyCount)
    ])
  }))
  // Seconds here; if it ever hangs, say where every writer is and what the lock slot holds.
  await within(120_000, writing, 'the writers').catch((err: Error) => {
    const header = new Int32Array(fs.readFileSync(file).buffer, 0, 96)
    const where = writers.map(({ name, peer }) => {
      let state = 'gone'
      try { state = fs.readFileSync(`/proc/${peer.pid}/stat`, 'latin1').split(') ')[1].slice(0, 1) + ' in ' + fs.readFileSync(`/proc/${peer.pid}/wchan`, 'latin1') } catch {}
      return `${name} (pid ${peer.pid}): ${state}`
    })
    throw new Error(`${err.message}; ${where.join(', ')}; lock slot and commit line: ${[...header.slice(32, 40)].join(' ')} | ${[...header.slice(64, 68)].join(' ')}`)
  })
  const here = closeAtEnd(t, Store.open<Tagged>(file))
  const expected = [...here.entries()].sort(([a], [b]) => String(a) < String(b) ? -1 : 1)
  t.equal(expected.length, 4 * keyCount)
  for (const { name, peer } of writers) t.same(await peer.call('entries'), expected, `${name} sees the same final state`)
  const wrong: string[] = []
  for (const [key, value] of expected) {
    const k = Number(String(key).slice(String(key).lastIndexOf('-') + 1))
    const owner = String(key).startsWith('own-') ? String(key).split('-')[1] : undefined
    if (owner !== undefined && value.writer !== owner) wrong.push(`${String(key)} written by ${value.writer}`)
    // Each writer's sets of one key come in order: only its last one can be the survivor.
    if (value.i !== lastIndex(n, keyCount, k)) wrong.push(`${String(key)} holds ${value.writer}'s write ${value.i}, not its last`)
  }
  t.same(wrong, [], 'every key holds some writer\'s last write to it')
  t.same(here.verify().damaged, [])
})

t.test('a value set in one process is in the other\'s get as soon as set returns, both ways', async (t) => {
  const file = path.join(tempDir(t), 'visible.kv')
  const here = closeAtEnd(t, Store.open(file))
  const peer = new Peer(t, 'kv-peer.ts')
  await peer.call('open', file)
  for (let i = 0; i < 50; i++) {
    here.set('ping', i)
    t.equal(await peer.call('get', 'ping'), i)
    await peer.call('set', 'pong', i)
    t.equal(here.get('pong'), i)
  }
})

t.test('a watcher in another process hears of each change of its key or prefix, with the value then in place', async (t) => {
  const file = path.join(tempDir(t), 'watched.kv')
  const here = closeAtEnd(t, Store.open(file))
  const peer = new Peer(t, 'kv-peer.ts')
  await peer.call('open', file)
  await peer.call('watch', 'cfg/', true)
  here.set('other', 1)
  here.set('cfg/a', 'one')
  t.same(await within(5000, peer.event('change')), { type: 'set', key: 'cfg/a', value: 'one' })
  here.delete('cfg/a')
  t.same(await within(5000, peer.event('change')), { type: 'delete', key: 'cfg/a', value: null })
  // Growth remaps the file under the watcher: it keeps hearing.
  const big = 'x'.repeat(4096)
  for (let i = 0; i < 40; i++) here.set(`bulk${i}`, big)
  here.set('cfg/b', 'two')
  t.same(await within(5000, peer.event('change')), { type: 'set', key: 'cfg/b', value: 'two' })
  // So does compaction, which replaces the file.
  here.compact()
  here.set('cfg/c', 'three')
  t.same(await within(5000, peer.event('change')), { type: 'set', key: 'cfg/c', value: 'three' })
})

t.test('a watch in this process fires for another process\'s set, and close() ends it', async (t) => {
  const file = path.join(tempDir(t), 'local-watch.kv')
  const here = closeAtEnd(t, Store.open(file))
  const peer = new Peer(t, 'kv-peer.ts')
  await peer.call('open', file)
  const events: unknown[] = []
  let heard: () => void = () => {}
  const watch = here.watch('counter', (event) => { events.push(event); heard() })
  const first = new Promise<void>((resolve) => { heard = resolve })
  await peer.call('set', 'counter', 1)
  await within(5000, first)
  t.same(events, [{ type: 'set', key: 'counter' }])
  t.equal(here.get('counter'), 1)
  watch.close()
  await peer.call('set', 'counter', 2)
  t.equal(here.get('counter'), 2)
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(events.length, 1, 'no event after close')
})

t.test('a writer SIGKILLed while holding the lock does not block the store: the next writer takes the lock over', async (t) => {
  const file = path.join(tempDir(t), 'lock.kv')
  const here = closeAtEnd(t, Store.open(file))
  here.set('before', 1)
  const peer = new Peer(t, 'kv-peer.ts')
  await peer.call('open', file)
  await peer.call('holdLock')
  t.same(await peer.kill(), { code: null, signal: 'SIGKILL' })
  here.set('after', 2)
  t.same([...here.entries()], [['before', 1], ['after', 2]])
})

t.test('a store file another user owns is refused (ERR_FOREIGN_OWNER) unless allowForeignOwner', { skip: process.geteuid?.() !== 0 ? 'needs root to give a file to another user' : false }, (t) => {
  const file = path.join(tempDir(t), 'foreign.kv')
  Store.open(file).close()
  fs.chownSync(file, 1, 1)
  t.equal(thrown(() => Store.open(file)).code, 'ERR_FOREIGN_OWNER')
  const s = Store.open(file, { allowForeignOwner: true })
  s.set('a', 1)
  t.equal(s.get('a'), 1)
  s.close()
  t.end()
})

leavesNothingInDevShm(t)
