/**
 * The long restart loops: test/channel/restart.consumer.test.ts and
 * restart.producer.test.ts at 300 SIGKILLs each (RESTART_CYCLES to change),
 * with the counts printed for the record.
 */
import t from 'tap'

import { consumerRestartLoop, producerRestartLoop } from '../support/restart-loops'
import { leavesNothingInDevShm } from '../support/shm'

const cycles = Number(process.env.RESTART_CYCLES ?? 300)
const seed = Number(process.env.RESTART_SEED ?? 0x5eed03)

t.test(`consumer restart loop, ${cycles} cycles`, async (t) => {
  const c = await consumerRestartLoop(t, cycles, seed)
  t.comment(`consumer restart loop (seed ${seed}): cycles ${c.cycles}, takeovers ${c.takeovers}, messages sent ${c.sent}, received ${c.received}, redelivered ${c.repeats} (announced ${c.announced}), lost ${c.lost}, torn ${c.torn}`)
  t.equal(c.cycles, cycles)
  t.equal(c.lost, 0, 'nothing lost')
  t.equal(c.torn, 0, 'nothing torn')
  t.equal(c.disorder, 0, 'in order; repeats only of announced redeliveries')
  t.same(c.problems, [])
  t.equal(c.received, c.sent + c.repeats)
})

t.test(`producer restart loop, ${cycles} cycles`, async (t) => {
  const c = await producerRestartLoop(t, cycles, seed + 1)
  t.comment(`producer restart loop (seed ${seed + 1}): cycles ${c.cycles}, takeovers ${c.takeovers}, messages received ${c.received} (${c.fragmented} in fragments), lost ${c.lost}, duplicated ${c.duplicated}, torn ${c.torn}, errors ${c.errors.length}`)
  t.equal(c.cycles, cycles)
  t.same(c.errors, [], 'no ERR_PEER_DEAD under \'wait\'')
  t.equal(c.lost, 0)
  t.equal(c.duplicated, 0)
  t.equal(c.torn, 0)
  t.same(c.problems, [])
})

leavesNothingInDevShm(t)
