/**
 * The shared header, as lib/channel/layout.ts writes it down: offsets that agree with
 * the diagram, hot words alone on their 128-byte lines, the record constants,
 * and docs/protocol.md quoting the same numbers.
 */
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'

import * as L from '../../lib/channel/layout'
import { initSegment } from '../../lib/channel/segment'

const LINE = 128
const layoutSource = fs.readFileSync(path.join(__dirname, '..', '..', 'lib', 'channel', 'layout.ts'), 'utf8')
const protocolPath = path.join(__dirname, '..', '..', 'docs', 'protocol.md')

/** Every field of the header: name, offset, size in bytes. */
const FIELDS: ReadonlyArray<readonly [string, number, number]> = [
  ['magic', L.MAGIC_OFFSET, 4],
  ['version', L.VERSION_OFFSET, 4],
  ['header size', L.HEADER_SIZE_OFFSET, 4],
  ['capacity', L.CAPACITY_OFFSET, 4],
  ['flags', L.FLAGS_OFFSET, 4],
  ['producer position', L.PRODUCER_POSITION_OFFSET, 4],
  ['messages sent', L.MESSAGES_SENT_OFFSET, 8],
  ['bytes sent', L.BYTES_SENT_OFFSET, 8],
  ['times full', L.TIMES_FULL_OFFSET, 4],
  ['wake-ups sent to consumer', L.CONSUMER_WAKEUPS_OFFSET, 4],
  ['consumer position', L.CONSUMER_POSITION_OFFSET, 4],
  ['messages received', L.MESSAGES_RECEIVED_OFFSET, 8],
  ['bytes received', L.BYTES_RECEIVED_OFFSET, 8],
  ['wake-ups sent to producer', L.PRODUCER_WAKEUPS_OFFSET, 4],
  ['consumer parked', L.CONSUMER_PARKED_OFFSET, 4],
  ['producer parked', L.PRODUCER_PARKED_OFFSET, 4],
  ['producer end', L.PRODUCER_END_OFFSET, 16],
  ['consumer end', L.CONSUMER_END_OFFSET, 16],
  ['abandoned at', L.ABANDONED_AT_OFFSET, 4],
  ['read mark', L.READ_MARK_OFFSET, 4],
  ['producer takeovers', L.PRODUCER_TAKEOVERS_OFFSET, 4],
  ['consumer takeovers', L.CONSUMER_TAKEOVERS_OFFSET, 4],
  ['time of the last producer takeover', L.PRODUCER_TAKEOVER_TIME_OFFSET, 8],
  ['time of the last consumer takeover', L.CONSUMER_TAKEOVER_TIME_OFFSET, 8],
  ['messages redelivered', L.REDELIVERED_OFFSET, 8],
  ['redeliver until', L.REDELIVER_UNTIL_OFFSET, 4]
]

/** Every exported *_OFFSET constant of lib/channel/layout.ts, by name. */
const OFFSETS = Object.entries(L).filter(([name, value]) => name.endsWith('_OFFSET') && typeof value === 'number') as Array<[string, number]>

const line = (offset: number): number => Math.floor(offset / LINE)

t.test('the header', async (t) => {
  t.test('its size is a whole number of 128-byte lines, and every field lies inside it', async (t) => {
    t.equal(L.HEADER_SIZE % LINE, 0)
    for (const [name, offset, size] of FIELDS) t.ok(offset + size <= L.HEADER_SIZE, `${name} ends at ${offset + size}`)
  })

  t.test('fields do not overlap, and each is aligned to its size (u64 halves to 4)', async (t) => {
    const sorted = [...FIELDS].sort((a, b) => a[1] - b[1])
    for (let i = 1; i < sorted.length; i++) {
      const [previous, offset, size] = sorted[i - 1]
      t.ok(offset + size <= sorted[i][1], `${previous} ends before ${sorted[i][0]} begins`)
    }
    for (const [name, offset, size] of FIELDS) t.equal(offset % Math.min(size, 8), 0, `${name} at ${offset}`)
  })

  t.test('the table above lists every *_OFFSET constant the module exports', async (t) => {
    const listed = new Set(FIELDS.map(([, offset]) => offset))
    for (const [name, value] of OFFSETS) t.ok(listed.has(value), `${name} (${value})`)
    t.equal(OFFSETS.length, FIELDS.length)
  })

  t.test('the identity line is magic, version, header size, capacity, flags: 4 bytes apart from 0', async (t) => {
    t.same([L.MAGIC_OFFSET, L.VERSION_OFFSET, L.HEADER_SIZE_OFFSET, L.CAPACITY_OFFSET, L.FLAGS_OFFSET], [0, 4, 8, 12, 16])
  })

  t.test('each hot word is on a 128-byte line of its own', async (t) => {
    const hot: Array<[string, number]> = [
      ['identity', L.MAGIC_OFFSET],
      ['producer position', L.PRODUCER_POSITION_OFFSET],
      ['consumer position', L.CONSUMER_POSITION_OFFSET],
      ['consumer parked', L.CONSUMER_PARKED_OFFSET],
      ['producer parked', L.PRODUCER_PARKED_OFFSET],
      ['ends', L.PRODUCER_END_OFFSET]
    ]
    const lines = hot.map(([, offset]) => line(offset))
    t.equal(new Set(lines).size, hot.length, `lines ${lines.join(', ')} are all different`)
    for (const [name, offset] of hot) t.equal(offset % LINE, 0, `${name} starts its line`)
  })

  t.test('each side writes its own line only: the producer\'s fields on the producer position\'s line, the consumer\'s on the consumer\'s', async (t) => {
    for (const offset of [L.MESSAGES_SENT_OFFSET, L.BYTES_SENT_OFFSET + 4, L.TIMES_FULL_OFFSET, L.CONSUMER_WAKEUPS_OFFSET]) {
      t.equal(line(offset), line(L.PRODUCER_POSITION_OFFSET), `producer field at ${offset}`)
    }
    for (const offset of [L.MESSAGES_RECEIVED_OFFSET, L.BYTES_RECEIVED_OFFSET + 4, L.PRODUCER_WAKEUPS_OFFSET]) {
      t.equal(line(offset), line(L.CONSUMER_POSITION_OFFSET), `consumer field at ${offset}`)
    }
    t.equal(line(L.CONSUMER_END_OFFSET + 15), line(L.PRODUCER_END_OFFSET), 'both ends share the ends line')
  })

  t.test('an end slot is pid, start time (u64), state in 16 bytes', async (t) => {
    t.same([L.END_PID, L.END_START_TIME, L.END_STATE], [0, 4, 12])
    t.equal(L.CONSUMER_END_OFFSET - L.PRODUCER_END_OFFSET, 16)
    t.same([L.END_FREE, L.END_OPEN, L.END_CLOSED], [0, 1, 2])
  })

  t.test('the header diagram in lib/channel/layout.ts gives each field the offset the code does', async (t) => {
    // Rows of the 32-bit-column diagram end in "| <offset>".
    const rows = layoutSource.split('\n').filter((row) => /^\s*\*\s+\|.*\|\s+\d+\b/.test(row))
    t.ok(rows.length >= FIELDS.length, `${rows.length} diagram rows`)
    const diagramLabels: Record<string, string> = {
      magic: 'magic "SHMC"',
      version: 'major version',
      'producer end': 'producer pid',
      'consumer end': 'consumer pid'
    }
    for (const [name, offset] of FIELDS) {
      const label = diagramLabels[name] ?? name
      const row = rows.find((r) => r.includes(label))
      const shown = row === undefined ? undefined : Number(/\|\s+(\d+)\b[^|]*$/.exec(row)?.[1])
      t.equal(shown, offset, `the diagram row "${label}"`)
    }
  })

  t.test('MAGIC spells "SHMC" in little-endian bytes, and initSegment puts it first', async (t) => {
    const bytes = Buffer.alloc(4)
    bytes.writeUInt32LE(L.MAGIC)
    t.equal(bytes.toString('latin1'), 'SHMC')
    const buffer = new SharedArrayBuffer(L.segmentSize(L.MIN_CAPACITY))
    initSegment(buffer, L.MIN_CAPACITY)
    const header = Buffer.from(buffer, 0, L.HEADER_SIZE)
    t.equal(header.toString('latin1', 0, 4), 'SHMC')
    t.equal(header.readUInt32LE(L.VERSION_OFFSET), (L.VERSION_MAJOR << 16) | L.VERSION_MINOR, 'major in the high half')
    t.equal(header.readUInt32LE(L.HEADER_SIZE_OFFSET), L.HEADER_SIZE)
    t.equal(header.readUInt32LE(L.CAPACITY_OFFSET), L.MIN_CAPACITY)
    t.equal(header.readUInt32LE(L.FLAGS_OFFSET), 0)
  })
})

t.test('records', async (t) => {
  t.test('type values fit the type byte and flags sit above it', async (t) => {
    for (const type of [L.TYPE_DATA, L.TYPE_PADDING]) t.equal(type & ~L.TYPE_MASK, 0)
    for (const flag of [L.FLAG_BEGIN, L.FLAG_END]) t.equal(flag & L.TYPE_MASK, 0)
    t.not(L.FLAG_BEGIN, L.FLAG_END)
    t.not(L.TYPE_DATA, L.TYPE_PADDING)
  })

  t.test('alignRecord is the header plus the payload, rounded up to 8', async (t) => {
    t.same([0, 1, 7, 8, 9, 16, 1016].map(L.alignRecord), [8, 16, 16, 16, 24, 24, 1024])
  })

  t.test('the largest record is a quarter of the ring, for every capacity allowed', async (t) => {
    for (let capacity = L.MIN_CAPACITY; capacity <= L.MAX_CAPACITY; capacity *= 2) {
      t.equal(L.alignRecord(L.maxRecordPayload(capacity)), capacity / 4, `capacity ${capacity}`)
      t.equal(L.segmentSize(capacity), L.HEADER_SIZE + capacity)
    }
    t.ok(L.maxRecordPayload(L.MIN_CAPACITY) > L.FRAGMENT_TOTAL_SIZE, 'a first fragment has room for bytes after the total')
  })

  t.test('2^32 is a multiple of every capacity, so index = position & (capacity - 1) stays right as positions wrap', async (t) => {
    t.equal(L.MAX_CAPACITY <= 2 ** 30, true)
    t.equal(2 ** 32 % L.MAX_CAPACITY, 0)
  })
})

t.test('docs/protocol.md quotes the offsets of lib/channel/layout.ts', { skip: fs.existsSync(protocolPath) ? false : 'docs/protocol.md is not written yet' }, async (t) => {
  const doc = fs.readFileSync(protocolPath, 'utf8')
  for (const [name, value] of OFFSETS) {
    t.match(doc, new RegExp(`^\\|\\s*${value}\\s*\\|`, 'm'), `${name} = ${value} has a row in the offset table`)
  }
  t.match(doc, new RegExp(`0x${L.MAGIC.toString(16)}`, 'i'), 'the magic')
  t.match(doc, new RegExp(`\\b${L.HEADER_SIZE}\\b`), 'the header size')
  for (const [name, value] of [['DATA', L.TYPE_DATA], ['PADDING', L.TYPE_PADDING], ['BEGIN', L.FLAG_BEGIN], ['END', L.FLAG_END]] as const) {
    t.match(doc, new RegExp(`${name}\\b.*0x0*${value.toString(16)}\\b`, 'i'), `${name} = 0x${value.toString(16)}`)
  }
})
