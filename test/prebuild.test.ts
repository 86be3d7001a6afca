/**
 * The binary must match the native sources: a committed prebuild that is
 * older than native/*.cc would run code nobody reviewed. scripts/source-hash.js
 * hashes the sources; binding.gyp bakes that hash into the binary.
 */
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'

import { binding, packageRoot } from '../lib/binding'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { sourceHash } = require('../scripts/source-hash.js') as { sourceHash: () => string }
// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeGypBuild = require('node-gyp-build') as { path: (dir: string) => string }

t.test('the addon that loaded was built from the native sources in this checkout', (t) => {
  t.comment(`loaded ${path.relative(packageRoot, nodeGypBuild.path(packageRoot))}`)
  t.match(binding.sourceHash, /^[0-9a-f]{16}$/)
  t.equal(binding.sourceHash, sourceHash())
  t.end()
})

const linuxX64 = process.platform === 'linux' && process.arch === 'x64'

t.test('the committed prebuild for this Node exists and was built from these sources', { skip: linuxX64 ? false : 'prebuilds are committed for linux-x64' }, (t) => {
  const header = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header
  const libc = header.glibcVersionRuntime === undefined ? 'musl' : 'glibc'
  const file = path.join(packageRoot, 'prebuilds', 'linux-x64', `shm-channel.abi${process.versions.modules}.${libc}.node`)
  t.ok(fs.existsSync(file), `${path.relative(packageRoot, file)} exists`)
  // Checked on the file, not on the loaded addon: a build/ left from a local
  // node-gyp rebuild loads first, and must not hide a stale prebuild.
  t.ok(fs.existsSync(file) && fs.readFileSync(file).includes(sourceHash()), 'it carries the hash of the sources')
  t.end()
})
