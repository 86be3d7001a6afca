/**
 * The key-value store within one process (two Store objects on one file
 * stand in for two processes where only the API is at stake; the
 * cross-process behaviour is in store.processes.test.ts).
 */
import fs from 'node:fs'
import path from 'node:path'
import t, { type Test } from 'tap'

import { Store, codecs } from '../../lib/index'
import { DATA_START, WATCHERS_OFFSET } from '../../lib/kv/layout'
import { thrown, until } from '../support/peers'
import { closeAtEnd, leavesNothingInDevShm, tempDir } from '../support/shm'

function storePath (t: Test): string {
  return path.join(tempDir(t), 'store.kv')
}

t.test('get, set, delete, has, size, keys and entries, as a Map would answer', (t) => {
  const s = closeAtEnd(t, Store.open(storePath(t)))
  t.equal(s.get('missing'), undefined)
  s.set('a', { n: 1 })
  s.set('b', [1, 2])
  s.set('a/x', 'text')
  t.same(s.get('a'), { n: 1 })
  t.ok(s.has('b'))
  t.equal(s.size, 3)
  t.same([...s.keys()], ['a', 'b', 'a/x'])
  t.same([...s.keys('a')], ['a', 'a/x'], 'keys by prefix')
  t.same([...s.entries('a/')], [['a/x', 'text']], 'entries by prefix')
  t.equal(s.delete('a'), true)
  t.equal(s.delete('a'), false, 'a second delete finds nothing')
  t.notOk(s.has('a'))
  t.equal(s.size, 2)
  s.clear()
  t.equal(s.size, 0)
  t.same([...s.keys()], [])
  t.end()
})

t.test('a second Store on the same file sees every write as soon as it returns, and the state survives a reopen', (t) => {
  const file = storePath(t)
  const a = closeAtEnd(t, Store.open(file))
  const b = closeAtEnd(t, Store.open(file))
  const misses: number[] = []
  for (let i = 0; i < 1000; i++) {
    a.set(`k${i % 37}`, i)
    if (b.get(`k${i % 37}`) !== i) misses.push(i)
  }
  t.same(misses, [], 'every value read back at once from the other Store')
  b.batch([{ type: 'set', key: 'x', value: 1 }, { type: 'delete', key: 'k0' }])
  t.equal(a.get('x'), 1)
  t.notOk(a.has('k0'))
  a.close()
  b.close()
  const c = closeAtEnd(t, Store.open(file))
  t.equal(c.size, 37)
  t.equal(c.get('k36'), 998, 'the last of 0..999 with i % 37 === 36')
  t.same(c.verify().damaged, [])
  t.end()
})

t.test('keys may be bytes; a bytes key never equals the string key of the same bytes', (t) => {
  const s = closeAtEnd(t, Store.open(storePath(t)))
  s.set(Buffer.from('k'), 'bytes')
  s.set('k', 'string')
  t.equal(s.get(Buffer.from('k')), 'bytes')
  t.equal(s.get(new Uint8Array([0x6b])), 'bytes')
  t.equal(s.get('k'), 'string')
  t.same([...s.keys()], ['k', Buffer.from('k')])
  t.same([...s.keys(Buffer.from([0x6b]))], [Buffer.from('k')])
  t.equal(thrown(() => s.set('', 1)).code, 'ERR_OUT_OF_RANGE')
  t.equal(thrown(() => s.set('x'.repeat(65536), 1)).code, 'ERR_OUT_OF_RANGE')
  t.equal(thrown(() => s.set(5 as unknown as string, 1)).code, 'ERR_INVALID_ARG_TYPE')
  t.end()
})

t.test('values go through the codecs; a typed get refuses a value written with another codec', (t) => {
  const file = storePath(t)
  const s = closeAtEnd(t, Store.open<Uint8Array>(file, { codec: 'bytes' }))
  s.set('raw', Buffer.from([1, 2, 3]))
  s.set('text', 'héllo' as unknown as Uint8Array, { codec: 'utf8' })
  s.set('map', new Map([[1, 2]]) as unknown as Uint8Array, { codec: codecs.structured })
  t.same(s.get('raw'), Buffer.from([1, 2, 3]))
  t.equal(s.get('text', 'utf8'), 'héllo')
  t.same(s.get('map', 'structured'), new Map([[1, 2]]))
  const err = thrown(() => s.get('text'))
  t.equal(err.code, 'ERR_VALUE_TYPE')
  t.match(err.message, /utf8, not bytes/)
  t.equal(thrown(() => s.get('raw', 'json')).code, 'ERR_VALUE_TYPE')
  const upper = { name: 'upper', encode: (v: string) => v.toUpperCase(), decode: (b: Buffer) => b.toString() }
  const c = closeAtEnd(t, Store.open<string>(file, { codec: upper }))
  c.set('custom', 'abc')
  t.equal(c.get('custom'), 'ABC')
  t.equal(thrown(() => c.get('raw')).code, 'ERR_VALUE_TYPE')
  t.end()
})

t.test('a key set with a ttl reads as absent once it expired, and compaction drops it', async (t) => {
  const s = closeAtEnd(t, Store.open(storePath(t)))
  s.set('short', 1, { ttl: 30 })
  s.set('long', 2, { ttl: 60_000 })
  s.set('forever', 3)
  t.equal(s.get('short'), 1)
  const until = Date.now() + 31
  while (Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 5))
  t.equal(s.get('short'), undefined)
  t.notOk(s.has('short'))
  t.equal(s.size, 2)
  t.same([...s.keys()], ['long', 'forever'])
  s.compact()
  t.equal(s.verify().keys, 2, 'the compacted file holds the two live keys only')
  t.equal(thrown(() => s.set('x', 1, { ttl: -1 })).code, 'ERR_OUT_OF_RANGE')
})

t.test('compaction keeps a batch whose records all survive as a batch, and makes single records of the rest of one', (t) => {
  const file = storePath(t)
  const s = closeAtEnd(t, Store.open<string>(file, { codec: 'utf8' }))
  const big = 'B'.repeat(3 << 20)
  s.batch(['a', 'b', 'c', 'd', 'e'].map((key) => ({ type: 'set', key, value: key })))
  s.batch(['f', 'g', 'h'].map((key) => ({ type: 'set', key, value: key })))
  // Larger than compaction's staging buffer: its flag is fixed in the new file itself.
  s.batch([{ type: 'set', key: 'big', value: big }, { type: 'set', key: 'after-big', value: '1' }])
  s.set('c', 'c2')
  s.set('e', 'e2')
  s.set('after-big', '2')
  s.compact()
  // The records of the new file in order, with their MORE flag (bit 0 of byte 5).
  const bytes = fs.readFileSync(file)
  const records: string[] = []
  for (let p = DATA_START; p < bytes.length;) {
    const keyLength = bytes.readUInt16LE(p + 6)
    if (bytes[p + 4] === 0) break
    const valueLength = bytes.readUInt32LE(p + 8)
    records.push(`${bytes.toString('utf8', p + 32, p + 32 + keyLength)}${(bytes[p + 5] & 1) !== 0 ? '+' : ''}`)
    p += Math.ceil((32 + keyLength + valueLength) / 8) * 8
  }
  t.same(records, ['a+', 'b', 'd', 'f+', 'g+', 'h', 'big', 'c', 'e', 'after-big'], 'a batch chain stays whole where its records follow each other')
  const other = closeAtEnd(t, Store.open<string>(file, { codec: 'utf8' }))
  t.same(other.verify().damaged, [])
  t.same([...other.entries()].map(([k, v]) => `${k as string}=${v.length > 10 ? v.length : v}`), ['a=a', 'b=b', 'd=d', 'f=f', 'g=g', 'h=h', `big=${big.length}`, 'c=c2', 'e=e2', 'after-big=2'])
  t.end()
})

t.test('a batch is all or nothing: a bad operation in it writes none of it', (t) => {
  const s = closeAtEnd(t, Store.open(storePath(t)))
  s.set('keep', 1)
  t.equal(thrown(() => s.batch([{ type: 'set', key: 'a', value: 1 }, { type: 'set', key: 'b', value: undefined }])).code, 'ERR_INVALID_ARG_VALUE')
  t.equal(thrown(() => s.batch([{ type: 'set', key: 'a', value: 1 }, { type: 'nope' } as never])).code, 'ERR_INVALID_ARG_VALUE')
  t.same([...s.keys()], ['keep'])
  s.batch([{ type: 'set', key: 'a', value: 1 }, { type: 'set', key: 'b', value: 2 }, { type: 'delete', key: 'keep' }])
  t.same([...s.entries()], [['a', 1], ['b', 2]])
  t.end()
})

t.test('the file grows by doubling as it fills, and compaction (automatic past the garbage ratio) shrinks it', (t) => {
  const file = storePath(t)
  const s = closeAtEnd(t, Store.open(file, { initialSize: 8192, compactMinSize: 64 * 1024 }))
  const other = closeAtEnd(t, Store.open(file))
  const value = 'v'.repeat(200)
  for (let i = 0; i < 100; i++) s.set(`key${i}`, value + i)
  const grown = s.fileSize
  t.ok(grown > 8192, `grew from 8192 to ${grown} bytes`)
  t.equal(fs.statSync(file).size, grown)
  let compacted = false
  let seen = grown
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 100; i++) s.set(`key${i}`, value + (round * 100 + i))
    if (s.fileSize < seen) compacted = true
    seen = s.fileSize
  }
  t.ok(compacted, 'the file shrank at least once')
  const v = s.verify()
  t.ok(v.used <= 2 * v.live + 64 * 1024, `used ${v.used} bytes for ${v.live} live`)
  t.equal(other.get('key99'), value + 4999, 'another Store followed the file through compactions')
  t.equal(other.size, 100)
  t.notOk(fs.existsSync(file + '.compact'))
  t.end()
})

t.test('under steady overwrites a full file is compacted instead of grown: it stays within 1.5x its live records', (t) => {
  const file = storePath(t)
  const s = closeAtEnd(t, Store.open(file, { codec: 'utf8', initialSize: 8192, compactMinSize: 64 * 1024 }))
  const other = closeAtEnd(t, Store.open(file, { codec: 'utf8' }))
  const value = 'v'.repeat(200)
  for (let i = 0; i < 400; i++) s.set(`key${i}`, value + i)
  let largest = 0
  let files = 0
  let inode = fs.statSync(file).ino
  for (let round = 0; round < 40; round++) {
    for (let i = 0; i < 400; i += 3) s.set(`key${i}`, value + (round * 400 + i))
    const now = fs.statSync(file).ino
    if (now !== inode) {
      files++
      inode = now
    }
    // After the first compaction, the file it leaves is the most there is.
    if (files > 0) largest = Math.max(largest, s.fileSize)
  }
  const v = s.verify()
  t.ok(files >= 2, `compacted ${files} times`)
  t.ok(largest <= 1.5 * (DATA_START + v.live) + 4096, `largest file ${largest} bytes for ${v.live} bytes of live records`)
  t.same(v.damaged, [])
  const expected = (i: number): string => value + (i % 3 === 0 ? 39 * 400 + i : i)
  let mismatches = 0
  for (let i = 0; i < 400; i++) if (s.get(`key${i}`) !== expected(i) || other.get(`key${i}`) !== expected(i)) mismatches++
  t.equal(mismatches, 0, 'the compacting Store and another one read the same 400 values')
  t.equal(s.size, 400)
  t.equal(other.size, 400)
  t.notOk(fs.existsSync(file + '.compact'))
  t.end()
})

t.test('a string value read once is kept decoded, and a later write of the key by anyone replaces it', (t) => {
  const file = storePath(t)
  const s = closeAtEnd(t, Store.open(file, { codec: 'utf8' }))
  const other = closeAtEnd(t, Store.open(file, { codec: 'utf8' }))
  const uncached = closeAtEnd(t, Store.open(file, { codec: 'utf8', cacheSize: 0 }))
  s.set('k', 'first')
  t.equal(other.get('k'), 'first')
  t.equal(other.get('k'), 'first', 'the second read, from the kept string')
  s.set('k', 'second')
  t.equal(other.get('k'), 'second')
  t.equal(s.get('k'), 'second')
  t.equal(uncached.get('k'), 'second')
  other.set('k', 'third')
  t.equal(s.get('k'), 'third')
  t.equal(thrown(() => s.get('k', 'json')).code, 'ERR_VALUE_TYPE', 'a typed get still checks the codec')
  // UTF-8 cannot hold a lone surrogate: the writer reads back what every other process reads.
  s.set('lone\ud800', 'value\udc00')
  t.equal(s.get('lone\ufffd'), 'value\ufffd')
  t.equal(other.get('lone\ufffd'), 'value\ufffd')
  t.same([...s.keys()], [...other.keys()])
  t.match(thrown(() => Store.open(file, { cacheSize: -1 })).message, /"cacheSize"/)
  t.end()
})

t.test('an idle watch sleeps in the kernel: after its polling window it uses no CPU', async (t) => {
  const file = storePath(t)
  const s = closeAtEnd(t, Store.open(file, { watchPollMicros: 1000 }))
  const other = closeAtEnd(t, Store.open(file))
  let heard = 0
  const w = s.watch('k', () => { heard++ })
  other.set('k', 1)
  await until(() => heard === 1, 10_000, 'the watch to hear the set')
  // The header's count of sleeping watchers turns 1 once it stopped polling.
  const header = Buffer.alloc(4)
  const sleeping = (): number => {
    const fd = fs.openSync(file, 'r')
    try {
      fs.readSync(fd, header, 0, 4, WATCHERS_OFFSET)
    } finally {
      fs.closeSync(fd)
    }
    return header.readInt32LE(0)
  }
  await until(() => sleeping() === 1, 10_000, 'the watch to sleep')
  // The lower of two windows: a fresh process's V8 background threads (compiling, collecting) count too,
  // tens of ms in one window at times; a watch that polled would burn most of both.
  const cpuMs = async (): Promise<number> => {
    const before = process.cpuUsage()
    await new Promise((resolve) => setTimeout(resolve, 300))
    const used = process.cpuUsage(before)
    return (used.user + used.system) / 1000
  }
  const least = Math.min(await cpuMs(), await cpuMs())
  t.ok(least < 100, `${least} ms of CPU in the quieter of two 300 ms windows of an idle watch`)
  other.set('k', 2)
  await until(() => heard === 2, 10_000, 'the watch to hear the next set')
  w.close()
  await until(() => sleeping() === 0, 10_000, 'the closed watch to leave the count')
})

t.test('close is idempotent, using a closed store throws ERR_STORE_CLOSED, Symbol.dispose closes', (t) => {
  const file = storePath(t)
  const s = Store.open(file)
  s.set('a', 1)
  s.close()
  s.close()
  t.ok(s.closed)
  t.equal(thrown(() => s.get('a')).code, 'ERR_STORE_CLOSED')
  t.equal(thrown(() => s.set('a', 2)).code, 'ERR_STORE_CLOSED')
  t.equal(thrown(() => s.size).code, 'ERR_STORE_CLOSED')
  let kept: Store | undefined
  {
    using d = Store.open(file)
    kept = d
    t.equal(d.get('a'), 1)
  }
  t.ok(kept.closed)
  t.end()
})

t.test('options are checked, naming the option', (t) => {
  const file = storePath(t)
  t.equal(thrown(() => Store.open('')).code, 'ERR_INVALID_ARG_TYPE')
  t.equal(thrown(() => Store.open(file, { codec: 'nope' as never })).code, 'ERR_INVALID_ARG_VALUE')
  t.match(thrown(() => Store.open(file, { compactRatio: 1 })).message, /"compactRatio"/)
  t.match(thrown(() => Store.open(file, { initialSize: 10 })).message, /"initialSize"/)
  t.match(thrown(() => Store.open(file, { durable: 'yes' as never })).message, /"durable"/)
  t.notOk(fs.existsSync(file), 'a refused open creates nothing')
  t.end()
})

t.test('a file of another kind is refused with ERR_INVALID_SEGMENT and left alone', (t) => {
  const file = storePath(t)
  fs.writeFileSync(file, Buffer.alloc(DATA_START * 2, 0x41))
  t.equal(thrown(() => Store.open(file)).code, 'ERR_INVALID_SEGMENT')
  t.equal(fs.readFileSync(file)[0], 0x41)
  t.end()
})

t.test('durable writes and sync() flush to the disk and read back the same', (t) => {
  const file = storePath(t)
  const s = closeAtEnd(t, Store.open(file, { durable: true }))
  s.set('a', 1)
  s.batch([{ type: 'set', key: 'b', value: 2 }, { type: 'set', key: 'c', value: 3 }])
  s.sync()
  t.equal(closeAtEnd(t, Store.open(file)).get('c'), 3)
  t.end()
})

t.test('two stores on one file take turns through remaps and compactions: the writer lock is always released where the other looks (it was once left held on the file left behind)', async (t) => {
  const file = path.join(tempDir(t), 'turns.kv')
  // Small and compacting early: values that grow each time make the writes remap and compact.
  const options = { initialSize: 4096, compactMinSize: 0, compactRatio: 0.1 }
  const a = closeAtEnd(t, Store.open<string>(file, options))
  const b = closeAtEnd(t, Store.open<string>(file, options))
  for (let i = 0; i < 40; i++) (i % 2 === 0 ? a : b).set(`k${i % 3}`, 'x'.repeat(200 * (i + 1)))
  for (const key of ['k0', 'k1', 'k2']) t.equal(a.get(key), b.get(key), `${key}: both see the last write`)
  t.equal(b.get('k0')?.length, 200 * 40, 'k0 holds the last write, i = 39')
})

leavesNothingInDevShm(t)
