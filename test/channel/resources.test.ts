/**
 * Nothing is left behind by opening and closing: thousands of regions and
 * channel pairs opened and closed in a child process (run with --expose-gc)
 * leave its file descriptors, its /dev/shm mappings, /dev/shm itself and
 * its memory as they were; and a region holds no file descriptor while it
 * is open (the descriptor is closed once the object is mapped), so the
 * descriptor limit does not bound how many regions a process may hold.
 * test/slow/soak.test.ts runs a minute of traffic between two processes.
 */
import { spawn, spawnSync } from 'node:child_process'
import path from 'node:path'
import t, { type Test } from 'tap'

import { ChannelPeer } from '../support/peers'
import { leavesNothingInDevShm } from '../support/shm'

const MiB = 1024 * 1024
const COUNT = Number(process.env.REL_CHURN ?? 10_000)

interface Holdings { fds: number, maps: number, shm: number, rss: number, rssShmem: number, heap: number }

for (const kind of ['region', 'channel'] as const) {
  t.test(`${COUNT} ${kind} open/close cycles leave no descriptor, mapping, name or memory behind`, async (t) => {
    const peer = new ChannelPeer(t, 'rel-peer.ts', [], { execArgv: [...process.execArgv, '--expose-gc'] })
    const { before, after, ms } = await peer.call<{ before: Holdings, after: Holdings, ms: number }>('churn', kind, COUNT)
    t.equal(after.fds, before.fds, `file descriptors: ${before.fds} -> ${after.fds}`)
    t.equal(after.maps, 0, 'no /dev/shm mapping left')
    t.equal(after.shm, 0, 'no /dev/shm entry left')
    t.ok(after.heap - before.heap < 4 * MiB, `heap ${(before.heap / MiB).toFixed(1)} -> ${(after.heap / MiB).toFixed(1)} MiB`)
    // Shared memory still resident would be segments kept mapped: none may be.
    t.ok(after.rssShmem - before.rssShmem < MiB, `resident shared memory ${(before.rssShmem / MiB).toFixed(1)} -> ${(after.rssShmem / MiB).toFixed(1)} MiB`)
    // Private memory: the allocator and V8 keep some of what they freed
    // (up to ~7 KiB a cycle on Node 24, under 1 KiB on Node 20, flattening
    // as cycles go on); a ring or header leaked per cycle would be 40+ MiB.
    t.ok(after.rss - before.rss < 128 * MiB, `RSS ${(before.rss / MiB).toFixed(1)} -> ${(after.rss / MiB).toFixed(1)} MiB (${Math.round(ms)} ms for ${COUNT})`)
    await peer.end()
  })
}

t.test('1000 regions open at once hold no file descriptor', async (t) => {
  const peer = new ChannelPeer(t, 'rel-peer.ts')
  const { before, during, mapped, after } = await peer.call<Record<string, number>>('holdRegions', 1000)
  t.equal(mapped, 1000, 'all 1000 are mapped')
  t.equal(during, before, `file descriptors while they are open: ${before} -> ${during}`)
  t.equal(after, before)
  await peer.end()
})

/** Runs rel-peer.ts in a mount namespace of its own whose /dev/shm is a tmpfs of `size`; or says why it cannot. */
function inSmallDevShm (t: Test, size: string): { skip: string | false, call: (method: string, ...args: unknown[]) => Promise<unknown> } {
  const probe = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs -o size=${size} none /dev/shm`], { encoding: 'utf8' })
  if (probe.status !== 0) return { skip: `cannot mount a tmpfs over /dev/shm in a private mount namespace (needs root, util-linux unshare): ${(probe.stderr ?? String(probe.error)).trim().split('\n')[0]}`, call: async () => {} }
  const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs -o size=${size} none /dev/shm && exec "$@"`, 'sh',
    process.execPath, ...process.execArgv, path.join(__dirname, '..', 'fixtures', 'rel-peer.ts')], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' })
  t.teardown(() => { child.kill('SIGKILL') })
  let id = 0
  return {
    skip: false,
    call: async (method, ...args) => await new Promise((resolve, reject) => {
      const mine = ++id
      const onMessage = (message: { type: string, id: number, value?: unknown, error?: { message: string } }): void => {
        if (message.type !== 'result' || message.id !== mine) return
        child.off('message', onMessage)
        if (message.error !== undefined) reject(Object.assign(new Error(message.error.message), message.error))
        else resolve(message.value)
      }
      child.on('message', onMessage)
      child.send({ id: mine, method, args })
    })
  }
}

t.test('a full /dev/shm surfaces as ENOSPC when the channel is created, and leaves no name', async (t) => {
  const shm = inSmallDevShm(t, '256k')
  t.test('Producer.open and Consumer.open of a 1 MiB ring in a 256 KiB /dev/shm', { skip: shm.skip }, async (t) => {
    for (const role of ['producer', 'consumer']) {
      t.same(await shm.call('tryOpen', role, 'shmch-test-enospc', { capacity: 1 << 20 }), { opened: false, code: 'ENOSPC', syscall: 'posix_fallocate' }, role)
      t.same(await shm.call('listShm'), [], 'nothing left in that /dev/shm')
    }
    t.same(await shm.call('tryOpen', 'producer', 'shmch-test-enospc', { capacity: 64 * 1024 }), { opened: true }, 'a ring that fits still opens')
  })
})

leavesNothingInDevShm(t)
