'use strict'
// Builds every committed prebuild: prebuilds/linux-<arch>/shm-channel.abi<N>.glibc.node
// for each Node major and architecture of scripts/node-matrix.js. The addon
// uses V8's API, so it is built once per Node ABI, against that Node's own
// headers (fetched from the npm registry). arm64 is cross-compiled with
// Debian's g++-aarch64-linux-gnu.
//
//   npm run build:prebuilds              the whole matrix
//   npm run build:prebuilds -- x64 24    one target
//
// Each build runs in a scratch copy of binding.gyp and native/, so a build/
// of the checkout (node-gyp rebuild) is left alone.
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const { MAJORS, ARCHES, nodeDir } = require('./node-matrix.js')
const { sourceFiles, sourceHash } = require('./source-hash.js')

const root = path.join(__dirname, '..')
const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js')

/** Compilers for a cross build; a native build uses the system's defaults. */
const CROSS = {
  arm64: { CC: 'aarch64-linux-gnu-gcc', CXX: 'aarch64-linux-gnu-g++', LINK: 'aarch64-linux-gnu-g++', AR: 'aarch64-linux-gnu-ar', STRIP: 'aarch64-linux-gnu-strip' }
}

/** NODE_MODULE_VERSION of the headers in a Node directory (no need to run that Node). */
function nodeAbi (dir) {
  const header = fs.readFileSync(path.join(dir, 'include', 'node', 'node_version.h'), 'utf8')
  return header.match(/#define NODE_MODULE_VERSION (\d+)/)[1]
}

function build (arch, major) {
  const dir = nodeDir(arch, major)
  const abi = nodeAbi(dir)
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'shm-channel-prebuild-'))
  try {
    for (const file of [...sourceFiles(), 'scripts/source-hash.js']) {
      fs.mkdirSync(path.dirname(path.join(scratch, file)), { recursive: true })
      fs.copyFileSync(path.join(root, file), path.join(scratch, file))
    }
    const cross = arch === process.arch ? {} : CROSS[arch]
    if (cross === undefined) throw new Error(`no cross compiler known for ${arch} on ${process.arch}`)
    const env = {
      ...process.env,
      ...cross,
      // binding.gyp asks node for node-addon-api's include directory.
      NODE_PATH: path.join(root, 'node_modules')
    }
    execFileSync(process.execPath, [nodeGyp, 'rebuild', `--nodedir=${dir}`, `--arch=${arch}`, '--release', '--silent'], { cwd: scratch, env, stdio: 'inherit' })
    const out = path.join(root, 'prebuilds', `linux-${arch}`, `shm-channel.abi${abi}.glibc.node`)
    fs.mkdirSync(path.dirname(out), { recursive: true })
    fs.copyFileSync(path.join(scratch, 'build', 'Release', 'shm_channel.node'), out)
    execFileSync(cross.STRIP || 'strip', ['--strip-unneeded', out])
    process.stdout.write(`${path.relative(root, out)}  Node ${major}  ${fs.statSync(out).size} bytes  sources ${sourceHash()}\n`)
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true })
  }
}

const [onlyArch, onlyMajor] = process.argv.slice(2)
for (const arch of ARCHES) {
  for (const major of MAJORS) {
    if (onlyArch !== undefined && onlyArch !== arch) continue
    if (onlyMajor !== undefined && Number(onlyMajor) !== major) continue
    build(arch, major)
  }
}
