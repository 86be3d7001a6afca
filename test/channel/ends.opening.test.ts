/**
 * An end whose pid is taken but whose state is still 0 is "opening"
 * (docs/protocol.md, Ends): arriving while its pid runs, dead once it does
 * not. These tests write such a slot by hand, as a process killed between
 * its compare-and-swap of the pid and its store of the state leaves it.
 */
import { spawn, spawnSync } from 'node:child_process'
import t from 'tap'

import { Consumer, Producer, Region } from '../../lib/index'
import * as L from '../../lib/channel/layout'
import { channelName, leavesNothingInDevShm, unlinkIfPresent } from '../support/shm'

/** The pid of a process that has exited and been reaped. */
function deadPid (): number {
  const child = spawnSync(process.execPath, ['-e', ''])
  if (child.pid === undefined) throw new Error('could not start a process')
  return child.pid
}

/** Writes an opening slot (pid, no start time, state 0) for `role` in the channel under `name`. */
function writeOpening (name: string, role: 'producer' | 'consumer', pid: number): void {
  const region = Region.open(name)
  try {
    const h = new Int32Array(region.buffer, 0, L.HEADER_SIZE / 4)
    const base = L.word(role === 'producer' ? L.PRODUCER_END_OFFSET : L.CONSUMER_END_OFFSET)
    Atomics.store(h, base + L.word(L.END_STATE), L.END_FREE)
    h[base + L.word(L.END_START_TIME)] = 0
    h[base + L.word(L.END_START_TIME) + 1] = 0
    Atomics.store(h, base + L.word(L.END_PID), pid)
  } finally {
    region.close()
  }
}

function consumerPid (name: string): number {
  const region = Region.open(name, { readOnly: true })
  try {
    return Atomics.load(new Int32Array(region.buffer, 0, L.HEADER_SIZE / 4), L.word(L.CONSUMER_END_OFFSET) + L.word(L.END_PID))
  } finally {
    region.close()
  }
}

t.test('a consumer that died opening is dead: the next consumer takes its end over (it used to wait for it forever)', async (t) => {
  const name = channelName()
  const producer = Producer.open(name, { codec: 'bytes', capacity: 4096 })
  producer.trySend(Buffer.from('kept'))
  writeOpening(name, 'consumer', deadPid())
  const consumer = Consumer.open(name, { codec: 'bytes' })
  t.equal(consumer.tookOver, true)
  t.same(consumer.tryReceive(), Buffer.from('kept'))
  consumer.close()
  producer.close()
})

t.test('a producer waiting for room sees a consumer that died opening as dead: ERR_PEER_DEAD (it used to wait on)', async (t) => {
  const name = channelName()
  const producer = Producer.open(name, { codec: 'bytes', capacity: 4096, peerCheckInterval: 50 })
  const message = Buffer.alloc(64)
  while (producer.trySend(message)) { /* fill the ring while the consumer end is free */ }
  writeOpening(name, 'consumer', deadPid())
  await t.rejects(producer.send(message, { timeout: 10_000 }), { code: 'ERR_PEER_DEAD' })
  producer.close()
  unlinkIfPresent(name) // left to a replacement consumer: bytes are unread
})

t.test('a producer arriving where the consumer died opening reclaims the name (it used to join a channel nobody would read)', async (t) => {
  const name = channelName()
  const consumer = Consumer.open(name, { codec: 'bytes', capacity: 4096 })
  const dead = deadPid()
  writeOpening(name, 'consumer', dead)
  const producer = Producer.open(name, { codec: 'bytes' })
  t.equal(consumerPid(name), 0, 'a fresh channel: its consumer end is free')
  consumer.close()
  producer.close()
  unlinkIfPresent(name)
})

t.test('a producer arriving while a running consumer is opening joins it: the consumer is arriving, not gone', async (t) => {
  const name = channelName()
  const consumer = Consumer.open(name, { codec: 'bytes', capacity: 4096 })
  const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' })
  t.teardown(() => { sleeper.kill('SIGKILL') })
  writeOpening(name, 'consumer', sleeper.pid ?? 0)
  const producer = Producer.open(name, { codec: 'bytes', peerCheckInterval: 1 })
  t.equal(consumerPid(name), sleeper.pid, 'the same channel')
  t.equal(producer.trySend(Buffer.from('x')), true, 'not dead: no ERR_PEER_DEAD')
  producer.close()
  consumer.close()
  unlinkIfPresent(name)
})

leavesNothingInDevShm(t)
