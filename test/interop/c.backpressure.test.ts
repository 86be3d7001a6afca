/**
 * Backpressure across a C end and a Node end with a 4 KiB ring and both
 * ends waiting with 'block': every wait is a sleep on the futex, so each
 * side must wake the other (the wake-up counters in the header say it did).
 */
import t from 'tap'

import { channelName, leavesNothingInDevShm } from '../support/shm'
import { buildC, streamCToNode, streamNodeToC } from './c-peer'

const build = buildC(t)

t.test('a blocking C producer and a blocking Node consumer wake each other through the futex', async (t) => {
  const { c, node } = await streamCToNode(t, build, channelName(), { seed: 1703, count: 4000, capacity: 4096, wait: 'block' })
  t.equal(node.result, 'ERR_CHANNEL_CLOSED')
  t.equal(node.bytes, c.bytes)
  t.ok(c.timesFull > 0, `the C producer found the ring full ${c.timesFull} times`)
  t.ok(c.consumerWakeups > 0, `the C producer woke the sleeping Node consumer ${c.consumerWakeups} times`)
  t.ok(c.producerWakeups > 0, `the Node consumer woke the sleeping C producer ${c.producerWakeups} times`)
})

t.test('a blocking Node producer and a blocking C consumer wake each other through the futex', async (t) => {
  const { c, node, end } = await streamNodeToC(t, build, channelName(), { seed: 1704, count: 4000, capacity: 4096, wait: 'block' })
  t.equal(end, 'ERR_CHANNEL_CLOSED')
  t.equal(c.bytes, node.bytes)
  t.ok(c.consumerWakeups > 0, `the Node producer woke the sleeping C consumer ${c.consumerWakeups} times`)
  t.ok(c.producerWakeups > 0, `the C consumer woke the sleeping Node producer ${c.producerWakeups} times`)
})

leavesNothingInDevShm(t)
