/**
 * A C end and a Node end across their lifetimes: both read the same offsets;
 * a close reaches a peer waiting on the other side, both ways, and the last
 * one out removes the name only while it names the segment it mapped; a live
 * end is not taken from the other language; and a C producer that writes
 * garbage is refused by Node with ERR_INVALID_SEGMENT. Each side waits for
 * the other's state (an "open" line, a parked flag), never for a fixed time.
 */
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'

import { Consumer, Producer } from '../../lib/index'
import * as L from '../../lib/channel/layout'
import { FixtureProcess } from '../support/fixture-process'
import { channelName, leavesNothingInDevShm, shmExists, untilParked } from '../support/shm'
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

t.test('the C library\'s offsets are lib/channel/layout.ts\'s', async (t) => {
  const source = fs.readFileSync(path.join(__dirname, '..', '..', 'c', 'src', 'internal.h'), 'utf8')
  const defined = (name: string): number => {
    const m = new RegExp(`#define ${name} (\\S+)`).exec(source)
    if (m === null) throw new Error(`${name} is not defined in c/src/internal.h`)
    return Number(m[1].replace(/u$/, ''))
  }
  const pairs: Array<[string, number]> = [
    ['OFF_MAGIC', L.MAGIC_OFFSET], ['OFF_VERSION', L.VERSION_OFFSET], ['OFF_HEADER_SIZE', L.HEADER_SIZE_OFFSET],
    ['OFF_CAPACITY', L.CAPACITY_OFFSET], ['OFF_FLAGS', L.FLAGS_OFFSET],
    ['OFF_PRODUCER_POSITION', L.PRODUCER_POSITION_OFFSET], ['OFF_MESSAGES_SENT', L.MESSAGES_SENT_OFFSET],
    ['OFF_BYTES_SENT', L.BYTES_SENT_OFFSET], ['OFF_TIMES_FULL', L.TIMES_FULL_OFFSET],
    ['OFF_CONSUMER_WAKEUPS', L.CONSUMER_WAKEUPS_OFFSET], ['OFF_ABANDONED_AT', L.ABANDONED_AT_OFFSET],
    ['OFF_CONSUMER_POSITION', L.CONSUMER_POSITION_OFFSET], ['OFF_MESSAGES_RECEIVED', L.MESSAGES_RECEIVED_OFFSET],
    ['OFF_BYTES_RECEIVED', L.BYTES_RECEIVED_OFFSET], ['OFF_PRODUCER_WAKEUPS', L.PRODUCER_WAKEUPS_OFFSET],
    ['OFF_READ_MARK', L.READ_MARK_OFFSET], ['OFF_CONSUMER_PARKED', L.CONSUMER_PARKED_OFFSET],
    ['OFF_PRODUCER_PARKED', L.PRODUCER_PARKED_OFFSET], ['OFF_PRODUCER_END', L.PRODUCER_END_OFFSET],
    ['OFF_CONSUMER_END', L.CONSUMER_END_OFFSET], ['OFF_PRODUCER_TAKEOVERS', L.PRODUCER_TAKEOVERS_OFFSET],
    ['OFF_CONSUMER_TAKEOVERS', L.CONSUMER_TAKEOVERS_OFFSET],
    ['END_PID', L.END_PID], ['END_START_LOW', L.END_START_TIME], ['END_STATE', L.END_STATE],
    ['END_OPEN', L.END_OPEN], ['END_CLOSED', L.END_CLOSED], ['END_CLAIMING', L.END_CLAIMING],
    ['SHMC_MAGIC', L.MAGIC], ['SHMC_HEADER_SIZE', L.HEADER_SIZE], ['SHMC_VERSION_MAJOR', L.VERSION_MAJOR],
    ['SHMC_VERSION_MINOR', L.VERSION_MINOR], ['SHMC_MIN_CAPACITY', L.MIN_CAPACITY],
    ['TYPE_DATA', L.TYPE_DATA], ['TYPE_PADDING', L.TYPE_PADDING], ['FLAG_BEGIN', L.FLAG_BEGIN],
    ['FLAG_END', L.FLAG_END], ['RECORD_HEADER', L.RECORD_HEADER_SIZE], ['FRAGMENT_TOTAL', L.FRAGMENT_TOTAL_SIZE]
  ]
  for (const [name, value] of pairs) t.equal(defined(name), value, name)
})

t.test('closing reaches a waiting peer in the other language, both ways', async (t) => {
  await t.test('a Node consumer waiting in receive() sees a C producer\'s close: ERR_CHANNEL_CLOSED', async (t) => {
    const name = channelName()
    const consumer = Consumer.open(name, { codec: 'bytes', capacity: CAPACITY })
    const received = codeOf(consumer.receive({ timeout: 30_000 }))
    await untilParked(name, 'consumer')
    const producer = new CPeer(t, build, ['produce', name, '1', '0', String(CAPACITY), 'block'])
    t.equal(await received, 'ERR_CHANNEL_CLOSED')
    t.same(await producer.exited, { code: 0, signal: null })
    consumer.close()
    t.notOk(shmExists(name), 'the last one out removed the name')
  })

  await t.test('a C consumer waiting in shmc_read sees a Node producer\'s close: SHMC_ECLOSED', async (t) => {
    const name = channelName()
    const consumer = new CPeer(t, build, ['hold-consumer', name, String(CAPACITY), 'block'])
    await consumer.line('open')
    const producer = Producer.open(name, { codec: 'bytes' })
    await untilParked(name, 'consumer')
    producer.close()
    t.equal(await consumer.line('result'), 'ERR_CHANNEL_CLOSED')
    t.same(await consumer.exited, { code: 0, signal: null })
    t.notOk(shmExists(name), 'the last one out removed the name')
  })

  await t.test('a C producer blocked on a full ring sees a Node consumer\'s close: SHMC_ECLOSED', async (t) => {
    const name = channelName()
    const consumer = Consumer.open(name, { codec: 'bytes', capacity: CAPACITY })
    const producer = new CPeer(t, build, ['hold-producer', name, String(CAPACITY), 'block'])
    await producer.line('full')
    await untilParked(name, 'producer')
    consumer.close()
    t.equal(await producer.line('result'), 'ERR_CHANNEL_CLOSED')
    t.same(await producer.exited, { code: 0, signal: null })
    t.notOk(shmExists(name), 'the last one out removed the name')
  })

  await t.test('a Node producer blocked on a full ring sees a C consumer\'s close: ERR_CHANNEL_CLOSED', async (t) => {
    const name = channelName()
    const node = new FixtureProcess(t, 'c-node-end.ts')
    const held = node.call<string>('hold', { name, capacity: CAPACITY, role: 'producer' })
    await node.event('full')
    await untilParked(name, 'producer')
    // Reads one message (the ring is full), then closes.
    const consumer = new CPeer(t, build, ['consume', name, '1', '0', String(CAPACITY), 'block'])
    t.equal(await consumer.line('result'), 'OK')
    t.equal(await held, 'ERR_CHANNEL_CLOSED')
    t.same(await consumer.exited, { code: 0, signal: null })
    t.notOk(shmExists(name), 'the last one out removed the name')
  })
})

t.test('a live end is not taken from the other language: ERR_END_TAKEN both ways', async (t) => {
  const name = channelName()
  const producer = new CPeer(t, build, ['idle-producer', name, String(CAPACITY)])
  await producer.line('open')
  t.throws(() => Producer.open(name), { code: 'ERR_END_TAKEN' })
  const consumer = Consumer.open(name, { codec: 'bytes' })
  const second = new CPeer(t, build, ['idle-consumer', name, String(CAPACITY)])
  t.equal(await second.line('result'), 'ERR_END_TAKEN')
  await producer.kill()
  consumer.close()
  t.notOk(shmExists(name))
})

t.test('a C producer that publishes a record of an unknown type is refused by a Node consumer: ERR_INVALID_SEGMENT', async (t) => {
  const name = channelName()
  const producer = new CPeer(t, build, ['garbage', name, String(CAPACITY)])
  await producer.line('published')
  const consumer = Consumer.open(name, { codec: 'bytes' })
  t.equal(await codeOf(consumer.receive({ timeout: 30_000 })), 'ERR_INVALID_SEGMENT')
  consumer.close()
  t.equal(await producer.line('result'), 'OK')
  t.same(await producer.exited, { code: 0, signal: null })
  t.notOk(shmExists(name), 'the C producer, last out, removed the name')
})

t.test('the last end out of a segment whose name now refers to a newer one leaves the newer one alone (C and Node)', async (t) => {
  const name = channelName()
  const consumer = new CPeer(t, build, ['hold-consumer', name, String(CAPACITY), 'block'])
  await consumer.line('open')
  const producer = Producer.open(name, { codec: 'bytes' })
  const newer = Producer.open(name, { codec: 'bytes', fresh: true }) // unlinks the name, makes another segment under it
  producer.close() // the old producer: its consumer (C) is live, so the name stays
  t.equal(await consumer.line('result'), 'ERR_CHANNEL_CLOSED')
  t.same(await consumer.exited, { code: 0, signal: null })
  t.ok(shmExists(name), 'the C consumer, last out of the old segment, left the newer one\'s name alone')
  const reader = Consumer.open(name, { codec: 'bytes' })
  newer.trySend(Buffer.from('still here'))
  t.same(reader.tryReceive(), Buffer.from('still here'), 'and the newer channel works')
  reader.close()
  newer.close()
  t.notOk(shmExists(name))
})

leavesNothingInDevShm(t)
