/**
 * Regions: shared memory objects and files mapped as SharedArrayBuffers.
 * Cross-process behaviour is checked against a real forked process
 * (test/fixtures/region-peer.ts).
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import t, { type Test } from 'tap'

import { MAX_REGION_SIZE, Region, ShmChannelError } from '../../lib/index'
import { Peer, forkAsUser } from '../support/peers'
import { SHM_PREFIX, closeAtEnd, leavesNothingInDevShm, mappingsOf, shmName, tempDir, unlinkIfPresent } from '../support/shm'

const { EACCES, EEXIST, ELOOP, ENOENT, ENOSPC } = os.constants.errno
const PAGE = 4096

function writeText (region: Region, offset: number, text: string): void {
  Buffer.from(region.buffer, offset).write(text)
}

function readText (region: Region, offset: number, length: number): string {
  return Buffer.from(region.buffer, offset, length).toString()
}

t.test('a region is shared between processes', async (t) => {
  const peer = new Peer(t, 'region-peer.ts')

  t.test('a write by the creator is seen by a process that opened the name, and its writes are seen by the creator', async (t) => {
    const name = shmName(t)
    const region = closeAtEnd(t, Region.create(name, PAGE))
    writeText(region, 0, 'from the creator')
    t.same(await peer.call('open', 'shm', name), { size: PAGE, readOnly: false })
    t.equal(await peer.call('read', 0, 16), 'from the creator')
    await peer.call('write', 100, 'from the opener')
    t.equal(readText(region, 100, 15), 'from the opener')
  })

  t.test('an object created by the other process is opened here by name, and writes cross both ways', async (t) => {
    const name = shmName(t)
    t.equal(await peer.call('create', 'shm', name, 2 * PAGE), 2 * PAGE)
    await peer.call('write', PAGE, 'made over there')
    const region = closeAtEnd(t, Region.open(name))
    t.equal(region.size, 2 * PAGE)
    t.equal(readText(region, PAGE, 15), 'made over there')
    writeText(region, 0, 'answered here')
    t.equal(await peer.call('read', 0, 13), 'answered here')
  })

  t.test('createFile and openFile share a file the same way, in both directions', async (t) => {
    const file = path.join(tempDir(t), 'region')
    const region = closeAtEnd(t, Region.createFile(file, PAGE))
    t.equal(region.path, file)
    t.equal(region.name, undefined)
    writeText(region, 0, 'file, from the creator')
    t.same(await peer.call('open', 'file', file), { size: PAGE, readOnly: false })
    t.equal(await peer.call('read', 0, 22), 'file, from the creator')
    await peer.call('write', 200, 'file, from the opener')
    t.equal(readText(region, 200, 21), 'file, from the opener')

    const other = path.join(path.dirname(file), 'made-by-peer')
    await peer.call('create', 'file', other, PAGE)
    await peer.call('write', 0, 'file made over there')
    const opened = closeAtEnd(t, Region.openFile(other))
    t.equal(readText(opened, 0, 20), 'file made over there')
  })

  t.test('a read-only opener sees the writer\'s later writes', async (t) => {
    const name = shmName(t)
    const region = closeAtEnd(t, Region.create(name, PAGE))
    t.same(await peer.call('open', 'shm', name, { readOnly: true }), { size: PAGE, readOnly: true })
    writeText(region, 10, 'written after the open')
    t.equal(await peer.call('read', 10, 22), 'written after the open')
  })

  t.test('a size that is not a multiple of the page size is kept exactly, and its last byte is shared', async (t) => {
    const name = shmName(t)
    const region = closeAtEnd(t, Region.create(name, 5000))
    t.equal(region.size, 5000)
    t.equal(region.buffer.byteLength, 5000)
    t.same(await peer.call('open', 'shm', name), { size: 5000, readOnly: false })
    await peer.call('write', 4999, 'z')
    t.equal(readText(region, 4999, 1), 'z')
  })

  t.test('when the parent disconnects the peer exits cleanly', async (t) => {
    t.same(await peer.end(), { code: 0, signal: null })
  })
})

t.test('creating and opening', async (t) => {
  t.test('a name without its leading slash names the same object', (t) => {
    const name = shmName(t)
    const region = closeAtEnd(t, Region.create(name.slice(1), PAGE))
    t.equal(region.name, name)
    const again = closeAtEnd(t, Region.open(name))
    Atomics.store(new Int32Array(region.buffer), 0, 42)
    t.equal(Atomics.load(new Int32Array(again.buffer), 0), 42)
    t.end()
  })

  t.test('a new object is zero-filled', (t) => {
    const region = closeAtEnd(t, Region.create(shmName(t), 3 * PAGE))
    t.ok(new Uint8Array(region.buffer).every((b) => b === 0))
    t.end()
  })

  t.test('default permission bits are 0o600, for shared memory objects and for files', (t) => {
    const name = shmName(t)
    closeAtEnd(t, Region.create(name, PAGE))
    t.equal(fs.statSync(`/dev/shm${name}`).mode & 0o777, 0o600)
    const file = path.join(tempDir(t), 'region')
    closeAtEnd(t, Region.createFile(file, PAGE))
    t.equal(fs.statSync(file).mode & 0o777, 0o600)
    t.end()
  })

  t.test('the mode option sets the permission bits, less the umask as for open(2)', (t) => {
    const name = shmName(t)
    closeAtEnd(t, Region.create(name, PAGE, { mode: 0o640 }))
    t.equal(fs.statSync(`/dev/shm${name}`).mode & 0o777, 0o640 & ~process.umask())
    t.end()
  })

  t.test('openOrCreate creates a missing object, then opens it at its own size', (t) => {
    const name = shmName(t)
    const created = closeAtEnd(t, Region.openOrCreate(name, 2 * PAGE))
    t.equal(created.size, 2 * PAGE)
    writeText(created, 0, 'first')
    const opened = closeAtEnd(t, Region.openOrCreate(name, PAGE))
    t.equal(opened.size, 2 * PAGE, 'an existing object keeps its size')
    t.equal(readText(opened, 0, 5), 'first')
    t.end()
  })

  t.test('openOrCreate refuses an existing object smaller than asked with ERR_REGION_TOO_SMALL', (t) => {
    const name = shmName(t)
    closeAtEnd(t, Region.create(name, PAGE))
    t.throws(() => Region.openOrCreate(name, 2 * PAGE), { name: 'ShmChannelError', code: 'ERR_REGION_TOO_SMALL' })
    t.end()
  })

  t.test('unlink removes the name while existing mappings keep working', (t) => {
    const name = shmName(t)
    const region = closeAtEnd(t, Region.create(name, PAGE))
    const other = closeAtEnd(t, Region.open(name))
    Region.unlink(name)
    t.notOk(fs.existsSync(`/dev/shm${name}`))
    t.throws(() => Region.open(name), { code: 'ENOENT' })
    writeText(region, 0, 'still shared')
    t.equal(readText(other, 0, 12), 'still shared')
    t.end()
  })

  t.test('unlinkIfSame removes the name only while it still refers to the object this region mapped', (t) => {
    const name = shmName(t)
    const first = closeAtEnd(t, Region.create(name, PAGE))
    Region.unlink(name)
    const second = closeAtEnd(t, Region.create(name, PAGE))
    t.equal(first.unlinkIfSame(), false, 'a newer object under the same name is left alone')
    t.ok(fs.existsSync(`/dev/shm${name}`))
    t.equal(second.unlinkIfSame(), true)
    t.notOk(fs.existsSync(`/dev/shm${name}`))
    t.equal(second.unlinkIfSame(), false, 'a name already gone is not an error')
    t.end()
  })

  t.test('unlinkIfSame does the same for files', (t) => {
    const file = path.join(tempDir(t), 'region')
    const first = closeAtEnd(t, Region.createFile(file, PAGE))
    fs.unlinkSync(file)
    fs.writeFileSync(file, 'someone else\'s')
    t.equal(first.unlinkIfSame(), false)
    t.equal(fs.readFileSync(file, 'utf8'), 'someone else\'s')
    fs.unlinkSync(file)
    const second = closeAtEnd(t, Region.createFile(file, PAGE))
    t.equal(second.unlinkIfSame(), true)
    t.notOk(fs.existsSync(file))
    t.end()
  })

  t.test('open waits for a creator that has made the name but not sized it yet', async (t) => {
    const name = shmName(t)
    // An empty object, as another process's shm_open(O_CREAT) leaves it
    // before its ftruncate. A worker sizes it once open has begun.
    fs.writeFileSync(`/dev/shm${name}`, '', { mode: 0o600 })
    const go = new Int32Array(new SharedArrayBuffer(8))
    const worker = new Worker(`
      const { workerData: { file, go } } = require('node:worker_threads')
      Atomics.wait(go, 0, 0)          // until the parent is about to open
      Atomics.wait(go, 1, 0, 100)     // let it find the object empty for a while
      require('node:fs').truncateSync(file, 8192)
    `, { eval: true, workerData: { file: `/dev/shm${name}`, go } })
    await new Promise((resolve) => worker.once('online', resolve))
    Atomics.store(go, 0, 1)
    Atomics.notify(go, 0)
    const region = closeAtEnd(t, Region.open(name))
    t.equal(region.size, 8192)
    await new Promise((resolve) => worker.once('exit', resolve))
  })

  t.test('open refuses an object still empty after the sizing grace with ERR_REGION_TOO_SMALL', (t) => {
    const name = shmName(t)
    fs.writeFileSync(`/dev/shm${name}`, '', { mode: 0o600 })
    t.throws(() => Region.open(name), { name: 'ShmChannelError', code: 'ERR_REGION_TOO_SMALL' })
    t.end()
  })
})

t.test('system errors carry code, errno and syscall, as fs errors do', async (t) => {
  t.test('opening a name that does not exist: ENOENT from shm_open', (t) => {
    const name = shmName(t)
    t.throws(() => Region.open(name), { code: 'ENOENT', errno: -ENOENT, syscall: 'shm_open', path: name })
    t.end()
  })

  t.test('unlinking a name that does not exist: ENOENT from shm_unlink', (t) => {
    const name = shmName(t)
    t.throws(() => { Region.unlink(name) }, { code: 'ENOENT', errno: -ENOENT, syscall: 'shm_unlink', path: name })
    t.end()
  })

  t.test('opening a file that does not exist: ENOENT from open', (t) => {
    const file = path.join(tempDir(t), 'missing')
    t.throws(() => Region.openFile(file), { code: 'ENOENT', errno: -ENOENT, syscall: 'open', path: file })
    t.end()
  })

  t.test('creating a name that exists: EEXIST, and the existing object is untouched', (t) => {
    const name = shmName(t)
    const region = closeAtEnd(t, Region.create(name, PAGE))
    writeText(region, 0, 'keep me')
    t.throws(() => Region.create(name, 2 * PAGE), { code: 'EEXIST', errno: -EEXIST, syscall: 'shm_open', path: name })
    t.equal(fs.statSync(`/dev/shm${name}`).size, PAGE)
    t.equal(readText(region, 0, 7), 'keep me')
    t.end()
  })

  t.test('creating a file that exists: EEXIST, and the file is untouched', (t) => {
    const file = path.join(tempDir(t), 'exists')
    fs.writeFileSync(file, 'keep me')
    t.throws(() => Region.createFile(file, PAGE), { code: 'EEXIST', errno: -EEXIST, syscall: 'open' })
    t.equal(fs.readFileSync(file, 'utf8'), 'keep me')
    t.end()
  })

  t.test('opening an object whose mode denies the caller: EACCES', async (t) => {
    const denied = shmName(t)
    closeAtEnd(t, Region.create(denied, PAGE, { mode: 0o000 }))
    const readOnly = shmName(t)
    closeAtEnd(t, Region.create(readOnly, PAGE, { mode: 0o444 }))
    const open = unprivilegedOpener(t)
    const eacces = { code: 'EACCES', errno: -EACCES, syscall: 'shm_open' }
    await t.rejects(open(denied, {}), eacces, 'mode 0o000, read-write')
    await t.rejects(open(denied, { readOnly: true }), eacces, 'mode 0o000, read-only')
    await t.rejects(open(readOnly, {}), eacces, 'mode 0o444, read-write')
    t.same(await open(readOnly, { readOnly: true }), { size: PAGE, readOnly: true }, 'mode 0o444, read-only is allowed')
  })

  t.test('openFile refuses a symbolic link with ELOOP unless followSymlinks', (t) => {
    const dir = tempDir(t)
    const target = path.join(dir, 'target')
    const link = path.join(dir, 'link')
    closeAtEnd(t, Region.createFile(target, PAGE))
    fs.symlinkSync(target, link)
    t.throws(() => Region.openFile(link), { code: 'ELOOP', errno: -ELOOP, syscall: 'open' })
    t.throws(() => Region.openFile(link, { readOnly: true }), { code: 'ELOOP' })
    const followed = closeAtEnd(t, Region.openFile(link, { followSymlinks: true }))
    t.equal(followed.size, PAGE)
    t.end()
  })

  t.test('createFile never creates through a symbolic link: EEXIST, even with followSymlinks', (t) => {
    // O_CREAT|O_EXCL refuses any existing path, a dangling link included, and
    // never follows one: the kernel answers EEXIST before O_NOFOLLOW matters.
    const dir = tempDir(t)
    const target = path.join(dir, 'target')
    const link = path.join(dir, 'link')
    fs.symlinkSync(target, link)
    t.throws(() => Region.createFile(link, PAGE), { code: 'EEXIST', errno: -EEXIST, syscall: 'open' })
    t.throws(() => Region.createFile(link, PAGE, { followSymlinks: true }), { code: 'EEXIST' })
    t.notOk(fs.existsSync(target), 'nothing was created at the link\'s target')
    t.ok(fs.lstatSync(link).isSymbolicLink(), 'the link is left as it was')
    t.end()
  })
})

t.test('memory is reserved when a region is created (posix_fallocate), so a full file system fails then, not at first touch', async (t) => {
  const tmpfs = mountTmpfs(t, '1m')

  t.test('createFile asking 4 MiB of a 1 MiB tmpfs fails with ENOSPC and leaves no file', { skip: tmpfs.skip }, (t) => {
    const file = path.join(tmpfs.dir, 'too-big')
    t.throws(() => Region.createFile(file, 4 * 1024 * 1024), { code: 'ENOSPC', errno: -ENOSPC, syscall: 'posix_fallocate', path: file })
    t.same(fs.readdirSync(tmpfs.dir), [])
    t.end()
  })

  t.test('space reserved by one region, though never written, is not free for the next', { skip: tmpfs.skip }, (t) => {
    const first = Region.createFile(path.join(tmpfs.dir, 'first'), 512 * 1024)
    try {
      const second = path.join(tmpfs.dir, 'second')
      t.throws(() => Region.createFile(second, 768 * 1024), { code: 'ENOSPC' })
      t.notOk(fs.existsSync(second))
    } finally {
      first.close() // the file system must not be busy when it is unmounted
      fs.unlinkSync(path.join(tmpfs.dir, 'first'))
    }
    t.end()
  })

  // More than the whole of /dev/shm: the kernel refuses such a reservation
  // before allocating any page, so this never fills /dev/shm. An unlimited
  // tmpfs would try to reserve it all: never ask one.
  const { blocks, bsize } = fs.statfsSync('/dev/shm')
  const unlimited = blocks === 0 ? '/dev/shm has no size limit' : false
  t.test('Region.create asking more than /dev/shm holds fails with ENOSPC and leaves no name', { skip: unlimited }, (t) => {
    const name = shmName(t)
    t.throws(() => Region.create(name, blocks * bsize + PAGE), { code: 'ENOSPC', errno: -ENOSPC, syscall: 'posix_fallocate', path: name })
    t.notOk(fs.existsSync(`/dev/shm${name}`))
    t.end()
  })
})

t.test('arguments are checked before any system call, with Node\'s error codes', async (t) => {
  const badNames: Array<[string, unknown, string]> = [
    ['empty', '', 'ERR_INVALID_ARG_VALUE'],
    ['only a slash', '/', 'ERR_INVALID_ARG_VALUE'],
    ['a slash inside', 'a/b', 'ERR_INVALID_ARG_VALUE'],
    ['a slash inside after the leading one', '/a/b', 'ERR_INVALID_ARG_VALUE'],
    ['"."', '.', 'ERR_INVALID_ARG_VALUE'],
    ['".."', '/..', 'ERR_INVALID_ARG_VALUE'],
    ['a NUL', 'a\0b', 'ERR_INVALID_ARG_VALUE'],
    ['300 characters', 'x'.repeat(300), 'ERR_INVALID_ARG_VALUE'],
    ['256 bytes', 'x'.repeat(256), 'ERR_INVALID_ARG_VALUE'],
    ['86 characters but 258 bytes of UTF-8', '€'.repeat(86), 'ERR_INVALID_ARG_VALUE'],
    ['a number', 42, 'ERR_INVALID_ARG_TYPE'],
    ['undefined', undefined, 'ERR_INVALID_ARG_TYPE'],
    ['null', null, 'ERR_INVALID_ARG_TYPE']
  ]
  for (const [what, name, code] of badNames) {
    t.test(`a name that is ${what} is a TypeError ${code}`, (t) => {
      const wanted = { name: 'TypeError', code }
      t.throws(() => Region.create(name as string, PAGE), wanted, 'create')
      t.throws(() => Region.open(name as string), wanted, 'open')
      t.throws(() => Region.openOrCreate(name as string, PAGE), wanted, 'openOrCreate')
      t.throws(() => { Region.unlink(name as string) }, wanted, 'unlink')
      t.end()
    })
  }

  t.test('a name of exactly 255 bytes is accepted', (t) => {
    const name = shmName(t)
    const long = name + 'x'.repeat(256 - name.length)
    t.teardown(() => { unlinkIfPresent(long) })
    const region = closeAtEnd(t, Region.create(long, PAGE))
    t.equal(region.name, long)
    t.ok(fs.existsSync(`/dev/shm${long}`))
    t.end()
  })

  const badSizes: Array<[unknown, string, string]> = [
    [0, 'RangeError', 'ERR_OUT_OF_RANGE'],
    [-1, 'RangeError', 'ERR_OUT_OF_RANGE'],
    [1.5, 'RangeError', 'ERR_OUT_OF_RANGE'],
    [NaN, 'RangeError', 'ERR_OUT_OF_RANGE'],
    [Infinity, 'RangeError', 'ERR_OUT_OF_RANGE'],
    [MAX_REGION_SIZE + 1, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['x', 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['4096', 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    [4096n, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    [undefined, 'TypeError', 'ERR_INVALID_ARG_TYPE']
  ]
  for (const [size, type, code] of badSizes) {
    t.test(`a size of ${typeof size === 'string' ? JSON.stringify(size) : String(size)} is a ${type} ${code}`, (t) => {
      const name = shmName(t)
      const file = path.join(tempDir(t), 'region')
      const wanted = { name: type, code }
      t.throws(() => Region.create(name, size as number), wanted, 'create')
      t.throws(() => Region.openOrCreate(name, size as number), wanted, 'openOrCreate')
      t.throws(() => Region.createFile(file, size as number), wanted, 'createFile')
      if (size !== undefined) {
        t.throws(() => Region.open(name, { size: size as number }), wanted, 'open, size option')
        t.throws(() => Region.openFile(file, { size: size as number }), wanted, 'openFile, size option')
      }
      t.notOk(fs.existsSync(`/dev/shm${name}`), 'no object was created')
      t.notOk(fs.existsSync(file), 'no file was created')
      t.end()
    })
  }

  t.test('a mode outside 0 to 0o777 is a RangeError, a non-number a TypeError', (t) => {
    const name = shmName(t)
    t.throws(() => Region.create(name, PAGE, { mode: 0o1000 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' })
    t.throws(() => Region.create(name, PAGE, { mode: -1 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' })
    t.throws(() => Region.create(name, PAGE, { mode: '600' as unknown as number }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
    t.notOk(fs.existsSync(`/dev/shm${name}`))
    t.end()
  })

  t.test('a file path that is empty or not a string is a TypeError', (t) => {
    t.throws(() => Region.createFile('', PAGE), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' })
    t.throws(() => Region.openFile(''), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' })
    t.throws(() => Region.createFile(7 as unknown as string, PAGE), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
    t.throws(() => Region.openFile(Buffer.from('x') as unknown as string), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
    t.end()
  })

  t.test('opening an object smaller than the size asked is ERR_REGION_TOO_SMALL', (t) => {
    const name = shmName(t)
    closeAtEnd(t, Region.create(name, PAGE))
    const err = t.throws(() => Region.open(name, { size: PAGE + 1 }), { code: 'ERR_REGION_TOO_SMALL' })
    t.type(err, ShmChannelError)
    const exact = closeAtEnd(t, Region.open(name, { size: PAGE }))
    t.equal(exact.size, PAGE, 'exactly the size asked is enough')
    t.end()
  })

  t.test('opening a file smaller than the size asked, or empty, is ERR_REGION_TOO_SMALL', (t) => {
    const dir = tempDir(t)
    fs.writeFileSync(path.join(dir, 'small'), Buffer.alloc(100))
    fs.writeFileSync(path.join(dir, 'empty'), '')
    t.throws(() => Region.openFile(path.join(dir, 'small'), { size: PAGE }), { name: 'ShmChannelError', code: 'ERR_REGION_TOO_SMALL' })
    t.throws(() => Region.openFile(path.join(dir, 'empty')), { name: 'ShmChannelError', code: 'ERR_REGION_TOO_SMALL' })
    const small = closeAtEnd(t, Region.openFile(path.join(dir, 'small')))
    t.equal(small.size, 100, 'without a size option, any non-empty file maps at its size')
    t.end()
  })
})

t.test('closing', async (t) => {
  t.test('closed flips, and close is idempotent', (t) => {
    const region = Region.create(shmName(t), PAGE)
    t.equal(region.closed, false)
    region.close()
    t.equal(region.closed, true)
    t.doesNotThrow(() => { region.close() }, 'a second close is fine')
    t.equal(region.closed, true)
    t.end()
  })

  t.test('a region bound with `using` is closed at the end of its scope', (t) => {
    const name = shmName(t)
    let seen: Region | undefined
    {
      using region = Region.create(name, PAGE)
      seen = region
      t.equal(mappingsOf(`/dev/shm${name}`), 1, 'mapped inside the scope')
    }
    t.equal(seen.closed, true)
    t.equal(mappingsOf(`/dev/shm${name}`), 0, 'unmapped once the scope ends')
    Region.unlink(name)
    t.end()
  })

  t.test('close lets go of the shared object at once, though the buffer is still referenced', (t) => {
    const name = shmName(t)
    const region = Region.create(name, PAGE)
    t.equal(mappingsOf(`/dev/shm${name}`), 1)
    region.close()
    t.equal(mappingsOf(`/dev/shm${name}`), 0)
    t.equal(region.buffer.byteLength, PAGE, 'the buffer itself lives on')
    t.end()
  })

  t.test('views kept after close read zeros, and writes through them do not reach other mappers', (t) => {
    const name = shmName(t)
    const region = Region.create(name, PAGE)
    const other = closeAtEnd(t, Region.open(name))
    const stale = new Uint8Array(region.buffer)
    stale.fill(0xab)
    region.close()
    t.ok(stale.every((b) => b === 0), 'reads zeros')
    stale.fill(0xcd)
    t.equal(stale[0], 0xcd, 'writes land in private memory')
    t.ok(new Uint8Array(other.buffer).every((b) => b === 0xab), 'the other mapping still holds what was shared')
    t.end()
  })

  t.test('in another process, using views after close neither crashes it nor reaches the object', async (t) => {
    const name = shmName(t)
    const region = closeAtEnd(t, Region.create(name, PAGE))
    new Uint8Array(region.buffer).fill(0x11)
    const peer = new Peer(t, 'region-peer.ts')
    await peer.call('open', 'shm', name)
    t.same(await peer.call('useViewsAfterClose'), {
      firstByteBeforeClose: 0x11,
      nonZeroBytesAfterClose: 0,
      readBackAfterWrite: 0x55,
      atomicsAddReturned: 0x55555555,
      waitOnClosedView: 'timed-out',
      wakeOnClosedView: 0
    })
    t.same(await peer.end(), { code: 0, signal: null }, 'the peer exits normally')
    t.ok(new Uint8Array(region.buffer).every((b) => b === 0x11), 'no write after close reached the object')
  })

  t.test('writing through a read-only region kills the process with SIGSEGV, as any read-only mapping does', async (t) => {
    const name = shmName(t)
    const region = closeAtEnd(t, Region.create(name, PAGE))
    const peer = new Peer(t, 'region-peer.ts')
    await peer.call('open', 'shm', name, { readOnly: true })
    await t.rejects(peer.call('writeByte', 0, 1))
    t.same(await peer.exited, { code: null, signal: 'SIGSEGV' })
    t.equal(new Uint8Array(region.buffer)[0], 0)
  })
})

t.test('the buffer is a real SharedArrayBuffer', async (t) => {
  t.test('it is an instance of SharedArrayBuffer and Atomics work on it', (t) => {
    const region = closeAtEnd(t, Region.create(shmName(t), PAGE))
    t.ok(region.buffer instanceof SharedArrayBuffer)
    t.equal(region.buffer.byteLength, region.size)
    const words = new Int32Array(region.buffer)
    t.equal(Atomics.add(words, 3, 5), 0)
    t.equal(Atomics.compareExchange(words, 3, 5, 9), 5)
    t.equal(Atomics.load(words, 3), 9)
    t.equal(Atomics.notify(words, 3, 1), 0, 'nobody waits in this process')
    t.equal(Atomics.wait(words, 3, 9, 1), 'timed-out')
    t.end()
  })

  t.test('posted to a worker thread it is shared, not copied, both ways', async (t) => {
    const region = closeAtEnd(t, Region.create(shmName(t), PAGE))
    const words = new Int32Array(region.buffer)
    Atomics.store(words, 0, 1234)
    const worker = new Worker(`
      const { parentPort } = require('node:worker_threads')
      parentPort.once('message', (buffer) => {
        const words = new Int32Array(buffer)
        Atomics.store(words, 1, 5678)
        parentPort.postMessage({ isShared: buffer instanceof SharedArrayBuffer, seen: Atomics.load(words, 0) })
      })
    `, { eval: true })
    const reply = new Promise((resolve) => worker.once('message', resolve))
    worker.postMessage(region.buffer)
    t.same(await reply, { isShared: true, seen: 1234 }, 'the worker sees the parent\'s write')
    t.equal(Atomics.load(words, 1), 5678, 'the parent sees the worker\'s write')
    await worker.terminate()
    t.equal(Atomics.load(words, 1), 5678, 'the mapping outlives the worker')
  })
})

t.test('garbage collection unmaps regions that were never closed', async (t) => {
  const name = shmName(t)
  const peer = new Peer(t, 'gc-unmaps.ts', [name, '8'], { execArgv: [...process.execArgv, '--expose-gc'] })
  t.same(await peer.event('mappings'), { before: 8, after: 0 })
  t.same(await peer.exited, { code: 0, signal: null })
})

leavesNothingInDevShm(t)

/**
 * Opens a region as a user whom permission bits bind: this process, or for
 * root (which they do not bind) a peer running as "nobody".
 */
function unprivilegedOpener (t: Test): (name: string, options: { readOnly?: boolean }) => Promise<unknown> {
  if (process.getuid?.() !== 0) {
    return async (name, options) => {
      const region = Region.open(name, options)
      region.close()
      return { size: region.size, readOnly: region.readOnly }
    }
  }
  const peer = new Peer(t, 'region-peer.ts', [], forkAsUser(65534, 65534))
  return async (name, options) => await peer.call('open', 'shm', name, options)
}

/** Mounts a tmpfs of `size` for this test (root only), unmounted when it ends; or says why not. */
function mountTmpfs (t: Test, size: string): { dir: string, skip: string | false } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), SHM_PREFIX))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'none', dir], { stdio: 'pipe' })
  } catch (err) {
    fs.rmdirSync(dir)
    const reason = String((err as { stderr?: unknown }).stderr ?? '').trim().split('\n')[0]
    return { dir, skip: `cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): ${reason}` }
  }
  t.teardown(() => {
    execFileSync('umount', [dir])
    fs.rmdirSync(dir)
  })
  return { dir, skip: false }
}
