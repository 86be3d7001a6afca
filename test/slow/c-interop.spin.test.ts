/**
 * Slow tier: a C end and a Node end that both spin ('spin': never sleep)
 * exchange a stream each way. Two spinning processes on a shared two-core
 * machine mostly measure the scheduler, hence the slow tier.
 */
import t from 'tap'

import { channelName, leavesNothingInDevShm } from '../support/shm'
import { buildC, streamCToNode, streamNodeToC } from '../interop/c-peer'

const build = buildC(t)

t.test('spinning C and Node ends exchange a stream both ways', async (t) => {
  const there = await streamCToNode(t, build, channelName(), { seed: 1705, count: 2000, capacity: 8192, wait: 'spin' })
  t.equal(there.node.result, 'ERR_CHANNEL_CLOSED')
  t.equal(there.node.bytes, there.c.bytes)
  const back = await streamNodeToC(t, build, channelName(), { seed: 1706, count: 2000, capacity: 8192, wait: 'spin' })
  t.equal(back.c.bytes, back.node.bytes)
  t.equal(back.end, 'ERR_CHANNEL_CLOSED')
})

leavesNothingInDevShm(t)
