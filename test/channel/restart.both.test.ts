/**
 * Both ends restarted at random: a producer process and a consumer process,
 * one or both SIGKILLed each cycle and started again under the same name,
 * each taking over its dead end. Every message published arrives at least
 * once, whole, and no number is skipped.
 *
 * RESTART_CYCLES sets the cycle count (default 20), RESTART_SEED the seed.
 */
import t from 'tap'

import { bothRestartLoop } from '../support/restart-loops'
import { leavesNothingInDevShm } from '../support/shm'

const cycles = Number(process.env.RESTART_CYCLES ?? 20)
const seed = Number(process.env.RESTART_SEED ?? 0x5eed04)

t.test(`both ends restarted: ${cycles} cycles of SIGKILLs at random, every message published arrives`, async (t) => {
  const c = await bothRestartLoop(t, cycles, seed)
  t.comment(`both-ends restart loop (seed ${seed}): cycles ${c.cycles}, producer kills ${c.producerKills}, consumer kills ${c.consumerKills}, messages published ${c.published}, received ${c.received}, repeated ${c.repeats}, lost ${c.lost}, torn ${c.torn}`)
  t.equal(c.cycles, cycles)
  t.ok(c.producerKills > 0 && c.consumerKills > 0, 'both ends were killed')
  t.ok(c.published > cycles, `${c.published} messages published`)
  t.equal(c.lost, 0, 'nothing lost')
  t.equal(c.gaps, 0, 'no number skipped')
  t.equal(c.torn, 0, 'nothing torn')
  t.same(c.problems, [])
})

leavesNothingInDevShm(t)
