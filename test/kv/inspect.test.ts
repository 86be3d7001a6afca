/**
 * The inspector's store commands (`shm-channel kv-ls|kv-get|kv-dump|kv-verify|kv-compact`),
 * run in-process with captured output.
 */
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'

import { Store } from '../../lib/index'
import { DATA_START } from '../../lib/kv/layout'
import { EXIT_FAILURE, EXIT_OK, main } from '../../lib/tools/cli'
import { leavesNothingInDevShm, tempDir } from '../support/shm'

async function run (...argv: string[]): Promise<{ code: number, out: string, err: string }> {
  let out = ''
  let err = ''
  const code = await main(argv, { stdout: { write: (s: string) => { out += s } }, stderr: { write: (s: string) => { err += s } } })
  return { code, out, err }
}

t.test('kv-ls finds store files; kv-get and kv-dump decode each value with the codec that wrote it', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'app.kv')
  fs.writeFileSync(path.join(dir, 'not-a-store.txt'), 'hello')
  const s = Store.open(file)
  s.set('config', { dark: true })
  s.set('name', 'shm', { codec: 'utf8' })
  s.set(Buffer.from([1, 2]), Buffer.from([3]), { codec: 'bytes' })
  s.close()
  const ls = await run('kv-ls', dir, '--json')
  t.equal(ls.code, EXIT_OK)
  t.same(JSON.parse(ls.out).map((e: { path: string }) => e.path), [file])
  t.same(await run('kv-get', file, 'config'), { code: EXIT_OK, out: '{"dark":true}\n', err: '' })
  t.same(JSON.parse((await run('kv-get', file, 'name', '--json')).out), { key: 'name', codec: 'utf8', value: 'shm' })
  const missing = await run('kv-get', file, 'nope')
  t.equal(missing.code, EXIT_FAILURE)
  t.match(missing.err, 'no key "nope"')
  t.same((await run('kv-dump', file)).out.split('\n'), ['config\tjson\t{"dark":true}', 'name\tutf8\t"shm"', 'hex:0102\tbytes\thex:03', ''])
  const absent = await run('kv-get', path.join(dir, 'absent.kv'), 'x')
  t.equal(absent.code, EXIT_FAILURE)
  t.notOk(fs.existsSync(path.join(dir, 'absent.kv')), 'inspecting never creates a store')
})

t.test('kv-verify reports damage (exit 1) and kv-compact shrinks the file', async (t) => {
  const file = path.join(tempDir(t), 'big.kv')
  const s = Store.open(file, { compactMinSize: 2 ** 40 })
  for (let i = 0; i < 2000; i++) s.set(`k${i % 10}`, 'x'.repeat(200))
  s.close()
  t.equal((await run('kv-verify', file)).code, EXIT_OK)
  const compacted = await run('kv-compact', file)
  t.equal(compacted.code, EXIT_OK, compacted.err)
  t.match(compacted.out, /-> 64 KiB/)
  const bytes = fs.readFileSync(file)
  bytes[DATA_START + 40] ^= 0xff
  fs.writeFileSync(file, bytes)
  const verified = await run('kv-verify', file, '--json')
  t.equal(verified.code, EXIT_FAILURE)
  t.equal(JSON.parse(verified.out).damaged.length, 1)
})

leavesNothingInDevShm(t)
