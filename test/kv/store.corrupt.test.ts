/**
 * Damaged store files: random bytes at random offsets, a truncated tail, a
 * zeroed header, leftovers of a writer that died before its commit, and a
 * full file system. The store opens, loses only the damaged records,
 * reports them through verify(), never shows a torn value, never crashes.
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'

import { Store } from '../../lib/index'
import { COMMIT_OFFSET, COMMIT_UNIT, DATA_START, HEADER_SIZE } from '../../lib/kv/layout'
import { Prng, seedsFromEnv } from '../support/prng'
import { closeAtEnd, leavesNothingInDevShm, SHM_PREFIX, tempDir } from '../support/shm'

/** The value of key i: long enough that a damaged byte lands in values, keys and headers alike. */
function valueOf (i: number): string {
  return `value-${i}-`.padEnd(40 + (i % 50), String.fromCharCode(97 + (i % 26)))
}

function filled (t: Test, keys: number): { file: string, end: number } {
  const file = path.join(tempDir(t), 'damaged.kv')
  const s = Store.open<string>(file, { codec: 'utf8' })
  for (let i = 0; i < keys; i++) s.set(`key${i}`, valueOf(i))
  s.close()
  const end = fs.readFileSync(file).readUInt32LE(COMMIT_OFFSET) * COMMIT_UNIT
  return { file, end }
}

function reopen (t: Test, file: string): Store<string> {
  return closeAtEnd(t, Store.open<string>(file, { codec: 'utf8', openTimeout: 50 }))
}

/** Keys whose value is neither the one written nor absent. */
function torn (s: Store<string>, keys: number): string[] {
  const out: string[] = []
  for (let i = 0; i < keys; i++) {
    const v = s.get(`key${i}`)
    if (v !== undefined && v !== valueOf(i)) out.push(`key${i}=${JSON.stringify(v)}`)
  }
  return out
}

function missing (s: Store<string>, keys: number): number {
  let n = 0
  for (let i = 0; i < keys; i++) if (!s.has(`key${i}`)) n++
  return n
}

t.test('random bytes at random offsets of the records cost only the records they touch, and are reported', (t) => {
  for (const seed of seedsFromEnv('KV_CORRUPT_SEED', [1, 2, 3, 4, 5])) {
    const keys = 300
    const { file, end } = filled(t, keys)
    const random = new Prng(seed)
    const bytes = fs.readFileSync(file)
    const hits = 1 + random.int(8)
    for (let k = 0; k < hits; k++) {
      const at = DATA_START + random.int(end - DATA_START)
      bytes[at] ^= 1 + random.int(255)
    }
    fs.writeFileSync(file, bytes)
    const s = reopen(t, file)
    t.same(torn(s, keys), [], `seed ${seed}: no torn value`)
    const lost = missing(s, keys)
    t.ok(lost >= 1 && lost <= hits, `seed ${seed}: ${hits} damaged bytes lost ${lost} keys`)
    const damaged = s.verify().damaged
    t.ok(damaged.length >= 1 && damaged.length <= hits, `seed ${seed}: ${damaged.length} damaged stretches reported`)
    t.same(s.damage, damaged, 'what open found is what verify finds')
    // Still a working store: writes after the damage read back, here and after a reopen.
    s.set('key0', 'again')
    s.close()
    t.equal(reopen(t, file).get('key0'), 'again')
  }
  t.end()
})

t.test('a truncated tail loses the records past the cut and nothing before it', (t) => {
  const keys = 200
  const { file, end } = filled(t, keys)
  const cut = DATA_START + Math.floor((end - DATA_START) * 0.6) + 3
  fs.truncateSync(file, cut)
  const s = reopen(t, file)
  t.same(torn(s, keys), [])
  const lost = missing(s, keys)
  t.ok(lost > 0 && lost < keys / 2, `lost ${lost} of ${keys}`)
  for (let i = 0; i < keys - lost; i++) if (s.get(`key${i}`) !== valueOf(i)) t.fail(`key${i} before the cut is lost`)
  t.ok(s.verify().damaged.some((d) => d.reason === 'truncated'), 'the truncation is reported')
  s.set('new', 'after the cut')
  t.equal(s.get('new'), 'after the cut')
  t.end()
})

t.test('a zeroed header is rebuilt from the records: nothing is lost', (t) => {
  const keys = 200
  const { file } = filled(t, keys)
  const fd = fs.openSync(file, 'r+')
  fs.writeSync(fd, Buffer.alloc(HEADER_SIZE), 0, HEADER_SIZE, 0)
  fs.closeSync(fd)
  const s = reopen(t, file)
  t.equal(missing(s, keys), 0)
  t.same(torn(s, keys), [])
  t.same(s.verify().damaged, [])
  s.set('key1', 'rewritten')
  t.equal(reopen(t, file).get('key1'), 'rewritten')
  t.end()
})

t.test('records a writer wrote but never committed (it died first) are not seen, and the next write replaces them', (t) => {
  const keys = 10
  const { file, end } = filled(t, keys)
  const other = Store.open<string>(path.join(path.dirname(file), 'donor.kv'), { codec: 'utf8' })
  other.set('ghost', 'never committed here')
  other.close()
  const donor = fs.readFileSync(path.join(path.dirname(file), 'donor.kv'))
  const fd = fs.openSync(file, 'r+')
  fs.writeSync(fd, donor, DATA_START, 96, end)
  fs.closeSync(fd)
  const s = reopen(t, file)
  t.notOk(s.has('ghost'))
  s.set('real', 'committed')
  t.equal(reopen(t, file).get('real'), 'committed')
  t.notOk(reopen(t, file).has('ghost'))
  t.same(s.verify().damaged, [])
  t.end()
})

t.test('a full file system', (t) => {
  const tmpfs = mountTmpfs(t, '1m')
  t.test('set fails with ENOSPC (never SIGBUS), and the store keeps everything set before', { skip: tmpfs.skip }, (t) => {
    const file = path.join(tmpfs.dir, 'full.kv')
    const s = Store.open<string>(file, { codec: 'utf8', initialSize: 16 * 1024 })
    const value = 'x'.repeat(1000)
    let set = 0
    let error: NodeJS.ErrnoException | undefined
    try {
      for (; set < 10_000; set++) s.set(`k${set}`, value + set)
    } catch (err) {
      error = err as NodeJS.ErrnoException
    }
    t.equal(error?.code, 'ENOSPC')
    t.equal(error?.syscall, 'posix_fallocate')
    t.ok(set > 500, `${set} sets fitted before`)
    t.equal(s.size, set)
    t.equal(s.get(`k${set - 1}`), value + (set - 1))
    s.close()
    const again = Store.open<string>(file, { codec: 'utf8' })
    t.equal(again.size, set)
    t.same(again.verify().damaged, [])
    again.close()
    fs.rmSync(file)
    t.end()
  })
  t.end()
})

/** A tmpfs of `size` mounted on a fresh directory (root only), unmounted when `t` ends. */
function mountTmpfs (t: Test, size: string): { dir: string, skip: string | false } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), SHM_PREFIX))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'none', dir], { stdio: 'pipe' })
  } catch (err) {
    fs.rmdirSync(dir)
    return { dir, skip: `cannot mount a tmpfs here (needs root): ${String((err as { stderr?: unknown }).stderr ?? '').trim()}` }
  }
  t.teardown(() => {
    execFileSync('umount', [dir])
    fs.rmdirSync(dir)
  })
  return { dir, skip: false }
}

leavesNothingInDevShm(t)
