/**
 * Nothing is left behind by opening and closing: thousands of regions and
 * channel pairs opened and closed in a child process (run with --expose-gc)
 * leave its file descriptors, its /dev/shm mappings, /dev/shm itself and
 * its memory as they were; and a region holds no file descriptor while it
 * is open (the descriptor is closed once the object is mapped), so the
 * descriptor limit does not bound how many regions a process may hold.
 * test/slow/soak.test.ts runs a minute of traffic between two processes.
 */
import t from 'tap'

import { ChannelPeer, leavesNothingInDevShm } from './support/channel-helpers'

const MiB = 1024 * 1024
const COUNT = Number(process.env.REL_CHURN ?? 10_000)

interface Holdings { fds: number, maps: number, shm: number, rss: number, heap: number }

for (const kind of ['region', 'channel'] as const) {
  t.test(`${COUNT} ${kind} open/close cycles leave no descriptor, mapping, name or memory behind`, async (t) => {
    const peer = new ChannelPeer(t, 'rel-peer.ts', [], ['--expose-gc'])
    const { before, after, ms } = await peer.call<{ before: Holdings, after: Holdings, ms: number }>('churn', kind, COUNT)
    t.equal(after.fds, before.fds, `file descriptors: ${before.fds} -> ${after.fds}`)
    t.equal(after.maps, 0, 'no /dev/shm mapping left')
    t.equal(after.shm, 0, 'no /dev/shm entry left')
    t.ok(after.heap - before.heap < 4 * MiB, `heap ${(before.heap / MiB).toFixed(1)} -> ${(after.heap / MiB).toFixed(1)} MiB`)
    t.ok(after.rss - before.rss < 24 * MiB, `RSS ${(before.rss / MiB).toFixed(1)} -> ${(after.rss / MiB).toFixed(1)} MiB (${Math.round(ms)} ms for ${COUNT})`)
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

leavesNothingInDevShm(t)
