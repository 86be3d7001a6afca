/**
 * Loading the addon: the wait codes come from the addon itself, and when no
 * build fits this process, requiring the package throws one error that says
 * what was looked for, what ships and how to build from source, never
 * node-gyp-build's own message.
 */
import { fork } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'

import {
  WAIT_CANCELLED, WAIT_NOT_EQUAL, WAIT_OK, WAIT_TIMED_OUT,
  binding, currentTarget, loadBinding, packageRoot, shippedTargets
} from '../../lib/binding'
import { ShmChannelError } from '../../lib/errors'

const linux = process.platform === 'linux'

function thrown (fn: () => unknown): Error & { code?: string } {
  try {
    fn()
  } catch (err) {
    return err as Error & { code?: string }
  }
  throw new Error('expected a throw')
}

/** A package directory holding only the prebuild files named, each with `bytes`. */
function fakePackage (t: Test, files: string[], bytes = 'not an ELF file'): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'shm-channel-loader-'))
  t.teardown(() => { fs.rmSync(root, { recursive: true, force: true }) })
  for (const file of files) {
    fs.mkdirSync(path.dirname(path.join(root, 'prebuilds', file)), { recursive: true })
    fs.writeFileSync(path.join(root, 'prebuilds', file), bytes)
  }
  return root
}

t.test('the wait codes are the addon\'s own, and its wait returns them', (t) => {
  t.same({ OK: WAIT_OK, NOT_EQUAL: WAIT_NOT_EQUAL, TIMED_OUT: WAIT_TIMED_OUT, CANCELLED: WAIT_CANCELLED }, binding.waitCodes)
  t.equal(new Set([WAIT_OK, WAIT_NOT_EQUAL, WAIT_TIMED_OUT, WAIT_CANCELLED]).size, 4, 'four distinct codes')
  const buffer = new SharedArrayBuffer(8)
  t.equal(binding.wait(buffer, 0, 1, 10), WAIT_NOT_EQUAL, 'a word that is not the expected value')
  t.equal(binding.wait(buffer, 0, 0, 10), WAIT_TIMED_OUT, 'a wait nobody wakes')
  t.end()
})

t.test('a package with builds for other targets only throws ERR_UNSUPPORTED naming this target and the shipped ones', (t) => {
  const root = fakePackage(t, ['darwin-arm64/shm-channel.abi115.node', `linux-${process.arch}/shm-channel.abi1.glibc.node`, `linux-${process.arch}/shm-channel.abi2.glibc.node`])
  const target = currentTarget()
  const err = thrown(() => loadBinding(root))
  t.type(err, ShmChannelError)
  t.equal(err.code, 'ERR_UNSUPPORTED')
  t.match(err.message, `${target.platform}-${target.arch} ${target.libc} abi${process.versions.modules}`, 'names what it looked for')
  t.match(err.message, 'darwin-arm64 abi115', 'names a shipped target')
  t.match(err.message, `linux-${process.arch} glibc abi1 abi2`, 'names each shipped ABI')
  t.match(err.message, 'npm rebuild shm-channel --build-from-source', 'says how to build from source')
  t.notMatch(err.message, 'No native build was found', 'not node-gyp-build\'s message')
  t.match((err.cause as Error).message, 'No native build was found', 'which stays available as the cause')
  t.end()
})

t.test('a build named for this target that does not load is the same error', { skip: linux ? false : 'prebuild names are for Linux' }, (t) => {
  const root = fakePackage(t, [`linux-${process.arch}/shm-channel.abi${process.versions.modules}.${currentTarget().libc}.node`])
  const err = thrown(() => loadBinding(root))
  t.equal(err.code, 'ERR_UNSUPPORTED')
  t.match(err.message, `abi${process.versions.modules}`)
  t.ok(err.cause instanceof Error, 'the loader\'s own error is the cause')
  t.end()
})

t.test('a package without prebuilds says none ship', (t) => {
  const err = thrown(() => loadBinding(fakePackage(t, [])))
  t.equal(err.code, 'ERR_UNSUPPORTED')
  t.match(err.message, 'Prebuilt: none')
  t.end()
})

t.test('this package lists every prebuild it ships', { skip: linux ? false : 'prebuilds are for Linux' }, (t) => {
  const shipped = shippedTargets(packageRoot)
  t.ok(shipped.some((s) => s.startsWith(`linux-${process.arch} glibc `) && s.split(' ').includes(`abi${process.versions.modules}`)), 'this target among them')
  t.end()
})

t.test('on a musl system, requiring the package throws the loader error', { skip: linux ? false : 'libc only matters on Linux' }, async (t) => {
  // PREBUILDS_ONLY: a build/ from a local node-gyp rebuild would load whatever the libc.
  const child = fork(path.join(__dirname, '..', 'fixtures', 'loader-probe.ts'), [], {
    execArgv: process.execArgv,
    env: { ...process.env, LIBC: 'musl', PREBUILDS_ONLY: '1' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  const result = await new Promise<Record<string, unknown>>((resolve, reject) => {
    child.once('message', (m) => { resolve(m as Record<string, unknown>) })
    child.once('exit', (code) => { reject(new Error(`probe exited with ${code} before reporting`)) })
  })
  t.equal(result.name, 'ShmChannelError')
  t.equal(result.code, 'ERR_UNSUPPORTED')
  t.match(result.message, `linux-${process.arch} musl abi${process.versions.modules}`)
  t.match(result.message, `linux-${process.arch} glibc abi`, 'the glibc builds are named as what ships')
})
