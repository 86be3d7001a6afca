/**
 * A C end (c/, built here with cc) and a Node end, each its own process,
 * exchange 100k seeded messages from 8 bytes to four times a quarter of the
 * ring, in both directions: single records by copy and by claim/commit,
 * fragments reassembled, padding at the end of the ring, positions wrapping
 * it many times; then the producer's close ends the consumer's stream.
 */
import t from 'tap'

import { channelName, leavesNothingInDevShm } from '../support/shm'
import { buildC, mbPerSecond, streamCToNode, streamNodeToC } from './c-peer'

const build = buildC(t)
const COUNT = 100_000
const CAPACITY = 16384

t.test('a C producer sends 100k messages (fragments, padding, wrap) that a Node consumer receives intact, then sees the close', async (t) => {
  const { c, node } = await streamCToNode(t, build, channelName(), { seed: 1701, count: COUNT, capacity: CAPACITY, wait: 'adaptive' })
  t.equal(node.problem, undefined)
  t.equal(node.result, 'ERR_CHANNEL_CLOSED', 'after the last message, the producer\'s close')
  t.equal(node.count, COUNT)
  t.equal(node.bytes, c.bytes, 'every byte sent arrived')
  t.ok(c.bytes > COUNT * 256, `${c.bytes} bytes: the stream has messages in fragments`)
  t.comment(`C -> Node: ${COUNT} messages, ${c.bytes} bytes, ${mbPerSecond(c.bytes, node.ms)} MB/s (Node receiving)`)
})

t.test('a Node producer sends 100k messages that a C consumer receives intact (in place and copied), then sees the close', async (t) => {
  const { c, node, end } = await streamNodeToC(t, build, channelName(), { seed: 1702, count: COUNT, capacity: CAPACITY, wait: 'adaptive' })
  t.equal(node.result, 'OK')
  t.equal(c.count, COUNT)
  t.equal(c.bytes, node.bytes, 'every byte sent arrived')
  t.equal(end, 'ERR_CHANNEL_CLOSED', 'after the last message, the producer\'s close')
  t.comment(`Node -> C: ${COUNT} messages, ${c.bytes} bytes, ${mbPerSecond(c.bytes, c.ms)} MB/s (C receiving)`)
})

leavesNothingInDevShm(t)
