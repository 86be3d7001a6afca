/**
 * The binaries must match the native sources: a committed prebuild that is
 * older than native/*.cc would run code nobody reviewed, and a target of the
 * matrix without a prebuild is a broken install for everyone whose npm does
 * not run install scripts. scripts/source-hash.js hashes the sources;
 * binding.gyp bakes that hash into every binary, so even a prebuild this
 * machine cannot load (another architecture) is checked by its bytes.
 */
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'

import { binding, packageRoot } from '../../lib/binding'

const { sourceHash } = require('../../scripts/source-hash.js') as { sourceHash: () => string }

const { MAJORS, ARCHES } = require('../../scripts/node-matrix.js') as { MAJORS: number[], ARCHES: string[] }

const nodeGypBuild = require('node-gyp-build') as { path: (dir: string) => string }

/** Node major -> module ABI (process.versions.modules) of every Node in the matrix. */
const ABI: Record<number, number> = { 20: 115, 22: 127, 24: 137, 26: 147 }

/** ELF e_machine of each architecture, so an x64 binary cannot pass for arm64. */
const ELF_MACHINE: Record<string, number> = { x64: 0x3e, arm64: 0xb7 }

t.test('the addon that loaded was built from the native sources in this checkout', (t) => {
  t.comment(`loaded ${path.relative(packageRoot, nodeGypBuild.path(packageRoot))}`)
  t.match(binding.sourceHash, /^[0-9a-f]{16}$/)
  t.equal(binding.sourceHash, sourceHash())
  t.end()
})

t.test('this Node is one of the matrix, with its ABI known here', (t) => {
  const major = Number(process.versions.node.split('.')[0])
  t.ok(MAJORS.includes(major), `Node ${major} is in scripts/node-matrix.js`)
  t.equal(String(ABI[major]), process.versions.modules, `Node ${major} has ABI ${process.versions.modules}`)
  t.end()
})

t.test('every target of the matrix has a committed prebuild built from these sources', (t) => {
  const hash = sourceHash()
  t.same(Object.keys(ABI).map(Number).sort(), [...MAJORS].sort(), 'an ABI is known for every major of the matrix')
  for (const arch of ARCHES) {
    for (const major of MAJORS) {
      const file = path.join(packageRoot, 'prebuilds', `linux-${arch}`, `shm-channel.abi${ABI[major]}.glibc.node`)
      const name = path.relative(packageRoot, file)
      if (!fs.existsSync(file)) {
        t.fail(`${name} (Node ${major}, ${arch}) is missing: npm run build:prebuilds`)
        continue
      }
      // Checked on the file, not on the loaded addon: a build/ left from a
      // local node-gyp rebuild loads first, and must not hide a stale prebuild.
      const bytes = fs.readFileSync(file)
      t.ok(bytes.includes(hash), `${name} carries the hash of the sources (${hash})`)
      t.ok(bytes.subarray(0, 4).equals(Buffer.from('\x7fELF', 'latin1')) && bytes.readUInt16LE(18) === ELF_MACHINE[arch],
        `${name} is an ELF shared object for ${arch}`)
    }
  }
  t.end()
})

t.test('no prebuild is committed outside the matrix', (t) => {
  const expected = new Set<string>()
  for (const arch of ARCHES) for (const major of MAJORS) expected.add(`linux-${arch}/shm-channel.abi${ABI[major]}.glibc.node`)
  const dir = path.join(packageRoot, 'prebuilds')
  const found = fs.readdirSync(dir).flatMap((tuple) => fs.readdirSync(path.join(dir, tuple)).map((f) => `${tuple}/${f}`))
  t.same(found.filter((f) => !expected.has(f)), [], 'every file under prebuilds/ is a target of the matrix')
  t.end()
})
