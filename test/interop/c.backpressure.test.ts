/**
 * Backpressure across a C end and a Node end with a 4 KiB ring and both
 * ends waiting with 'block', so every wait is a sleep on the futex. Each
 * side is made to sleep for certain by starting it first and waiting for its
 * parked flag: a consumer on the empty ring, a producer on the ring it
 * filled before its consumer came. The other side must then wake it, and
 * the wake-up counters in the header say it did.
 */
import t from 'tap'

import { channelName, leavesNothingInDevShm } from '../support/shm'
import { buildC, streamCToNode, streamNodeToC, type StreamSpec } from './c-peer'

const build = buildC(t)
const stream = (seed: number, parkedFirst: StreamSpec['parkedFirst']): StreamSpec => ({ seed, count: 1000, capacity: 4096, wait: 'block', parkedFirst })

t.test('a C producer wakes a Node consumer sleeping on the empty ring', async (t) => {
  const { c, node } = await streamCToNode(t, build, channelName(), stream(1703, 'consumer'))
  t.equal(node.result, 'ERR_CHANNEL_CLOSED')
  t.equal(node.bytes, c.bytes)
  t.ok(c.consumerWakeups > 0, `the C producer woke the sleeping Node consumer ${c.consumerWakeups} times`)
})

t.test('a Node consumer wakes a C producer sleeping on the full ring', async (t) => {
  const { c, node } = await streamCToNode(t, build, channelName(), stream(1704, 'producer'))
  t.equal(node.result, 'ERR_CHANNEL_CLOSED')
  t.equal(node.bytes, c.bytes)
  t.ok(c.timesFull > 0, `the C producer found the ring full ${c.timesFull} times`)
  t.ok(c.producerWakeups > 0, `the Node consumer woke the sleeping C producer ${c.producerWakeups} times`)
})

t.test('a Node producer wakes a C consumer sleeping on the empty ring', async (t) => {
  const { c, node, end } = await streamNodeToC(t, build, channelName(), stream(1705, 'consumer'))
  t.equal(end, 'ERR_CHANNEL_CLOSED')
  t.equal(c.bytes, node.bytes)
  t.ok(c.consumerWakeups > 0, `the Node producer woke the sleeping C consumer ${c.consumerWakeups} times`)
})

t.test('a C consumer wakes a Node producer sleeping on the full ring', async (t) => {
  const { c, node, end } = await streamNodeToC(t, build, channelName(), stream(1706, 'producer'))
  t.equal(end, 'ERR_CHANNEL_CLOSED')
  t.equal(c.bytes, node.bytes)
  t.ok(c.producerWakeups > 0, `the C consumer woke the sleeping Node producer ${c.producerWakeups} times`)
})

leavesNothingInDevShm(t)
