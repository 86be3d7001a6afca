/**
 * Producer restarts lose nothing: a producer process SIGKILLed at random
 * moments (writing, waiting for room, or half-way through a message in
 * fragments) and restarted under the same name takes over its end; the
 * consumer, opened once with onPeerDeath 'wait', sees one gapless stream
 * with no torn message and never ERR_PEER_DEAD. The long run is
 * test/slow/restart.loops.test.ts.
 *
 * RESTART_CYCLES sets the cycle count (default 20), RESTART_SEED the seed.
 */
import t from 'tap'

import { producerRestartLoop } from '../support/restart-loops'
import { leavesNothingInDevShm } from '../support/shm'

const cycles = Number(process.env.RESTART_CYCLES ?? 20)
const seed = Number(process.env.RESTART_SEED ?? 0x5eed02)

t.test(`producer restart loop: ${cycles} SIGKILLs at random moments, the consumer sees one gapless stream`, async (t) => {
  const c = await producerRestartLoop(t, cycles, seed)
  t.comment(`producer restart loop (seed ${seed}): cycles ${c.cycles}, takeovers ${c.takeovers}, messages received ${c.received} (${c.fragmented} in fragments), lost ${c.lost}, duplicated ${c.duplicated}, torn ${c.torn}, errors ${c.errors.length}`)
  t.equal(c.cycles, cycles)
  t.ok(c.takeovers > cycles / 2, 'most incarnations took over from a dead one')
  t.ok(c.received > cycles, `${c.received} messages went through`)
  t.same(c.errors, [], 'no ERR_PEER_DEAD (nor anything else) under \'wait\'')
  t.equal(c.lost, 0, 'nothing lost')
  t.equal(c.duplicated, 0, 'nothing twice')
  t.equal(c.torn, 0, 'nothing torn')
  t.same(c.problems, [])
})

leavesNothingInDevShm(t)
