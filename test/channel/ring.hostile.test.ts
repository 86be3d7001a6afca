/**
 * Segments that lie. The other end of a channel is another process, so every
 * byte it shares may be wrong: the consumer must refuse such a segment with
 * ERR_INVALID_SEGMENT, never read outside the ring, never loop forever and
 * never allocate more than maxMessageSize for a message. checkSegment must
 * refuse a header that is not one this version may open.
 */
import t, { type Test } from 'tap'

import * as L from '../../lib/channel/layout'
import { ShmChannelError } from '../../lib/errors'
import { REASSEMBLY_STEP, RingConsumer, RingProducer } from '../../lib/channel/ring'
import { DEFAULT_MAX_MESSAGE_SIZE, checkMaxMessageSize } from '../../lib/channel/options'
import { checkSegment, initSegment } from '../../lib/channel/segment'
import { Prng, seedsFromEnv, sequenceMessage } from '../support/prng'
import {
  consumerPosition, makeRing, producerPosition, setHeaderWord, writeRecord, type TestRing
} from '../support/ring'

const C = 4096
const M = L.maxRecordPayload(C) // 1016
const LIMIT = 10_000 // the consumers' maxMessageSize here
const SINGLE = L.TYPE_DATA | L.FLAG_BEGIN | L.FLAG_END
const BEGIN = L.TYPE_DATA | L.FLAG_BEGIN
const MIDDLE = L.TYPE_DATA
const END = L.TYPE_DATA | L.FLAG_END

/** Largest allocation the ring made while `t` ran: Buffer.allocUnsafe and Buffer.alloc are watched. */
function watchAllocations (t: Test): () => number {
  let largest = 0
  const { allocUnsafe, alloc } = Buffer
  Buffer.allocUnsafe = (size: number) => {
    largest = Math.max(largest, size)
    return allocUnsafe(size)
  }
  Buffer.alloc = ((size: number, ...rest: unknown[]) => {
    largest = Math.max(largest, size)
    return (alloc as (...args: unknown[]) => Buffer)(size, ...rest)
  }) as typeof Buffer.alloc
  t.teardown(() => {
    Buffer.allocUnsafe = allocUnsafe
    Buffer.alloc = alloc
  })
  return () => largest
}

/** Reads until read() returns null; a consumer that never stops is a failure, not a hang. */
function readAll (consumer: RingConsumer, limit = 10_000): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < limit; i++) {
    const message = consumer.read()
    if (message === null) return out
    out.push(Buffer.from(message.data))
  }
  throw new Error(`read() returned ${limit} messages from a ${C}-byte ring`)
}

/** The very next read() refuses the segment: it returns nothing it should not have. */
function refuses (t: Test, ring: TestRing, what: string): void {
  t.throws(() => ring.consumer.read(), { name: 'ShmChannelError', code: 'ERR_INVALID_SEGMENT' }, what)
}

interface RawRing extends TestRing {
  /** Where the next put() writes. */
  position: number
  /** Writes a record (a payload, or just a length) at `position`, with no wrap handling; returns its index. */
  put: (type: number, payload: Uint8Array | number) => number
  /** Stores the producer position (default: `position`), as a producer's publish would. */
  publish: (position?: number) => void
}

/** A ring whose producer is the test: records are written raw with `put`, then `publish`. */
function rawRing (initialPosition = 0, maxMessageSize = LIMIT): RawRing {
  const ring = makeRing(C, { initialPosition, maxMessageSize })
  const raw: RawRing = {
    ...ring,
    position: initialPosition,
    put (type: number, payload: Uint8Array | number): number {
      const index = raw.position & (C - 1)
      const length = typeof payload === 'number' ? payload : payload.length
      writeRecord(ring, index, length, type)
      if (typeof payload !== 'number') ring.bytes.set(payload, index + L.RECORD_HEADER_SIZE)
      raw.position = (raw.position + L.alignRecord(length)) >>> 0
      return index
    },
    publish (position = raw.position): void {
      setHeaderWord(ring, L.PRODUCER_POSITION_OFFSET, position)
    }
  }
  return raw
}

/** The payload of a BEGIN fragment: total length as u64, then `first` bytes. */
function beginPayload (total: number | bigint, first: number): Buffer {
  const payload = Buffer.alloc(L.FRAGMENT_TOTAL_SIZE + first, 0x5a)
  payload.writeBigUInt64LE(BigInt(total), 0)
  return payload
}

t.test('records that break the protocol', async (t) => {
  t.test('a record whose length runs past the end of the ring', async (t) => {
    const start = C - 416
    const ring = rawRing(start)
    ring.put(SINGLE, sequenceMessage(0, 100))
    const index = ring.put(SINGLE, 100) // at C - 304
    writeRecord(ring, index, 297, SINGLE) // 312 bytes where 304 remain
    ring.publish(start + 112 + 312) // published far enough that only the end of the ring is crossed
    t.equal(ring.consumer.read()?.data.length, 100, 'the valid record before it is delivered')
    refuses(t, ring, 'then the one that would wrap is refused')
  })

  t.test('a record longer than what is published', async (t) => {
    const ring = rawRing()
    ring.put(SINGLE, sequenceMessage(0, 100))
    ring.put(SINGLE, sequenceMessage(1, 100))
    ring.publish(112 + 64)
    t.equal(ring.consumer.read()?.data.length, 100)
    refuses(t, ring, 'a 112-byte record with 64 bytes published')
  })

  t.test('a record longer than maxRecordPayload, even where it would fit', async (t) => {
    const ring = rawRing()
    ring.put(SINGLE, M + 1)
    ring.publish()
    refuses(t, ring, `${M + 1} bytes`)
  })

  for (const length of [0xffffffff, 0xfffffff8, 0x80000000, 0x7ffffff9, C]) {
    t.test(`a record length of 0x${length.toString(16)} does not overflow into a small size`, async (t) => {
      const ring = rawRing()
      writeRecord(ring, 0, length, SINGLE)
      ring.publish(C)
      refuses(t, ring, `length 0x${length.toString(16)}`)
    })
  }

  for (const type of [0, 0x03, 0x04, 0xff, 0x401, 0x701, 0x80000301, 0x10301, 0x100, 0x300]) {
    t.test(`unknown type bits: 0x${type.toString(16)}`, async (t) => {
      const ring = rawRing()
      ring.put(SINGLE, sequenceMessage(0, 10))
      ring.put(type, 10)
      ring.publish()
      t.equal(ring.consumer.read()?.data.length, 10)
      refuses(t, ring, `type 0x${type.toString(16)}`)
    })
  }

  t.test('an untouched (zeroed) ring under a producer position that claims records', async (t) => {
    const ring = rawRing()
    ring.publish(64)
    refuses(t, ring, 'type 0 is not a record')
  })
})

t.test('padding records that break the protocol', async (t) => {
  t.test('a padding record that stops short of the end of the ring', async (t) => {
    const ring = rawRing()
    ring.put(L.TYPE_PADDING, 100)
    ring.publish(C)
    refuses(t, ring, 'padding of 100 bytes at index 0')
  })

  t.test('a padding record that claims more than the bytes to the end', async (t) => {
    const start = C - 416
    const ring = rawRing(start)
    writeRecord(ring, start & (C - 1), 416, L.TYPE_PADDING)
    ring.publish(start + 416 + 16)
    refuses(t, ring, 'padding of 416 bytes where 408 fit')
  })

  t.test('a padding record where none fits: the end of the ring is not published', async (t) => {
    const start = C - 416
    const ring = rawRing(start)
    writeRecord(ring, start & (C - 1), 408, L.TYPE_PADDING)
    ring.position = start + 416
    ring.put(SINGLE, sequenceMessage(0, 10)) // a record at index 0 that is not published either
    ring.publish(start + 200)
    refuses(t, ring, 'padding to the end with only 200 of its 416 bytes published')
  })

  for (const type of [L.TYPE_PADDING | L.FLAG_BEGIN, L.TYPE_PADDING | L.FLAG_END, L.TYPE_PADDING | 0x1000]) {
    t.test(`a padding record with flags 0x${type.toString(16)}`, async (t) => {
      const start = C - 416
      const ring = rawRing(start)
      writeRecord(ring, start & (C - 1), 408, type)
      ring.publish(start + 416)
      refuses(t, ring, 'padding carries no flags')
    })
  }

  t.test('a correct padding record is skipped (the control case)', async (t) => {
    const start = C - 416
    const ring = rawRing(start)
    writeRecord(ring, start & (C - 1), 408, L.TYPE_PADDING)
    ring.position = start + 416
    ring.put(SINGLE, sequenceMessage(0, 50))
    ring.publish()
    t.same(readAll(ring.consumer).map((m) => m.length), [50])
  })
})

t.test('producer positions that cannot be', async (t) => {
  t.test('the producer position moved backwards behind the consumer', async (t) => {
    const ring = rawRing()
    ring.put(SINGLE, sequenceMessage(0, 100))
    ring.put(SINGLE, sequenceMessage(1, 100))
    ring.publish()
    t.equal(ring.consumer.read()?.data.length, 100)
    t.equal(ring.consumer.read()?.data.length, 100)
    ring.consumer.release()
    ring.publish(112)
    refuses(t, ring, 'the producer went from 224 back to 112')
    t.throws(() => new RingConsumer(ring.buffer), { code: 'ERR_INVALID_SEGMENT' }, 'and a new consumer refuses the segment')
  })

  t.test('the producer position more than capacity ahead of the consumer', async (t) => {
    const ring = rawRing()
    ring.publish(C + 8)
    refuses(t, ring, `${C + 8} bytes ahead in a ${C}-byte ring`)
    t.throws(() => new RingProducer(ring.buffer), { code: 'ERR_INVALID_SEGMENT' })
  })

  t.test('the producer position more than capacity ahead, across 2^32', async (t) => {
    const ring = rawRing(2 ** 32 - 16)
    ring.publish(C)
    refuses(t, ring, 'from 2^32 - 16 to 4096 is 4112 bytes')
  })

  t.test('a producer position that is not on a record boundary', async (t) => {
    const ring = rawRing()
    ring.put(SINGLE, sequenceMessage(0, 100))
    ring.put(SINGLE, 0)
    ring.publish(112 + 4)
    t.equal(ring.consumer.read()?.data.length, 100)
    refuses(t, ring, 'an 8-byte record with 4 bytes published')
  })
})

t.test('fragment sequences that do not add up', async (t) => {
  t.test('a middle fragment without a BEGIN', async (t) => {
    const ring = rawRing()
    ring.put(MIDDLE, 10)
    ring.publish()
    refuses(t, ring, 'middle first')
  })

  t.test('an END fragment without a BEGIN', async (t) => {
    const ring = rawRing()
    ring.put(END, 10)
    ring.publish()
    refuses(t, ring, 'END first')
  })

  t.test('a BEGIN inside a BEGIN', async (t) => {
    const ring = rawRing()
    ring.put(BEGIN, beginPayload(3000, M - 8))
    ring.put(BEGIN, beginPayload(3000, M - 8))
    ring.publish()
    refuses(t, ring, 'two BEGINs')
  })

  t.test('a whole single-record message inside a fragmented one', async (t) => {
    const ring = rawRing()
    ring.put(BEGIN, beginPayload(3000, M - 8))
    ring.put(SINGLE, 10)
    ring.publish()
    refuses(t, ring, 'BEGIN then BEGIN|END')
  })

  t.test('an END with fewer bytes than the total', async (t) => {
    const ring = rawRing()
    ring.put(BEGIN, beginPayload(3000, M - 8))
    ring.put(MIDDLE, M)
    ring.put(END, 100)
    ring.publish()
    refuses(t, ring, '1008 + 1016 + 100 of 3000 bytes')
  })

  t.test('fragments that overrun the total', async (t) => {
    const ring = rawRing()
    ring.put(BEGIN, beginPayload(1500, M - 8))
    ring.put(MIDDLE, M)
    ring.publish()
    refuses(t, ring, '1008 + 1016 bytes of a 1500-byte message')
  })

  t.test('an END that overruns the total', async (t) => {
    const ring = rawRing()
    ring.put(BEGIN, beginPayload(1500, M - 8))
    ring.put(END, 493)
    ring.publish()
    refuses(t, ring, '1008 + 493 bytes of a 1500-byte message')
  })

  for (const total of [0, 1, M - 8]) {
    t.test(`a BEGIN whose total (${total}) is not more than its own bytes`, async (t) => {
      const ring = rawRing()
      ring.put(BEGIN, beginPayload(total, M - 8))
      ring.publish()
      refuses(t, ring, 'a fragmented message must be larger than its first fragment')
    })
  }

  t.test('a BEGIN too short to hold the total', async (t) => {
    const ring = rawRing()
    ring.put(BEGIN, 4)
    ring.publish()
    refuses(t, ring, 'a 4-byte BEGIN')
  })

  t.test('a correct fragment sequence is reassembled (the control case)', async (t) => {
    const ring = rawRing()
    const message = sequenceMessage(0, 1500)
    ring.put(BEGIN, Buffer.concat([beginPayload(1500, 0), message.subarray(0, 1000)]))
    ring.put(MIDDLE, message.subarray(1000, 1400))
    ring.put(END, message.subarray(1400))
    ring.publish()
    t.same(readAll(ring.consumer), [message])
  })
})

t.test('a message announced larger than the consumer accepts allocates nothing', async (t) => {
  for (const total of [LIMIT + 1, 2 ** 40, 2n ** 64n - 1n]) {
    t.test(`a BEGIN announcing ${total} bytes to a consumer that takes ${LIMIT}`, async (t) => {
      const largest = watchAllocations(t)
      const ring = rawRing()
      ring.put(BEGIN, beginPayload(total, M - 8))
      ring.put(END, 10)
      ring.put(SINGLE, sequenceMessage(0, 20))
      ring.publish()
      t.throws(() => ring.consumer.read(), { code: 'ERR_MESSAGE_TOO_LARGE' })
      t.same(readAll(ring.consumer).map((m) => m.length), [20], 'the announced message is skipped, the next one delivered')
      t.ok(largest() <= LIMIT, `the largest allocation was ${largest()} bytes`)
    })
  }

  t.test(`by default, a BEGIN announcing more than DEFAULT_MAX_MESSAGE_SIZE (${DEFAULT_MAX_MESSAGE_SIZE}) is refused and skipped`, async (t) => {
    t.equal(checkMaxMessageSize(undefined), DEFAULT_MAX_MESSAGE_SIZE, 'a consumer opened without maxMessageSize gets the default')
    const largest = watchAllocations(t)
    const ring = rawRing(0, DEFAULT_MAX_MESSAGE_SIZE)
    ring.put(BEGIN, beginPayload(DEFAULT_MAX_MESSAGE_SIZE + 1, M - 8))
    ring.put(END, 10)
    ring.put(SINGLE, sequenceMessage(0, 20))
    ring.publish()
    t.throws(() => ring.consumer.read(), { name: 'ShmChannelError', code: 'ERR_MESSAGE_TOO_LARGE' })
    t.same(readAll(ring.consumer).map((m) => m.length), [20])
    t.ok(largest() <= M, `the largest allocation was ${largest()} bytes`)
  })

  for (const total of [2 ** 32 + 1, 2 ** 52, 2n ** 64n - 1n]) {
    t.test(`with maxMessageSize Infinity, a BEGIN announcing ${total} bytes never allocates more than REASSEMBLY_STEP ahead of what arrived`, async (t) => {
      const largest = watchAllocations(t)
      const ring = rawRing(0, Infinity)
      ring.put(BEGIN, beginPayload(total, M - 8))
      ring.put(END, 10)
      ring.publish()
      // Over the largest Buffer (every Node for 2^64 - 1, Node 20 for 2^32 + 1)
      // it is refused at once; under it (Node 22+: 2^53 - 1) the END that comes
      // far too early breaks the protocol. Either way a library error, and no
      // allocation of the announced size.
      const err = (() => { try { readAll(ring.consumer); return undefined } catch (err) { return err as ShmChannelError } })()
      t.ok(err instanceof ShmChannelError, `read() threw ${String(err)}`)
      t.ok(['ERR_MESSAGE_TOO_LARGE', 'ERR_INVALID_SEGMENT'].includes(err?.code ?? ''), `code ${err?.code}`)
      t.ok(largest() <= REASSEMBLY_STEP, `the largest allocation was ${largest()} bytes`)
    })
  }

  t.test('a message larger than REASSEMBLY_STEP is reassembled whole from pieces', async (t) => {
    const total = REASSEMBLY_STEP * 2 + 12345
    const ring = rawRing(0, Infinity)
    const message = sequenceMessage(7, total)
    let offset = M - 8
    ring.put(BEGIN, Buffer.concat([beginPayload(total, 0), message.subarray(0, offset)]))
    ring.publish()
    const received: Buffer[] = []
    while (offset < total) {
      const chunk = Math.min(M, total - offset)
      // The consumer releases each fragment as it copies it: read as we go.
      received.push(...readAll(ring.consumer))
      ring.put(offset + chunk === total ? END : MIDDLE, message.subarray(offset, offset + chunk))
      ring.publish()
      offset += chunk
    }
    received.push(...readAll(ring.consumer))
    t.equal(received.length, 1)
    t.ok(received[0].equals(message), 'the reassembled bytes are the sent bytes')
  })
})

t.test('checkSegment', async (t) => {
  function segment (capacity = C, size = L.segmentSize(capacity)): { buffer: SharedArrayBuffer, h: Int32Array } {
    const buffer = new SharedArrayBuffer(size)
    initSegment(buffer, capacity)
    return { buffer, h: new Int32Array(buffer, 0, L.HEADER_SIZE / 4) }
  }
  const refused = { name: 'ShmChannelError', code: 'ERR_INVALID_SEGMENT' }

  t.test('a valid segment gives its capacity, also in a larger buffer', async (t) => {
    t.equal(checkSegment(segment().buffer), C)
    t.equal(checkSegment(segment(C, L.segmentSize(C) + 4096).buffer), C)
    t.equal(checkSegment(segment(65536).buffer), 65536)
  })

  t.test('magic 0 is a header not initialised yet: 0, and neither end opens it', async (t) => {
    const buffer = new SharedArrayBuffer(L.segmentSize(C))
    t.equal(checkSegment(buffer), 0)
    const { buffer: half, h } = segment()
    h[L.word(L.MAGIC_OFFSET)] = 0
    t.equal(checkSegment(half), 0, 'a header without its magic is not trusted, whatever else it holds')
    t.throws(() => new RingProducer(buffer), refused)
    t.throws(() => new RingConsumer(buffer), refused)
  })

  for (const magic of [0x53484d43, 0x434d4854, 0xffffffff, 1]) {
    t.test(`wrong magic 0x${magic.toString(16)}`, async (t) => {
      const { buffer, h } = segment()
      h[L.word(L.MAGIC_OFFSET)] = magic | 0
      t.throws(() => checkSegment(buffer), refused)
      t.throws(() => new RingConsumer(buffer), refused)
    })
  }

  t.test('an unknown major version is refused; another minor version is not', async (t) => {
    for (const major of [0, 2, 0xffff]) {
      const { buffer, h } = segment()
      h[L.word(L.VERSION_OFFSET)] = (major << 16) | L.VERSION_MINOR
      t.throws(() => checkSegment(buffer), refused, `major ${major}`)
    }
    const { buffer, h } = segment()
    h[L.word(L.VERSION_OFFSET)] = (L.VERSION_MAJOR << 16) | 0xffff
    t.equal(checkSegment(buffer), C, 'minor 0xffff')
  })

  t.test('a header size other than this version\'s', async (t) => {
    for (const size of [0, 512, L.HEADER_SIZE + 128]) {
      const { buffer, h } = segment()
      h[L.word(L.HEADER_SIZE_OFFSET)] = size
      t.throws(() => checkSegment(buffer), refused, `header size ${size}`)
    }
  })

  t.test('a capacity that is not a power of two, too small, too large, or larger than the buffer', async (t) => {
    for (const capacity of [0, 5000, C + 8, L.MIN_CAPACITY / 2, 8, 2 ** 31, 2 ** 32 - 4096]) {
      const { buffer, h } = segment()
      h[L.word(L.CAPACITY_OFFSET)] = capacity | 0
      t.throws(() => checkSegment(buffer), refused, `capacity ${capacity}`)
    }
    const { buffer, h } = segment()
    h[L.word(L.CAPACITY_OFFSET)] = 2 * C
    t.throws(() => checkSegment(buffer), refused, 'capacity 8192 in a buffer made for 4096')
    t.throws(() => new RingConsumer(buffer), refused)
  })

  t.test('a buffer smaller than a header', async (t) => {
    for (const size of [0, 4, L.HEADER_SIZE - 4]) {
      t.throws(() => checkSegment(new SharedArrayBuffer(size)), refused, `${size} bytes`)
    }
  })

  t.test('positions more than capacity apart, or the consumer ahead of the producer', async (t) => {
    for (const [producer, consumer] of [[C + 8, 0], [0, 8], [2 ** 32 - 8, 0], [C, 2 ** 32 - 8]]) {
      const { buffer, h } = segment()
      h[L.word(L.PRODUCER_POSITION_OFFSET)] = producer | 0
      h[L.word(L.CONSUMER_POSITION_OFFSET)] = consumer | 0
      t.throws(() => checkSegment(buffer), refused, `producer ${producer}, consumer ${consumer}`)
    }
  })

  t.test('positions that are not multiples of 8 (records are 8-byte aligned)', async (t) => {
    for (const [producer, consumer] of [[4, 4], [12, 8], [8, 4], [1, 1]]) {
      const { buffer, h } = segment()
      h[L.word(L.PRODUCER_POSITION_OFFSET)] = producer
      h[L.word(L.CONSUMER_POSITION_OFFSET)] = consumer
      t.throws(() => checkSegment(buffer), refused, `producer ${producer}, consumer ${consumer}`)
      t.throws(() => new RingConsumer(buffer), refused)
    }
  })
})

t.test('random corruption of a valid stream: refused or read, never anything else', async (t) => {
  const seeds = seedsFromEnv('SHM_HOSTILE_SEED', [1, 2, 3, 0xbad5eed, 0x5eed0004, 20260101])
  for (const seed of seeds) {
    t.test(`seed ${seed}`, async (t) => {
      const largest = watchAllocations(t)
      const prng = new Prng(seed)
      const outcomes = { refused: 0, tooLarge: 0, clean: 0 }
      let problem: string | null = null
      for (let round = 0; round < 250 && problem === null; round++) {
        problem = corruptAndRead(prng, outcomes)
        if (problem !== null) problem = `seed ${seed}, round ${round}: ${problem} (re-run with SHM_HOSTILE_SEED=${seed})`
      }
      t.equal(problem, null, `seed ${seed}`)
      t.ok(outcomes.refused > 50, `segments refused: ${outcomes.refused} of 250`)
      t.ok(largest() <= LIMIT, `the largest allocation was ${largest()} bytes`)
    })
  }
})

/** One round: a valid stream, a few corrupted words, then the consumer reads all it can. What went wrong, or null. */
function corruptAndRead (prng: Prng, outcomes: { refused: number, tooLarge: number, clean: number }): string | null {
  const start = prng.chance(0.3) ? (2 ** 32 - prng.int(2 * C / 8) * 8) >>> 0 : prng.int(C / 8) * 8
  const ring = makeRing(C, { initialPosition: start, maxMessageSize: LIMIT })
  // A valid stream: single records and fragmented messages, published, partly read.
  let seq = 0
  for (let bytes = 0; bytes < C / 2;) {
    const length = prng.chance(0.25) ? prng.range(M + 1, 2 * C) : prng.int(M + 1)
    const message = sequenceMessage(seq++, length)
    const done = length <= M ? (ring.producer.tryWrite(message) ? length : 0) : ring.producer.writeFragments(message, 0)
    if (done !== length) break // a partly written fragmented message stays: the consumer must cope with it too
    bytes += length + 8
  }
  ring.producer.publish()
  if (prng.chance(0.3)) ring.consumer.read()
  let consumer = ring.consumer

  const words = new Int32Array(ring.buffer)
  const interesting = [0, 1, 4, 7, 8, C - 8, C, M, M + 1, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffff8,
    L.TYPE_PADDING, SINGLE, BEGIN, MIDDLE, END, L.TYPE_PADDING | L.FLAG_END]
  for (let n = prng.range(1, 3); n > 0; n--) {
    const value = (prng.chance(0.6) ? prng.pick(interesting) : prng.u32()) | 0
    const where = prng.int(10)
    if (where === 0) {
      words[L.word(L.PRODUCER_POSITION_OFFSET)] = prng.chance(0.5) ? value : (producerPosition(ring) + prng.range(-64, 64)) | 0
    } else if (where === 1) {
      // The consumer's own position, as a new consumer finds it when it opens.
      words[L.word(L.CONSUMER_POSITION_OFFSET)] = (consumerPosition(ring) + prng.range(-8, 8) * 4) | 0
      try {
        consumer = new RingConsumer(ring.buffer, LIMIT)
      } catch (err) {
        if (!(err instanceof ShmChannelError) || err.code !== 'ERR_INVALID_SEGMENT') return `opening threw ${String(err)}`
        outcomes.refused++
        return null
      }
    } else {
      // A word of the ring: mostly record headers near the consumer.
      const near = prng.chance(0.7)
      const index = near ? (consumerPosition(ring) + prng.int(256) * 4) & (C - 1) : prng.int(C / 4) * 4
      words[L.word(L.HEADER_SIZE + index)] = value
    }
  }

  for (let reads = 0; ; reads++) {
    if (reads > C) return `read() returned ${reads} messages from a ${C}-byte ring`
    let message
    try {
      message = consumer.read()
    } catch (err) {
      if (!(err instanceof ShmChannelError)) return `read() threw ${String(err)}`
      if (err.code === 'ERR_INVALID_SEGMENT') {
        outcomes.refused++
        return null
      }
      if (err.code !== 'ERR_MESSAGE_TOO_LARGE') return `read() threw ${err.code}`
      outcomes.tooLarge++
      continue
    }
    if (message === null) {
      outcomes.clean++
      return null
    }
    if (message.data.length > LIMIT) return `read() returned ${message.data.length} bytes, over maxMessageSize`
    if (message.shared) {
      const index = message.data.byteOffset - L.HEADER_SIZE
      if (message.data.buffer !== ring.buffer || index < L.RECORD_HEADER_SIZE || index + message.data.length > C) {
        return `a view at ring index ${index}, ${message.data.length} bytes, is not inside the ring`
      }
    }
    if (prng.chance(0.5)) consumer.release()
  }
}
