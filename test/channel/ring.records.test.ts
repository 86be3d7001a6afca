/**
 * Records as the protocol frames them: a message in one DATA record, a larger
 * one as BEGIN, middle and END fragments (also larger than the whole ring,
 * written and read in turns), the consumer's maxMessageSize, and the
 * counters each side keeps in the header.
 */
import t, { type Test } from 'tap'

import * as L from '../../lib/channel/layout'
import { RingConsumer, RingProducer } from '../../lib/channel/ring'
import { SequenceVerifier, sequenceMessage } from '../support/prng'
import {
  bytesDiffer, consumerPosition, headerWord, makeRing, producerPosition, recordAt, type TestRing
} from '../support/ring'

const C = 4096
const M = L.maxRecordPayload(C) // 1016
const SINGLE = L.TYPE_DATA | L.FLAG_BEGIN | L.FLAG_END

function sameBytes (t: Test, actual: Uint8Array | null, expected: Uint8Array, what: string): void {
  t.equal(bytesDiffer(actual, expected), null, what)
}

/** The records from position `from` up to the published producer position, padding skipped: [index, length, type]. */
function recordsFrom (ring: TestRing, from: number): Array<[number, number, number]> {
  const records: Array<[number, number, number]> = []
  let position = from
  const end = producerPosition(ring)
  while (position !== end) {
    if (records.length > ring.capacity / 8) throw new Error(`no record ends at the producer position ${end}`)
    const index = position & (ring.capacity - 1)
    const { length, type } = recordAt(ring, index)
    if (type === L.TYPE_PADDING) {
      position = (position + ring.capacity - index) >>> 0
      continue
    }
    records.push([index, length, type])
    position = (position + L.alignRecord(length)) >>> 0
  }
  return records
}

/**
 * Sends `message` (from byte `from` on) with writeFragments in turns with
 * the consumer: write and publish what fits, let the consumer read. Returns what the consumer read (null if
 * nothing whole arrived), how many turns it took, and how many reads threw.
 */
function sendInTurns (ring: TestRing, message: Uint8Array, from = 0): { data: Buffer | null, turns: number, errors: unknown[] } {
  let offset = from
  let turns = 0
  const errors: unknown[] = []
  let data: Buffer | null = null
  while (offset < message.length || data === null) {
    if (offset < message.length) offset = ring.producer.writeFragments(message, offset)
    ring.producer.publish()
    turns++
    try {
      const read = ring.consumer.read()
      if (read !== null) {
        if (offset < message.length) throw new Error(`the consumer read a message before its END was written (offset ${offset})`)
        data = read.data
      }
    } catch (err) {
      if ((err as { code?: string }).code !== 'ERR_MESSAGE_TOO_LARGE') throw err
      errors.push(err)
    }
    if (offset === message.length && data === null && !ring.consumer.available) break
    if (turns > 1000) throw new Error('no progress after 1000 turns')
  }
  return { data, turns, errors }
}

t.test('a message that fits one record', async (t) => {
  t.test('is one DATA record flagged BEGIN|END: length, type, payload', async (t) => {
    const ring = makeRing(C)
    const message = sequenceMessage(7, 13)
    ring.producer.tryWrite(message)
    t.same(recordAt(ring, 0), { length: 13, type: SINGLE })
    sameBytes(t, ring.bytes.subarray(8, 8 + 13), message, 'the payload follows the 8-byte record header')
    ring.producer.publish()
    t.equal(producerPosition(ring), 24, 'and the record is padded to a multiple of 8')
  })

  t.test('up to maxRecordPayload bytes stays one record', async (t) => {
    const ring = makeRing(C)
    ring.producer.tryWrite(sequenceMessage(0, M))
    ring.producer.publish()
    t.same(recordsFrom(ring, 0), [[0, M, SINGLE]])
    const read = ring.consumer.read()
    t.equal(read?.shared, true)
    sameBytes(t, read?.data ?? null, sequenceMessage(0, M), 'arrives as a view')
  })
})

t.test('a string is written as one UTF-8 record, straight into the ring', async (t) => {
  t.test('its record holds exactly its UTF-8 bytes, whatever the characters', async (t) => {
    const ring = makeRing(C)
    const texts = ['', 'ascii', 'é and ß', '€ 中', '😀 🎉', 'x'.repeat(Math.floor(M / 3))]
    for (const text of texts) t.equal(ring.producer.tryWriteString(text), true, `${text.length} code units written`)
    ring.producer.publish()
    t.same(recordsFrom(ring, 0).map(([, length, type]) => [length, type]), texts.map((text) => [Buffer.byteLength(text), SINGLE]))
    for (const text of texts) t.equal(ring.consumer.read()?.data.toString('utf8'), text)
  })

  t.test('with no room for three bytes a unit, it takes its exact length; with no room for that, nothing', async (t) => {
    const ring = makeRing(C)
    const text = 'é'.repeat(200) // 400 bytes of UTF-8; 600 reserved at first
    // Records of 3 x 1008 and 664 bytes leave 408 at the end: room for a record of 400 bytes, not of 600.
    const fillers = [1000, 1000, 1000, 656]
    for (const length of fillers) t.equal(ring.producer.tryWrite(sequenceMessage(1, length)), true)
    t.equal(C - fillers.reduce((sum, length) => sum + L.alignRecord(length), 0), L.alignRecord(400))
    t.equal(ring.producer.tryWriteString(text), true, 'written at its exact length')
    t.equal(ring.producer.tryWriteString('a'), false, 'the full ring takes nothing more')
    ring.producer.publish()
    t.equal(producerPosition(ring), C, 'the ring is exactly full')
    for (const length of fillers) t.equal(ring.consumer.read()?.data.length, length)
    t.equal(ring.consumer.read()?.data.toString('utf8'), text)
    t.equal(ring.consumer.read(), null)
  })

  t.test('a claim left open, or a string whose three bytes a unit exceed a record, is refused', async (t) => {
    const ring = makeRing(C)
    t.throws(() => ring.producer.tryWriteString('x'.repeat(Math.floor(M / 3) + 1)), { code: 'ERR_OUT_OF_RANGE' })
    ring.producer.claim(8)
    t.throws(() => ring.producer.tryWriteString('x'), { code: 'ERR_BUSY' })
    ring.producer.discard()
    t.equal(ring.producer.tryWriteString('x'), true)
  })
})

t.test('a message larger than a record travels as fragments', async (t) => {
  t.test('BEGIN carries the total as a u64 and the first bytes, then middle fragments, then END', async (t) => {
    const capacity = 16384
    const max = L.maxRecordPayload(capacity) // 4088
    const ring = makeRing(capacity)
    const message = sequenceMessage(1, 10000)
    t.equal(ring.producer.writeFragments(message, 0), 10000, 'all of it fits at once')
    t.equal(ring.producer.pending, true, 'writeFragments does not publish')
    t.equal(ring.consumer.read(), null)
    ring.producer.publish()
    t.same(recordsFrom(ring, 0), [
      [0, max, L.TYPE_DATA | L.FLAG_BEGIN],
      [4096, max, L.TYPE_DATA],
      [8192, 10000 - (max - 8) - max, L.TYPE_DATA | L.FLAG_END]
    ])
    t.equal(ring.bytes.readBigUInt64LE(8), 10000n, 'the BEGIN payload starts with the total length')
    sameBytes(t, ring.bytes.subarray(16, 16 + max - 8), message.subarray(0, max - 8), 'followed by the first bytes of the message')
    sameBytes(t, ring.bytes.subarray(4096 + 8, 4096 + 8 + max), message.subarray(max - 8, 2 * max - 8), 'the middle fragment has the next bytes')
    const read = ring.consumer.read()
    t.equal(read?.shared, false, 'the message is reassembled in fresh memory')
    t.not(read?.data.buffer, ring.buffer)
    sameBytes(t, read?.data ?? null, message, 'byte-exact')
    t.equal(consumerPosition(ring), producerPosition(ring), 'the fragments were handed back as they were read')
  })

  // Sizes where fragments end exactly full, or one byte over.
  for (const length of [M + 1, M + 8, 2 * M - 8, 2 * M - 7, 3 * M - 8, 3 * M - 7]) {
    t.test(`a ${length}-byte message is split as the protocol says and arrives byte-exact`, async (t) => {
      const ring = makeRing(C)
      const message = sequenceMessage(length, length)
      const fragments = Math.ceil((length + L.FRAGMENT_TOTAL_SIZE) / M)
      const first = ring.producer.writeFragments(message, 0)
      t.equal(first, length, 'fits in an empty 4096-byte ring at once')
      ring.producer.publish()
      const records = recordsFrom(ring, 0)
      t.equal(records.length, fragments, `${fragments} fragments`)
      t.same(records.map(([, , type]) => type),
        [L.TYPE_DATA | L.FLAG_BEGIN, ...Array(fragments - 2).fill(L.TYPE_DATA), L.TYPE_DATA | L.FLAG_END])
      t.equal(records.reduce((sum, [, n]) => sum + n, 0), length + L.FRAGMENT_TOTAL_SIZE, 'payloads add up to the total plus its prefix')
      sameBytes(t, ring.consumer.read()?.data ?? null, message, 'reassembled')
      t.equal(ring.consumer.read(), null)
    })
  }

  t.test('writeFragments refuses a message that fits one record, which it would frame with a stray length prefix', async (t) => {
    const ring = makeRing(C)
    for (const length of [0, 1, M - 8, M]) {
      t.throws(() => ring.producer.writeFragments(new Uint8Array(length), 0), RangeError, `${length} bytes`)
    }
    t.equal(ring.producer.pending, false, 'nothing was written')
    t.equal(headerWord(ring, L.MESSAGES_SENT_OFFSET), 0)
  })

  t.test('a message larger than the whole ring goes through in turns, byte-exact', async (t) => {
    const ring = makeRing(C)
    const message = sequenceMessage(9, 3 * C + 123)
    const first = ring.producer.writeFragments(message, 0)
    t.ok(first > 0 && first < message.length, `the first call writes what fits (${first} bytes) and stops`)
    t.equal(ring.producer.freeBytes < M + 8, true, 'stopping only when the next fragment does not fit')
    ring.producer.publish()
    t.equal(ring.consumer.read(), null, 'the consumer has no whole message yet')
    t.equal(consumerPosition(ring), producerPosition(ring), 'but hands back every fragment it copied out')

    const { data, turns, errors } = sendInTurns(ring, message, first)
    t.same(errors, [])
    t.ok(turns >= 3, `the rest took ${turns} more turns`)
    sameBytes(t, data, message, 'byte-exact')
    t.ok(data !== null && data.buffer !== ring.buffer, 'in memory of its own')
    t.ok(ring.producer.tryWrite(sequenceMessage(11, 5)), 'and the ring is usable after it')
    ring.producer.publish()
    sameBytes(t, ring.consumer.read()?.data ?? null, sequenceMessage(11, 5), 'the next message')
  })

  t.test('messages before and after a fragmented one keep their order', async (t) => {
    const ring = makeRing(C)
    const verifier = new SequenceVerifier()
    ring.producer.tryWrite(sequenceMessage(0, 100))
    ring.producer.publish()
    sameBytes(t, ring.consumer.read()?.data ?? null, sequenceMessage(0, 100), 'first')
    ring.consumer.release()
    verifier.next = 1
    const { data } = sendInTurns(ring, sequenceMessage(1, 2 * C))
    t.equal(data !== null ? verifier.check(data) : 'nothing arrived', null)
    ring.producer.tryWrite(sequenceMessage(2, 0))
    ring.producer.publish()
    const last = ring.consumer.read()
    t.equal(last !== null ? verifier.check(last.data) : 'nothing arrived', null)
  })

  t.test('reading a fragment hands back the space of everything read before it', async (t) => {
    const ring = makeRing(C)
    ring.producer.tryWrite(sequenceMessage(0, 100))
    ring.producer.writeFragments(sequenceMessage(1, 2000), 0)
    ring.producer.publish()
    ring.consumer.read()
    t.equal(consumerPosition(ring), 0, 'a single-record message is not released by read()')
    ring.consumer.read()
    t.equal(consumerPosition(ring), producerPosition(ring), 'a fragmented one releases up to its end, the view before it included')
  })
})

t.test('maxMessageSize', async (t) => {
  t.test('a single-record message over the limit throws ERR_MESSAGE_TOO_LARGE once, and the next message is delivered', async (t) => {
    const ring = makeRing(C, { maxMessageSize: 100 })
    ring.producer.tryWrite(sequenceMessage(0, 101))
    ring.producer.tryWrite(sequenceMessage(1, 100))
    ring.producer.tryWrite(sequenceMessage(2, 0))
    ring.producer.publish()
    t.throws(() => ring.consumer.read(), { code: 'ERR_MESSAGE_TOO_LARGE', name: 'ShmChannelError' })
    sameBytes(t, ring.consumer.read()?.data ?? null, sequenceMessage(1, 100), 'a message of exactly the limit is delivered')
    t.equal(ring.consumer.read()?.data.length, 0)
    t.equal(ring.consumer.read(), null)
    ring.consumer.release()
    t.equal(ring.producer.freeBytes, C, 'the refused message\'s space is handed back with the rest')
  })

  t.test('a fragmented message over the limit throws once at its first fragment, the rest is skipped, the next is delivered', async (t) => {
    const ring = makeRing(C, { maxMessageSize: 2000 })
    ring.producer.writeFragments(sequenceMessage(0, 2001), 0)
    ring.producer.writeFragments(sequenceMessage(1, 2000), 0)
    ring.producer.publish()
    t.throws(() => ring.consumer.read(), { code: 'ERR_MESSAGE_TOO_LARGE' })
    sameBytes(t, ring.consumer.read()?.data ?? null, sequenceMessage(1, 2000), 'a fragmented message of exactly the limit')
    t.equal(ring.consumer.read(), null)
  })

  t.test('an over-limit message larger than the ring is refused once and skipped as it streams past', async (t) => {
    const ring = makeRing(C, { maxMessageSize: 5000 })
    const { data, errors } = sendInTurns(ring, sequenceMessage(0, 3 * C + 5))
    t.equal(errors.length, 1, 'one ERR_MESSAGE_TOO_LARGE')
    t.equal(data, null, 'and no message')
    t.ok(ring.producer.tryWrite(sequenceMessage(1, 50)))
    ring.producer.publish()
    sameBytes(t, ring.consumer.read()?.data ?? null, sequenceMessage(1, 50), 'the next message is delivered')
  })

  t.test('maxMessageSize 0 lets only empty messages through', async (t) => {
    const ring = makeRing(C, { maxMessageSize: 0 })
    ring.producer.tryWrite(new Uint8Array(0))
    ring.producer.tryWrite(new Uint8Array(1))
    ring.producer.tryWrite(new Uint8Array(0))
    ring.producer.publish()
    t.equal(ring.consumer.read()?.data.length, 0)
    t.throws(() => ring.consumer.read(), { code: 'ERR_MESSAGE_TOO_LARGE' })
    t.equal(ring.consumer.read()?.data.length, 0)
  })
})

t.test('counters in the header', async (t) => {
  t.test('messages and bytes sent move at publish, received at release; a fragmented message counts once, whole', async (t) => {
    const ring = makeRing(C)
    ring.producer.tryWrite(sequenceMessage(0, 10))
    ring.producer.writeFragments(sequenceMessage(1, 2000), 0)
    ring.producer.claim(30)
    ring.producer.commit(20)
    t.equal(headerWord(ring, L.MESSAGES_SENT_OFFSET), 0, 'not before publish')
    ring.producer.publish()
    t.equal(headerWord(ring, L.MESSAGES_SENT_OFFSET), 3)
    t.equal(headerWord(ring, L.MESSAGES_SENT_OFFSET + 4), 0, 'high word')
    t.equal(headerWord(ring, L.BYTES_SENT_OFFSET), 2030)

    ring.consumer.read()
    ring.consumer.read()
    ring.consumer.read()
    ring.consumer.release()
    t.equal(headerWord(ring, L.MESSAGES_RECEIVED_OFFSET), 3)
    t.equal(headerWord(ring, L.BYTES_RECEIVED_OFFSET), 2030)
  })

  t.test('new end objects on the same segment carry the counters on', async (t) => {
    const ring = makeRing(C)
    ring.producer.tryWrite(sequenceMessage(0, 10))
    ring.producer.publish()
    ring.consumer.read()
    ring.consumer.release()
    const producer = new RingProducer(ring.buffer)
    const consumer = new RingConsumer(ring.buffer)
    producer.tryWrite(sequenceMessage(1, 5))
    producer.noteFull()
    producer.publish()
    consumer.read()
    consumer.release()
    t.equal(headerWord(ring, L.MESSAGES_SENT_OFFSET), 2)
    t.equal(headerWord(ring, L.BYTES_SENT_OFFSET), 15)
    t.equal(headerWord(ring, L.MESSAGES_RECEIVED_OFFSET), 2)
    t.equal(headerWord(ring, L.BYTES_RECEIVED_OFFSET), 15)
    t.equal(headerWord(ring, L.TIMES_FULL_OFFSET), 1)
  })

  t.test('footprint bounds the ring bytes a message takes wherever it starts', async (t) => {
    for (const length of [0, 1, M, M + 1, 2000, C - 200]) {
      let worst = 0
      for (let start = 0; start < C; start += 56) {
        const ring = makeRing(C, { initialPosition: start })
        const message = new Uint8Array(length)
        const done = length <= M ? (ring.producer.tryWrite(message) ? length : 0) : ring.producer.writeFragments(message, 0)
        if (done !== length) continue // does not fit at all from here: footprint says so below
        ring.producer.publish()
        worst = Math.max(worst, (producerPosition(ring) - start) >>> 0)
      }
      const footprint = makeRing(C).producer.footprint(length)
      t.ok(worst <= footprint, `${length} bytes took at most ${worst} ring bytes; footprint says ${footprint}`)
    }
  })
})
