/**
 * kill -9 of a C end or a Node end, each waiting on the other: the survivor's
 * wait ends with ERR_PEER_DEAD (shmc: SHMC_EPEER_DEAD), after what was
 * published before the death was delivered. Each side waits for the other's
 * state (an "open" line, a parked flag) before the kill, never for a fixed time.
 */
import t from 'tap'

import { Consumer, Producer } from '../../lib/index'
import { FixtureProcess } from '../support/fixture-process'
import { channelName, leavesNothingInDevShm, shmExists, unlinkIfPresent, untilParked } from '../support/shm'
import { buildC, CPeer } from './c-peer'

const build = buildC(t)
const CAPACITY = 4096

async function codeOf (promise: Promise<unknown>): Promise<string> {
  try {
    await promise
    return 'OK'
  } catch (err) {
    return (err as { code?: string }).code ?? String(err)
  }
}

t.test('kill -9 of either side ends the survivor\'s wait with ERR_PEER_DEAD', async (t) => {
  await t.test('a C producer killed while blocked: the Node consumer drains what it published, then ERR_PEER_DEAD', async (t) => {
    const name = channelName()
    const consumer = Consumer.open(name, { codec: 'bytes', capacity: CAPACITY, peerCheckInterval: 100 })
    const producer = new CPeer(t, build, ['hold-producer', name, String(CAPACITY), 'block'])
    await producer.line('full')
    await untilParked(name, 'producer')
    t.equal((await producer.kill()).signal, 'SIGKILL')
    const killed = performance.now()
    let drained = 0
    let code = 'OK'
    while (code === 'OK') {
      code = await codeOf(consumer.receive({ timeout: 30_000 }))
      if (code === 'OK') drained++
    }
    t.comment(`ERR_PEER_DEAD ${(performance.now() - killed).toFixed(0)} ms after the kill`)
    t.equal(code, 'ERR_PEER_DEAD')
    t.ok(drained > 0, `the ${drained} messages published before the kill were delivered first`)
    consumer.close()
    t.notOk(shmExists(name), 'the survivor removed the name')
  })

  await t.test('a Node producer killed: the C consumer waiting in shmc_read gets SHMC_EPEER_DEAD', async (t) => {
    const name = channelName()
    const node = new FixtureProcess(t, 'c-node-end.ts')
    await node.call('idle', { name, capacity: CAPACITY, role: 'producer' })
    const consumer = new CPeer(t, build, ['hold-consumer', name, String(CAPACITY), 'block'])
    await consumer.line('open')
    await untilParked(name, 'consumer')
    await node.kill()
    const killed = performance.now()
    t.equal(await consumer.line('result'), 'ERR_PEER_DEAD')
    t.comment(`SHMC_EPEER_DEAD ${(performance.now() - killed).toFixed(0)} ms after the kill`)
    t.same(await consumer.exited, { code: 0, signal: null })
    t.notOk(shmExists(name), 'the survivor removed the name')
  })

  await t.test('a C consumer killed: the Node producer blocked on a full ring gets ERR_PEER_DEAD', async (t) => {
    const name = channelName()
    const consumer = new CPeer(t, build, ['idle-consumer', name, String(CAPACITY)])
    await consumer.line('open')
    const producer = Producer.open(name, { codec: 'bytes', peerCheckInterval: 100 })
    const message = Buffer.alloc(64)
    while (producer.trySend(message)) { /* fill the ring */ }
    const sent = codeOf(producer.send(message, { timeout: 30_000 }))
    await untilParked(name, 'producer')
    await consumer.kill()
    const killed = performance.now()
    t.equal(await sent, 'ERR_PEER_DEAD')
    t.comment(`ERR_PEER_DEAD ${(performance.now() - killed).toFixed(0)} ms after the kill`)
    producer.close()
    t.ok(shmExists(name), 'a producer whose consumer died with bytes unread leaves the name to a replacement consumer')
    unlinkIfPresent(name)
  })

  await t.test('a Node consumer killed: the C producer blocked on a full ring gets SHMC_EPEER_DEAD', async (t) => {
    const name = channelName()
    const node = new FixtureProcess(t, 'c-node-end.ts')
    await node.call('idle', { name, capacity: CAPACITY, role: 'consumer' })
    const producer = new CPeer(t, build, ['hold-producer', name, String(CAPACITY), 'block'])
    await producer.line('full')
    await untilParked(name, 'producer')
    await node.kill()
    const killed = performance.now()
    t.equal(await producer.line('result'), 'ERR_PEER_DEAD')
    t.comment(`SHMC_EPEER_DEAD ${(performance.now() - killed).toFixed(0)} ms after the kill`)
    t.same(await producer.exited, { code: 0, signal: null })
    t.ok(shmExists(name), 'the C producer, like a Node one, leaves the name to a replacement consumer')
    unlinkIfPresent(name)
  })
})

leavesNothingInDevShm(t)
