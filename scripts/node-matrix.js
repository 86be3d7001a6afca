'use strict'
// The Node matrix the package ships for, and a local copy of each Node:
// the npm packages node-linux-<arch>@<major> hold bin/node and include/node,
// so the binaries and headers come from the npm registry like everything else.
//
//   node scripts/node-matrix.js list           one "<arch> <major>" per line
//   node scripts/node-matrix.js dir ARCH MAJOR  fetches if needed, prints the Node's directory
//
// The copies live outside the repository, under $SHM_CHANNEL_NODE_CACHE
// (default: ~/.cache/shm-channel/node).
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

/** Node majors with a committed prebuild, for each Linux architecture. */
const MAJORS = [20, 22, 24, 26]
const ARCHES = ['x64', 'arm64']

const cacheRoot = process.env.SHM_CHANNEL_NODE_CACHE ||
  path.join(os.homedir(), '.cache', 'shm-channel', 'node')

/** Directory of node-linux-<arch>@<major> (bin/node, include/node), fetched on first use. */
function nodeDir (arch, major) {
  const dir = path.join(cacheRoot, `linux-${arch}-${major}`)
  if (fs.existsSync(path.join(dir, 'bin', 'node'))) return dir
  fs.mkdirSync(path.dirname(cacheRoot), { recursive: true })
  const scratch = fs.mkdtempSync(path.join(cacheRoot + '-'))
  try {
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
    const out = execFileSync(npm, ['pack', '--silent', `node-linux-${arch}@${major}`], { cwd: scratch, encoding: 'utf8' })
    const tarball = path.join(scratch, out.trim().split('\n').pop())
    const unpacked = path.join(scratch, 'unpacked')
    fs.mkdirSync(unpacked)
    execFileSync('tar', ['xzf', tarball, '-C', unpacked, '--strip-components=1'])
    fs.mkdirSync(cacheRoot, { recursive: true })
    // Renamed into place only when complete, so an interrupted fetch is retried.
    fs.rmSync(dir, { recursive: true, force: true })
    fs.renameSync(unpacked, dir)
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true })
  }
  return dir
}

module.exports = { MAJORS, ARCHES, nodeDir, cacheRoot }

if (require.main === module) {
  const [command, arch, major] = process.argv.slice(2)
  if (command === 'list') {
    for (const a of ARCHES) for (const m of MAJORS) process.stdout.write(`${a} ${m}\n`)
  } else if (command === 'dir' && ARCHES.includes(arch) && MAJORS.includes(Number(major))) {
    process.stdout.write(nodeDir(arch, Number(major)) + '\n')
  } else {
    process.stderr.write('usage: node scripts/node-matrix.js list | dir <x64|arm64> <20|22|24|26>\n')
    process.exit(2)
  }
}
