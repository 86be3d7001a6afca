/**
 * The ring at its edges, both ends in this thread: where records wrap, when
 * it is empty or full, claims that are aborted or shortened, what publish()
 * and release() make visible, and positions that run past 2^32.
 */
import t, { type Test } from 'tap'

import * as L from '../../lib/channel/layout'
import { RingConsumer } from '../../lib/channel/ring'
import { checkSegment } from '../../lib/channel/segment'
import { Prng, SequenceVerifier, sequenceMessage } from '../support/prng'
import {
  bytesDiffer, consumerPosition, headerWord, indexOf, makeRing, producerPosition, recordAt,
  setHeaderWord, type TestRing
} from '../support/ring'

const C = 4096
const M = L.maxRecordPayload(C) // 1016: a record of M bytes takes C/4
const SINGLE = L.TYPE_DATA | L.FLAG_BEGIN | L.FLAG_END

function sameBytes (t: Test, actual: Uint8Array | null, expected: Uint8Array, what: string): void {
  t.equal(bytesDiffer(actual, expected), null, what)
}

/** Reads one message that must be there. */
function readOne (t: Test, ring: TestRing): Buffer {
  const message = ring.consumer.read()
  if (message === null) {
    t.fail('expected a message, read() returned null')
    return Buffer.alloc(0)
  }
  return message.data
}

t.test('wrapping at the end of the ring', async (t) => {
  t.test('inserts a padding record when the message does not fit before the end', async (t) => {
    const start = C - 416 // 416 bytes to the end; a 500-byte record takes 512
    const ring = makeRing(C, { initialPosition: start })
    const message = sequenceMessage(1, 500)

    const view = ring.producer.claim(500)
    if (view === null) throw new Error('claim on an empty ring returned null')
    t.equal(indexOf(view), L.RECORD_HEADER_SIZE, 'the claimed payload starts right after a record header at index 0')
    t.same(recordAt(ring, start), { length: 416 - L.RECORD_HEADER_SIZE, type: L.TYPE_PADDING },
      'a PADDING record with no flags fills the rest of the ring: its length is the bytes to the end minus its header')
    view.set(message)
    ring.producer.commit()
    ring.producer.publish()

    t.same(recordAt(ring, 0), { length: 500, type: SINGLE }, 'the message is one DATA|BEGIN|END record at index 0')
    t.equal(producerPosition(ring), start + 416 + 512, 'the producer position counts the padding and the record')
    t.equal(ring.producer.freeBytes, C - 416 - 512)

    const read = ring.consumer.read()
    sameBytes(t, read?.data ?? null, message, 'the consumer skips the padding and reads the message')
    t.equal(read?.data !== undefined ? indexOf(read.data) : -1, L.RECORD_HEADER_SIZE, 'the view it returns is the record at index 0')
    t.equal(ring.consumer.read(), null, 'and nothing else')
    ring.consumer.release()
    t.equal(consumerPosition(ring), start + 416 + 512, 'the consumer hands back the padding with the record')
    t.equal(ring.producer.freeBytes, C)
  })

  t.test('tryWrite pads the same way as claim', async (t) => {
    const start = C - 416
    const ring = makeRing(C, { initialPosition: start })
    const message = sequenceMessage(2, 500)
    t.ok(ring.producer.tryWrite(message))
    t.same(recordAt(ring, start), { length: 408, type: L.TYPE_PADDING })
    t.same(recordAt(ring, 0), { length: 500, type: SINGLE })
    ring.producer.publish()
    sameBytes(t, readOne(t, ring), message, 'the message arrives whole')
  })

  t.test('8 bytes before the end take an empty padding record', async (t) => {
    const ring = makeRing(C, { initialPosition: C - 8 })
    const message = sequenceMessage(3, 1)
    t.ok(ring.producer.tryWrite(message), 'a 1-byte record (16 bytes) does not fit in 8')
    t.same(recordAt(ring, C - 8), { length: 0, type: L.TYPE_PADDING }, 'a padding record is only its header')
    ring.producer.publish()
    sameBytes(t, readOne(t, ring), message, 'the consumer skips the empty padding')
    t.equal(ring.consumer.read(), null)
  })

  t.test('a record that ends exactly at the end of the ring needs no padding, and the next starts at index 0', async (t) => {
    const start = C - 512
    const ring = makeRing(C, { initialPosition: start })
    const last = sequenceMessage(4, 504) // 8 + 504 = 512: ends exactly at capacity
    const first = sequenceMessage(5, 100)
    t.ok(ring.producer.tryWrite(last))
    t.equal(ring.producer.freeBytes, C - 512)
    t.ok(ring.producer.tryWrite(first))
    t.same(recordAt(ring, start), { length: 504, type: SINGLE }, 'the first record is the message, not padding')
    t.same(recordAt(ring, 0), { length: 100, type: SINGLE }, 'the next record is at index 0')
    ring.producer.publish()
    t.equal(producerPosition(ring), start + 512 + 112, 'no byte went to padding')

    const a = readOne(t, ring)
    t.equal(indexOf(a), start + L.RECORD_HEADER_SIZE)
    sameBytes(t, a, last, 'the record at the end arrives whole')
    const b = readOne(t, ring)
    t.equal(indexOf(b), L.RECORD_HEADER_SIZE)
    sameBytes(t, b, first, 'the record at index 0 arrives whole')
  })

  t.test('an empty record fits exactly in the last 8 bytes', async (t) => {
    const ring = makeRing(C, { initialPosition: C - 8 })
    t.ok(ring.producer.tryWrite(Buffer.alloc(0)))
    t.same(recordAt(ring, C - 8), { length: 0, type: SINGLE }, 'a DATA record, not padding')
    ring.producer.publish()
    t.equal(readOne(t, ring).length, 0)
    t.equal(ring.consumer.read(), null)
    ring.consumer.release()
    t.equal(consumerPosition(ring), C)
  })
})

t.test('empty and full', async (t) => {
  t.test('an empty ring reads nothing and has all its capacity free', async (t) => {
    const ring = makeRing(C)
    t.equal(ring.consumer.read(), null)
    t.equal(ring.consumer.next(), null)
    t.equal(ring.consumer.available, false)
    t.equal(ring.consumer.unreleased, 0)
    t.equal(ring.producer.freeBytes, C)
    t.equal(ring.producer.drained, true)
    t.equal(ring.producer.pending, false)
    t.equal(ring.producer.hasRoomFor(M), true)
    t.equal(ring.consumer.release(), false, 'releasing nothing stores nothing')
    t.equal(consumerPosition(ring), 0)
  })

  t.test('fills until claim returns null, counting every byte, padding included', async (t) => {
    const prng = new Prng(0xf111)
    const ring = makeRing(C, { initialPosition: 3000 })
    let position = 3000
    let written = 0
    for (;;) {
      if (written > C / 8) throw new Error(`claim never returned null: ${written} records in a ${C}-byte ring`)
      const length = prng.int(M + 1)
      const size = L.alignRecord(length)
      const toEnd = C - (position & (C - 1))
      const needed = size <= toEnd ? size : toEnd + size
      const free = C - (position - 3000)
      t.equal(ring.producer.freeBytes, free, `free bytes before record ${written}`)
      t.equal(ring.producer.hasRoomFor(length), needed <= free, `hasRoomFor(${length}) with ${free} free`)
      const view = ring.producer.claim(length)
      if (view === null) {
        t.ok(needed > free, `claim(${length}) returned null with ${free} bytes free and ${needed} needed`)
        break
      }
      t.ok(needed <= free, `claim(${length}) succeeded with ${free} bytes free and ${needed} needed`)
      view.set(sequenceMessage(written, length))
      ring.producer.commit()
      position += needed
      written++
    }
    t.ok(written >= 3, `${written} records fit`)
    t.equal(ring.producer.tryWrite(Buffer.alloc(M)), false, 'tryWrite of a full record fails too')
    ring.producer.publish()

    const verifier = new SequenceVerifier()
    t.equal(verifier.check(readOne(t, ring)), null)
    t.equal(ring.producer.claim(M), null, 'a message read but not released still holds its space')
    ring.consumer.release()
    for (let i = 1; i < written; i++) t.equal(verifier.check(readOne(t, ring)), null, `message ${i}`)
    t.equal(ring.consumer.read(), null)
    ring.consumer.release()
    t.equal(ring.producer.freeBytes, C, 'after release the whole ring is free')
    t.not(ring.producer.claim(M), null, 'and the largest record fits again')
  })

  for (const start of [0, 8, 1000 * 8, C - 8, 2 ** 32 - 8, 2 ** 32 - C / 2]) {
    t.test(`a ring starting at position ${start} holds exactly capacity bytes of records`, async (t) => {
      const ring = makeRing(C, { initialPosition: start })
      const count = C / L.RECORD_HEADER_SIZE
      let accepted = 0
      while (accepted <= count && ring.producer.tryWrite(Buffer.alloc(0))) accepted++
      t.equal(accepted, count, `${count} empty records of 8 bytes fill ${C} bytes`)
      t.equal(ring.producer.freeBytes, 0)
      t.equal(ring.producer.claim(0), null, 'not even an empty claim fits')
      ring.producer.publish()
      t.equal((producerPosition(ring) - consumerPosition(ring)) >>> 0, C, 'the producer is exactly capacity ahead')
      t.equal(checkSegment(ring.buffer), C, 'which is still a valid segment')
      let read = 0
      while (read <= count && ring.consumer.read() !== null) read++
      t.equal(read, count)
      ring.consumer.release()
      t.equal(ring.producer.freeBytes, C)
      t.ok(ring.producer.drained)
    })
  }

  t.test('four largest records fill a ring from index 0', async (t) => {
    const ring = makeRing(C)
    for (let i = 0; i < 4; i++) t.ok(ring.producer.tryWrite(sequenceMessage(i, M)), `record ${i}`)
    t.equal(ring.producer.freeBytes, 0)
    t.equal(ring.producer.tryWrite(Buffer.alloc(0)), false)
  })

  t.test('a full ring whose index is not 0 takes the next record in the space the consumer releases', async (t) => {
    const ring = makeRing(C, { initialPosition: 2000 })
    // 2000..3024, 3024..4048, padding 4048..4096, 0..1024: then 976 bytes are free.
    for (let i = 0; i < 3; i++) t.ok(ring.producer.tryWrite(sequenceMessage(i, M)), `record ${i}`)
    t.same(recordAt(ring, 4048), { length: 40, type: L.TYPE_PADDING })
    t.equal(ring.producer.freeBytes, 976)
    t.equal(ring.producer.tryWrite(sequenceMessage(3, M)), false, 'a 1024-byte record does not fit in 976')
    ring.producer.publish()

    const verifier = new SequenceVerifier()
    t.equal(verifier.check(readOne(t, ring)), null)
    ring.consumer.release()
    t.equal(ring.producer.freeBytes, 976 + 1024)
    const view = ring.producer.claim(M)
    t.not(view, null, 'the record fits once the first one is released')
    t.equal(view !== null ? indexOf(view) : -1, 1024 + L.RECORD_HEADER_SIZE, 'right after the record at index 0')
    view?.set(sequenceMessage(3, M))
    ring.producer.commit()
    ring.producer.publish()
    for (let i = 1; i < 4; i++) t.equal(verifier.check(readOne(t, ring)), null, `message ${i}`)
  })
})

t.test('zero-length messages', async (t) => {
  t.test('an empty message is one 8-byte record and arrives as an empty view', async (t) => {
    const ring = makeRing(C)
    t.ok(ring.producer.tryWrite(new Uint8Array(0)))
    t.same(recordAt(ring, 0), { length: 0, type: SINGLE })
    ring.producer.publish()
    t.equal(producerPosition(ring), L.RECORD_HEADER_SIZE)
    const message = ring.consumer.read()
    t.equal(message?.data.length, 0)
    t.equal(message?.shared, true)
    t.equal(ring.consumer.read(), null)
  })

  t.test('claim(0) and commit() make an empty message too', async (t) => {
    const ring = makeRing(C)
    const view = ring.producer.claim(0)
    t.equal(view?.length, 0)
    ring.producer.commit()
    ring.producer.publish()
    t.equal(readOne(t, ring).length, 0)
  })

  t.test('empty messages keep their place among others', async (t) => {
    const ring = makeRing(C)
    const lengths = [0, 5, 0, 0, 300, 0]
    lengths.forEach((length, i) => ring.producer.tryWrite(sequenceMessage(i, length)))
    ring.producer.publish()
    const verifier = new SequenceVerifier()
    for (const length of lengths) {
      const data = readOne(t, ring)
      t.equal(data.length, length)
      t.equal(verifier.check(data), null)
    }
    t.equal(ring.consumer.read(), null)
  })
})

t.test('claim, commit and abort', async (t) => {
  t.test('an aborted claim is never seen, and the next claim reuses its space', async (t) => {
    const ring = makeRing(C)
    const aborted = ring.producer.claim(100)
    if (aborted === null) throw new Error('claim on an empty ring returned null')
    aborted.fill(0xee)
    ring.producer.discard()
    t.equal(ring.producer.pending, false, 'nothing to publish')
    t.equal(ring.producer.publish(), false)
    t.equal(producerPosition(ring), 0, 'the producer position did not move')
    t.equal(ring.consumer.read(), null, 'the consumer sees nothing')

    const view = ring.producer.claim(50)
    t.equal(view !== null ? indexOf(view) : -1, indexOf(aborted), 'the next claim starts where the aborted one did')
    const message = sequenceMessage(1, 50)
    view?.set(message)
    ring.producer.commit()
    ring.producer.publish()
    sameBytes(t, readOne(t, ring), message, 'only the committed message arrives')
    t.equal(ring.consumer.read(), null)
  })

  t.test('an aborted claim that wrapped leaves only its padding, which the consumer skips', async (t) => {
    const ring = makeRing(C, { initialPosition: C - 16 })
    t.not(ring.producer.claim(100), null)
    ring.producer.discard()
    t.same(recordAt(ring, C - 16), { length: 8, type: L.TYPE_PADDING }, 'the padding stays written')
    t.equal(ring.producer.pending, true, 'the padding is committed')
    ring.producer.publish()
    t.equal(producerPosition(ring), C)
    t.equal(ring.consumer.read(), null, 'the consumer reads no message')
    ring.consumer.release()
    t.equal(consumerPosition(ring), C, 'but moves past the padding')
    const view = ring.producer.claim(100)
    t.equal(view !== null ? indexOf(view) : -1, L.RECORD_HEADER_SIZE, 'the next claim is at index 0, with no second padding')
  })

  t.test('abort() with no claim open changes nothing', async (t) => {
    const ring = makeRing(C)
    ring.producer.discard()
    t.ok(ring.producer.tryWrite(sequenceMessage(0, 10)))
    ring.producer.publish()
    t.equal(readOne(t, ring).length, 10)
  })

  t.test('commit with a shorter length than claimed sends only that much, and the rest is free again', async (t) => {
    const ring = makeRing(C)
    const view = ring.producer.claim(500)
    if (view === null) throw new Error('claim on an empty ring returned null')
    const message = sequenceMessage(1, 10)
    view.fill(0xee)
    view.set(message)
    ring.producer.commit(10)
    t.same(recordAt(ring, 0), { length: 10, type: SINGLE })
    const next = ring.producer.claim(20)
    t.equal(next !== null ? indexOf(next) : -1, L.alignRecord(10) + L.RECORD_HEADER_SIZE, 'the next claim starts right after 10 bytes')
    ring.producer.commit(0)
    ring.producer.publish()
    t.equal(producerPosition(ring), L.alignRecord(10) + L.alignRecord(0))
    t.equal(headerWord(ring, L.BYTES_SENT_OFFSET), 10, 'bytes sent counts what was committed')
    sameBytes(t, readOne(t, ring), message, 'exactly the committed bytes arrive')
    t.equal(readOne(t, ring).length, 0)
  })

  t.test('commit beyond the claim, or below 0, is a RangeError and leaves the claim open', async (t) => {
    const ring = makeRing(C)
    const view = ring.producer.claim(16)
    view?.set(sequenceMessage(1, 16))
    t.throws(() => { ring.producer.commit(17) }, RangeError)
    t.throws(() => { ring.producer.commit(-1) }, RangeError)
    t.equal(ring.producer.pending, false)
    ring.producer.commit(16)
    ring.producer.publish()
    t.equal(readOne(t, ring).length, 16)
  })

  t.test('a second claim, or a tryWrite, while a claim is open is ERR_BUSY; so is commit without a claim', async (t) => {
    const ring = makeRing(C)
    t.throws(() => { ring.producer.commit() }, { code: 'ERR_BUSY' })
    t.not(ring.producer.claim(8), null)
    t.throws(() => ring.producer.claim(8), { code: 'ERR_BUSY' })
    t.throws(() => ring.producer.tryWrite(Buffer.alloc(8)), { code: 'ERR_BUSY' })
    ring.producer.commit()
    t.not(ring.producer.claim(8), null, 'after commit a claim is allowed again')
  })

  t.test('a claim over maxRecordPayload throws ERR_MESSAGE_TOO_LARGE and writes nothing', async (t) => {
    for (const capacity of [C, 65536]) {
      const ring = makeRing(capacity)
      const max = ring.producer.maxRecordPayload
      t.equal(max, capacity / 4 - L.RECORD_HEADER_SIZE, `maxRecordPayload of a ${capacity}-byte ring`)
      t.throws(() => ring.producer.claim(max + 1), { code: 'ERR_MESSAGE_TOO_LARGE', name: 'ShmChannelError' })
      t.throws(() => ring.producer.tryWrite(new Uint8Array(max + 1)), { code: 'ERR_MESSAGE_TOO_LARGE' })
      t.equal(ring.producer.pending, false)
      t.equal(ring.producer.freeBytes, capacity)
      t.equal(ring.producer.claim(max)?.length, max, 'a claim of exactly maxRecordPayload is fine')
    }
  })
})

t.test('publish and release', async (t) => {
  t.test('committed records become visible only at publish()', async (t) => {
    const ring = makeRing(C)
    const messages = [sequenceMessage(0, 40), sequenceMessage(1, 0), sequenceMessage(2, 700)]
    ring.producer.tryWrite(messages[0])
    ring.producer.claim(0)
    ring.producer.commit()
    ring.producer.claim(700)?.set(messages[2])
    ring.producer.commit()

    t.equal(ring.producer.pending, true)
    t.equal(producerPosition(ring), 0, 'the shared producer position has not moved')
    t.equal(headerWord(ring, L.MESSAGES_SENT_OFFSET), 0, 'nor the counters')
    t.equal(ring.consumer.available, false)
    t.equal(ring.consumer.read(), null, 'the consumer sees nothing before publish')

    t.equal(ring.producer.publish(), false, 'no consumer is parked, so no wake-up')
    t.equal(ring.producer.pending, false)
    t.equal(headerWord(ring, L.MESSAGES_SENT_OFFSET), 3)
    t.equal(headerWord(ring, L.BYTES_SENT_OFFSET), 740)
    t.equal(ring.consumer.available, true)
    for (const message of messages) sameBytes(t, readOne(t, ring), message, `message of ${message.length} bytes`)
    t.equal(ring.consumer.read(), null)
  })

  t.test('records committed after a publish wait for the next one', async (t) => {
    const ring = makeRing(C)
    ring.producer.tryWrite(sequenceMessage(0, 8))
    ring.producer.publish()
    ring.producer.tryWrite(sequenceMessage(1, 8))
    const verifier = new SequenceVerifier()
    t.equal(verifier.check(readOne(t, ring)), null)
    t.equal(ring.consumer.read(), null, 'the second record is not published yet')
    const position = producerPosition(ring)
    t.equal(ring.producer.publish(), false)
    t.equal(producerPosition(ring), position + 16)
    t.equal(verifier.check(readOne(t, ring)), null)
    t.equal(ring.producer.publish(), false, 'publishing nothing new')
    t.equal(producerPosition(ring), position + 16, 'stores nothing')
  })

  t.test('publish wakes a parked consumer and counts it; release wakes a parked producer and counts it', async (t) => {
    const ring = makeRing(C)
    setHeaderWord(ring, L.CONSUMER_PARKED_OFFSET, 1)
    ring.producer.tryWrite(Buffer.alloc(1))
    t.equal(ring.producer.publish(), true)
    t.equal(headerWord(ring, L.CONSUMER_WAKEUPS_OFFSET), 1)
    setHeaderWord(ring, L.PRODUCER_PARKED_OFFSET, 1)
    readOne(t, ring)
    t.equal(ring.consumer.release(), true)
    t.equal(headerWord(ring, L.PRODUCER_WAKEUPS_OFFSET), 1)
  })

  t.test('drained is true once everything published is released', async (t) => {
    const ring = makeRing(C)
    ring.producer.tryWrite(Buffer.alloc(1))
    t.equal(ring.producer.drained, true, 'an unpublished record does not count')
    ring.producer.publish()
    t.equal(ring.producer.drained, false)
    readOne(t, ring)
    t.equal(ring.producer.drained, false, 'read is not enough')
    t.equal(ring.consumer.unreleased, 16)
    ring.consumer.release()
    t.equal(ring.producer.drained, true)
    t.equal(ring.consumer.unreleased, 0)
  })
})

t.test('views from read() are into shared memory and valid until release()', async (t) => {
  t.test('a single-record message is a view of its record in the SharedArrayBuffer', async (t) => {
    const ring = makeRing(C)
    ring.producer.tryWrite(sequenceMessage(0, 24))
    ring.producer.tryWrite(sequenceMessage(1, 24))
    ring.producer.publish()
    const first = ring.consumer.read()
    t.equal(first?.shared, true)
    t.equal(first?.data.buffer, ring.buffer, 'data is over the segment itself')
    t.equal(first?.data.byteOffset, L.HEADER_SIZE + L.RECORD_HEADER_SIZE)
    const second = ring.consumer.next()
    t.equal(ring.consumer.lastShared, true, 'next() reports a shared view through lastShared')
    t.equal(second?.buffer, ring.buffer)
    t.equal(second?.byteOffset, L.HEADER_SIZE + 32 + L.RECORD_HEADER_SIZE)
  })

  t.test('views stay whole while the producer fills the rest of the ring, and are overwritten only after release', async (t) => {
    const ring = makeRing(C)
    const held = [sequenceMessage(0, M), sequenceMessage(1, 300)]
    for (const message of held) ring.producer.tryWrite(message)
    ring.producer.publish()
    const views = [readOne(t, ring), readOne(t, ring)]

    let seq = 2
    while (seq < C / 8 && ring.producer.tryWrite(sequenceMessage(seq, 200))) seq++
    ring.producer.publish()
    t.ok(seq > 2, 'the producer wrote into the free space')
    views.forEach((view, i) => { sameBytes(t, view, held[i], `unreleased view ${i} is intact`) })

    for (let i = 0; i < C / 8 && ring.consumer.read() !== null; i++);
    ring.consumer.release()
    for (let i = 0; i < C / 8 && ring.producer.tryWrite(Buffer.alloc(200, 0xaa)); i++);
    t.not(bytesDiffer(views[0], held[0]), null, 'after release the producer may write over a view: it was never a copy')
  })
})

t.test('positions run past 2^32', async (t) => {
  const starts = [2 ** 32 - (3 * C) / 4, 2 ** 32 - 8, 2 ** 32 - C, 2 ** 32 - C - 8, 2 ** 32 - 1000 * 8]
  for (const start of starts) {
    t.test(`a stream starting at position ${start} (2^32 - ${2 ** 32 - start}) crosses 2^32 with every message whole`, async (t) => {
      const prng = new Prng(start)
      const ring = makeRing(C, { initialPosition: start })
      const verifier = new SequenceVerifier()
      let sent = 0
      let problem: string | null = null
      let crossed = false
      let bytes = 0
      let message: Buffer | null = null
      let offset = 0
      let stalled = 0
      // Enough traffic to go round the ring many times on both sides of 2^32.
      while (bytes < 24 * C && problem === null) {
        if (++stalled > 1000) problem = `no message went through in 1000 turns (sent ${sent})`
        if (message === null) {
          const length = prng.chance(0.15) ? prng.range(M + 1, 3 * C) : prng.int(M + 1)
          message = sequenceMessage(sent, length)
          offset = 0
        }
        if (message.length <= M) {
          if (ring.producer.tryWrite(message)) offset = message.length
        } else {
          offset = ring.producer.writeFragments(message, offset)
        }
        if (offset === message.length) {
          stalled = 0
          bytes += message.length
          sent++
          message = null
        }
        if (prng.chance(0.5) || message !== null) ring.producer.publish()
        if (producerPosition(ring) < start) crossed = true
        // The consumer drains some or all of what is there.
        const reads = message !== null ? Infinity : prng.int(4)
        for (let i = 0; i < reads && problem === null; i++) {
          const read = ring.consumer.read()
          if (read === null) break
          problem = verifier.check(read.data)
        }
        if (prng.chance(0.7) || message !== null) ring.consumer.release()
      }
      ring.producer.publish()
      for (let read = ring.consumer.read(); read !== null && problem === null; read = ring.consumer.read()) {
        problem = verifier.check(read.data)
      }
      t.equal(problem, null, `every message arrives whole and in order (seed ${start})`)
      t.equal(verifier.next, sent, `all ${sent} messages arrived`)
      t.ok(crossed, 'the producer position wrapped past 2^32')
      t.ok(consumerPosition(ring) < start, 'and so did the consumer position')
    })
  }

  t.test('a consumer opened while the producer is past 2^32 and the consumer is not reads on', async (t) => {
    const start = 2 ** 32 - 1024
    const ring = makeRing(C, { initialPosition: start })
    const messages = [sequenceMessage(0, 900), sequenceMessage(1, 900)]
    for (const message of messages) ring.producer.tryWrite(message)
    ring.producer.publish()
    t.ok(producerPosition(ring) < consumerPosition(ring), 'the positions straddle 2^32')
    t.equal(checkSegment(ring.buffer), C)
    // 912 bytes at index 3072, 112 of padding to the end, 912 at index 0.
    t.equal(ring.producer.freeBytes, C - (912 + 112 + 912))
    const consumer = new RingConsumer(ring.buffer)
    for (const message of messages) sameBytes(t, consumer.read()?.data ?? null, message, 'a message from across 2^32')
    consumer.release()
    t.equal(consumerPosition(ring), producerPosition(ring))
    t.equal(ring.producer.freeBytes, C)
  })
})
