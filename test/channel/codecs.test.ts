/**
 * Codecs across processes: every built-in codec and a hand-written one
 * carry their values intact in both directions, including values large
 * enough to travel in fragments; a message the codec cannot decode fails
 * only its own receive.
 */
import { MessageChannel } from 'node:worker_threads'

import t, { type Test } from 'tap'

import { Consumer, Producer, codecs, createChannelBuffer } from '../../lib/index'
import { pickyCodec, pointCodec, type Point } from '../support/channel-helpers'
import { ChannelPeer, rejection, thrown } from '../support/peers'
import { channelName, closeAtEnd, leavesNothingInDevShm } from '../support/shm'

const KiB = 1024

/** A 64 KiB ring: records hold at most 16 KiB - 8, so the long values below are fragmented. */
const CAPACITY = 64 * KiB

type Typed = Array<{ value: unknown, type: string }>

/**
 * Sends `values` both ways with `codec` (a built-in name, or a codec of
 * channel-helpers known to both sides by name) and returns what arrived:
 * `there` is what the other process received from us, `here` what we
 * received from it.
 */
async function roundTrip (t: Test, peer: ChannelPeer, codec: string, values: unknown[]): Promise<{ there: Typed, here: unknown[] }> {
  const local = codec === 'point' ? pointCodec : codec === 'picky' ? pickyCodec : codec as 'json'
  const out = channelName()
  const back = channelName()
  const producer = closeAtEnd(t, Producer.open<unknown>(out, { capacity: CAPACITY, codec: local as 'json' }))
  const consumer = closeAtEnd(t, Consumer.open<unknown>(back, { capacity: CAPACITY, codec: local as 'json' }))
  await peer.call('openConsumer', out, { codec })
  await peer.call('openProducer', back, { codec })

  const received = peer.call<Typed>('receiveTyped', values.length)
  for (const value of values) await producer.send(value)
  const there = await received

  const sent = peer.call('send', values)
  const here: unknown[] = []
  for (let i = 0; i < values.length; i++) here.push(await consumer.receive({ timeout: 30_000 }))
  await sent

  await peer.call('closeConsumer')
  await peer.call('closeProducer')
  producer.close()
  consumer.close()
  return { there, here }
}

/** A string of 1-, 2-, 3- and 4-byte characters, so fragment boundaries fall inside characters. */
function mixedText (chars: number): string {
  const alphabet = ['a', 'é', 'ß', '€', '中', '😀', '🎉', 'Z', '\u0000', '\n']
  let text = ''
  for (let i = 0; i < chars; i++) text += alphabet[(i * 7 + (i >> 3)) % alphabet.length]
  return text
}

t.test('built-in codecs carry their values intact between processes, both ways', async (t) => {
  const peer = new ChannelPeer(t)

  t.test('bytes: Buffers and Uint8Arrays (views too) go in, Buffers come out', async (t) => {
    const backing = new Uint8Array(64).map((_, i) => i)
    const values = [
      Buffer.from('a Buffer'),
      new Uint8Array([0, 1, 2, 253, 254, 255]),
      backing.subarray(10, 20), // a view into a larger buffer: only its bytes travel
      Buffer.alloc(0),
      Buffer.alloc(40 * KiB, 0xa5) // fragmented
    ]
    const expected = values.map((v) => Buffer.from(v))
    const { there, here } = await roundTrip(t, peer, 'bytes', values)
    t.same(there.map((r) => r.type), values.map(() => 'Buffer'), 'Buffers arrive there')
    t.same(there.map((r) => r.value), expected)
    t.ok(here.every((v) => Buffer.isBuffer(v)), 'Buffers arrive here')
    t.same(here, expected)
  })

  t.test('utf8: multi-byte characters, emoji, the empty string, and strings long enough to be fragmented', async (t) => {
    const values = [
      'plain ascii',
      'é ß ü — “quotes” ½',
      '中文 日本語 한국어',
      '👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇯🇵',
      '',
      'a\u0000b', // NUL is an ordinary character
      'x'.repeat(5461), // over a third of a record as UTF-16 length, under it as bytes
      '€'.repeat(6000), // 18 000 bytes: just over one record
      mixedText(100_000), // several fragments, boundaries inside characters
      '😀'.repeat(50_000)
    ]
    const { there, here } = await roundTrip(t, peer, 'utf8', values)
    t.same(there.map((r) => r.type), values.map(() => 'string'))
    t.ok(there.every((r, i) => r.value === values[i]), 'identical strings arrive there')
    t.ok(here.every((v, i) => v === values[i]), 'identical strings arrive here')
  })

  t.test('json: nested objects, arrays, numbers, null, booleans and top-level primitives', async (t) => {
    const values = [
      { nested: { deeper: { deepest: [1, [2, [3, { four: 4 }]]] } }, list: ['a', 'b'], empty: {}, none: [] },
      [1, -1, 0, 3.141592653589793, 1e300, -2.5e-300, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER],
      { nothing: null, yes: true, no: false, text: 'ünïcødé 😀', quote: '"\\\n\t' },
      null,
      42,
      'a string',
      true,
      [],
      { big: Array.from({ length: 3000 }, (_, i) => ({ i, name: `item ${i}`, even: i % 2 === 0 })) } // fragmented
    ]
    const { there, here } = await roundTrip(t, peer, 'json', values)
    t.same(there.map((r) => r.value), values)
    t.same(here, values)
    t.strictSame(here, values)
  })

  t.test('structured: Map, Set, Date, BigInt, typed arrays, nested, and a cycle', async (t) => {
    const cyclic: { name: string, self?: unknown } = { name: 'cycle' }
    cyclic.self = cyclic
    const values = [
      new Map<unknown, unknown>([['a', 1], [2, { b: [3] }], ['set', new Set(['x', 'y'])]]),
      new Set([1, 'two', 3n]),
      new Date('2024-02-29T12:34:56.789Z'),
      12345678901234567890123456789n,
      -1n,
      new Float64Array([1.5, -0, Infinity, NaN]),
      new Int16Array([-32768, 32767]),
      new Uint8Array([1, 2, 3]),
      new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n]),
      { when: new Date(0), ids: new Set([1n, 2n]), index: new Map([['k', new Uint32Array([7])]]), missing: undefined, re: /a+b/gi },
      [undefined, null, NaN, -0],
      cyclic,
      new Map(Array.from({ length: 2000 }, (_, i) => [i, `value ${i}`])) // fragmented
    ]
    const { there, here } = await roundTrip(t, peer, 'structured', values)
    const types = ['Map', 'Set', 'Date', 'bigint', 'bigint', 'Float64Array', 'Int16Array', 'Uint8Array', 'BigInt64Array', 'Object', 'Array', 'Object', 'Map']
    t.same(there.map((r) => r.type), types, 'each value keeps its type there')
    t.strictSame(there.map((r) => r.value), values)
    t.strictSame(here, values)
    const back = here[11] as { self: unknown }
    t.equal(back.self, back, 'the cycle is rebuilt')
    t.ok(Object.is((here[5] as Float64Array)[1], -0), '-0 stays negative')
  })

  t.test('msgpack: objects, arrays, binary, long strings (decoded from a copy) and fragmented values', async (t) => {
    const values = [
      { id: 12345, op: 'update', user: 'ada', ok: true, score: 0.75, nothing: null },
      Array.from({ length: 100 }, (_, i) => i * 3.5),
      { bin: Buffer.from([0, 1, 2, 255]), note: 'a string of more than thirty-two bytes, ünïcødé 😀' },
      'x'.repeat(100),
      [1, -1, 2 ** 40, -(2 ** 40), 0.5],
      { big: Array.from({ length: 3000 }, (_, i) => ({ i, name: `item ${i}` })) } // fragmented
    ]
    const { there, here } = await roundTrip(t, peer, 'msgpack', values)
    t.same(there.map((r) => r.value), values)
    t.same(here, values)
    t.ok(Buffer.isBuffer((here[2] as { bin: unknown }).bin) || (here[2] as { bin: unknown }).bin instanceof Uint8Array, 'binary stays binary')
  })

  t.test('a codec object: encode and decode of its own run on each side', async (t) => {
    const values: Point[] = [
      { x: 1.5, y: -2.25, label: 'origin-ish' },
      { x: Number.MAX_VALUE, y: Number.MIN_VALUE, label: 'ünïcødé 😀' },
      { x: 0, y: 0, label: '' },
      { x: 3, y: 4, label: 'long '.repeat(10_000) } // fragmented
    ]
    const { there, here } = await roundTrip(t, peer, 'point', values)
    t.strictSame(there.map((r) => r.value), values)
    t.strictSame(here, values)
  })
})

t.test('structured values own their bytes: typed arrays received keep them after the ring space is reused', async (t) => {
  const peer = new ChannelPeer(t)
  const name = channelName()
  const consumer = closeAtEnd(t, Consumer.open<{ seq: number, data: Uint8Array, words: Uint32Array }>(name, { capacity: 4096, codec: 'structured' }))
  await peer.call('openProducer', name, { codec: 'structured' })
  const make = (seq: number): { seq: number, data: Uint8Array, words: Uint32Array } =>
    ({ seq, data: new Uint8Array(64).fill(seq & 0xff), words: new Uint32Array(8).fill(seq) })
  const sending = peer.call('send', Array.from({ length: 200 }, (_, seq) => make(seq))) // about ten laps of the ring
  const kept: Array<{ seq: number, data: Uint8Array, words: Uint32Array }> = []
  for (let i = 0; i < 200; i++) kept.push(await consumer.receive({ timeout: 30_000 }))
  await sending
  const changed = kept.filter((v) => !v.data.every((b) => b === (v.seq & 0xff)) || !v.words.every((w) => w === v.seq))
  t.same(changed.map((v) => v.seq), [], 'no received array changed when later messages reused its ring space')
  await peer.call('closeProducer')
  consumer.close()
  t.strictSame(kept[0], make(0), 'nor when the channel closed')
})

t.test('bytes copies own their bytes: copies of every size, kept, survive ring laps and each other', async (t) => {
  // Sizes below, inside and above the range the codec cuts from shared
  // slabs (256 B to 16 KiB), in an order that makes copies share slabs and
  // start new ones part-way.
  const sizes = [0, 1, 255, 256, 257, 1000, 4096, 4097, 16 * KiB, 16 * KiB + 1, 7, 9000, 300, 12 * KiB]
  const buffer = createChannelBuffer(64 * KiB)
  const producer = closeAtEnd(t, Producer.fromBuffer<Uint8Array>(buffer, { codec: 'bytes' }))
  const consumer = closeAtEnd(t, Consumer.fromBuffer<Uint8Array>(buffer, { codec: 'bytes' }))
  const kept: Array<{ seq: number, data: Uint8Array }> = []
  for (let seq = 0; seq < 400; seq++) { // about forty laps of the ring
    producer.sendSync(Buffer.alloc(sizes[seq % sizes.length], seq & 0xff))
    const data = seq % 2 === 0 ? consumer.receiveSync() : await consumer.receive()
    kept.push({ seq, data })
    if (seq % 3 === 0) data.fill(0xee) // a copy written to must not reach any other
  }
  t.same(kept.filter(({ data }) => !Buffer.isBuffer(data) || data.buffer instanceof SharedArrayBuffer).map((v) => v.seq), [],
    'every copy is a Buffer of private memory')
  const wrong = kept.filter(({ seq, data }) =>
    data.length !== sizes[seq % sizes.length] || !data.every((b) => b === (seq % 3 === 0 ? 0xee : seq & 0xff)))
  t.same(wrong.map((v) => v.seq), [], 'every kept copy holds its own bytes')
})

t.test('bytes copies cannot be transferred away: their slab stays, and so do the copies cut from it', async (t) => {
  const buffer = createChannelBuffer(64 * KiB)
  const producer = closeAtEnd(t, Producer.fromBuffer<Uint8Array>(buffer, { codec: 'bytes' }))
  const consumer = closeAtEnd(t, Consumer.fromBuffer<Uint8Array>(buffer, { codec: 'bytes' }))
  producer.sendSync(Buffer.alloc(1000, 1))
  const first = consumer.receiveSync()
  const { port1, port2 } = new MessageChannel()
  try {
    // Node 20 leaves an untransferable buffer out of the transfer; later versions throw.
    try { port1.postMessage(first.buffer, [first.buffer as ArrayBuffer]) } catch (err) { t.equal((err as Error).name, 'DataCloneError') }
    t.ok(first.buffer.byteLength > 0, 'the slab was not detached')
    t.ok(first.every((b) => b === 1), 'the copy keeps its bytes')
    producer.sendSync(Buffer.alloc(1000, 2))
    t.ok(consumer.receiveSync().every((b) => b === 2), 'the next copy is cut from the same slab')
  } finally {
    port1.close()
    port2.close()
  }
})

t.test('msgpack binary values own their bytes: they keep them after the ring space is reused', async (t) => {
  const buffer = createChannelBuffer(4096)
  const producer = closeAtEnd(t, Producer.fromBuffer<{ seq: number, data: Uint8Array }>(buffer, { codec: 'msgpack' }))
  const consumer = closeAtEnd(t, Consumer.fromBuffer<{ seq: number, data: Uint8Array }>(buffer, { codec: 'msgpack' }))
  const kept: Array<{ seq: number, data: Uint8Array }> = []
  for (let seq = 0; seq < 200; seq++) { // about ten laps of the ring
    producer.sendSync({ seq, data: new Uint8Array(150).fill(seq & 0xff) })
    kept.push(consumer.receiveSync())
  }
  t.same(kept.filter((v) => !v.data.every((b) => b === (v.seq & 0xff))).map((v) => v.seq), [], 'no received array changed')
})

t.test('a message the codec cannot decode fails its own receive with ERR_DECODE; the next one is delivered', async (t) => {
  const peer = new ChannelPeer(t)
  const name = channelName()
  const consumer = closeAtEnd(t, Consumer.open<string>(name, { capacity: CAPACITY, codec: pickyCodec }))
  await peer.call('openProducer', name, { codec: 'picky' })
  const longPoison = 'poison, fragmented ' + 'x'.repeat(40 * KiB)
  await peer.call('send', ['first', 'poison', 'second', longPoison, 'third', 'poison again', 'fourth', 'poison once more', 'fifth'])

  t.equal(await consumer.receive(), 'first')
  const err = await rejection(consumer.receive())
  t.equal(err.code, 'ERR_DECODE')
  t.match((err.cause as Error).message, /refusing "poison"/, 'the codec\'s error is the cause')
  t.equal(await consumer.receive(), 'second')
  t.equal((await rejection(consumer.receive())).code, 'ERR_DECODE', 'a fragmented message too')
  t.equal(await consumer.receive(), 'third')
  t.equal(thrown(() => consumer.tryReceive()).code, 'ERR_DECODE', 'tryReceive throws it')
  t.equal(consumer.tryReceive(), 'fourth')
  t.equal(thrown(() => consumer.receiveSync()).code, 'ERR_DECODE', 'receiveSync throws it')
  t.equal(consumer.receiveSync(), 'fifth')
  t.equal(consumer.tryReceive(), undefined)
  await peer.call('closeProducer')
})

t.test('a value the codec cannot encode fails that send; nothing of it is sent and the channel goes on', async (t) => {
  const peer = new ChannelPeer(t)
  const name = channelName()
  const bytes = closeAtEnd(t, Producer.open<unknown>(name, { codec: 'bytes' }))
  await peer.call('openConsumer', name, { codec: 'bytes' })
  t.match(await rejection(bytes.send('not bytes')), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => bytes.trySend(42), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => { bytes.sendSync({}) }, { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
  await bytes.send(Buffer.from('bytes'))
  t.same((await peer.call<Typed>('receiveTyped', 1)).map((r) => r.value), [Buffer.from('bytes')])
  bytes.close()
  await peer.call('closeConsumer')

  const other = channelName()
  const json = closeAtEnd(t, Producer.open<unknown>(other, { codec: codecs.json }))
  await peer.call('openConsumer', other)
  t.match(await rejection(json.send(undefined)), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' })
  t.match(await rejection(json.send(() => {})), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' })
  const cyclic: { self?: unknown } = {}
  cyclic.self = cyclic
  t.equal((await rejection(json.send(cyclic))).name, 'TypeError')
  await json.send({ fine: true })
  t.same(await peer.call('receive', 1), [{ fine: true }])
  json.close()
  await peer.call('closeConsumer')

  const third = channelName()
  const broken = closeAtEnd(t, Producer.open<unknown>(third, { codec: { name: 'broken', encode: () => 42 as unknown as Uint8Array, decode: () => 0 } }))
  await peer.call('openConsumer', third)
  t.throws(() => broken.trySend('anything'), { name: 'TypeError', code: 'ERR_INVALID_RETURN_VALUE' }, 'a codec that returns neither a string nor bytes')
  broken.close()
  await peer.call('closeConsumer')
})

leavesNothingInDevShm(t)
