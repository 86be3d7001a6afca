/**
 * Consumer restarts lose nothing: a consumer process SIGKILLed at random
 * moments and restarted under the same name takes over its end of the same
 * segment; across incarnations every message arrives at least once and in
 * order, and only what a dead incarnation read without releasing comes again
 * (the new one announces how many). The long run is test/slow/restart.loops.test.ts.
 *
 * RESTART_CYCLES sets the cycle count (default 20), RESTART_SEED the seed.
 */
import t from 'tap'

import { consumerRestartLoop } from '../support/restart-loops'
import { leavesNothingInDevShm } from '../support/shm'

const cycles = Number(process.env.RESTART_CYCLES ?? 20)
const seed = Number(process.env.RESTART_SEED ?? 0x5eed01)

t.test(`consumer restart loop: ${cycles} SIGKILLs at random moments, every message at least once, in order, only unreleased ones again`, async (t) => {
  const c = await consumerRestartLoop(t, cycles, seed)
  t.comment(`consumer restart loop (seed ${seed}): cycles ${c.cycles}, takeovers ${c.takeovers}, messages sent ${c.sent}, received ${c.received}, redelivered ${c.repeats} (announced ${c.announced}), lost ${c.lost}, torn ${c.torn}`)
  t.equal(c.cycles, cycles)
  t.ok(c.takeovers > cycles / 2, 'most incarnations took over from a dead one')
  t.ok(c.sent > cycles, `${c.sent} messages went through`)
  t.equal(c.lost, 0, 'nothing lost')
  t.equal(c.torn, 0, 'nothing torn')
  t.equal(c.disorder, 0, 'in order within each incarnation; repeats only of announced redeliveries')
  t.same(c.problems, [])
  t.equal(c.received, c.sent + c.repeats, 'every message once, plus the redeliveries')
})

leavesNothingInDevShm(t)
