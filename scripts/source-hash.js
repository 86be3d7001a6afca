'use strict'
// Hash of the sources the native addon is built from. binding.gyp bakes it
// into the binary; test/platform/prebuild.test.ts recomputes it from the files on disk,
// so a committed prebuild that is older than its sources fails the tests.
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')

function sourceFiles () {
  const native = fs.readdirSync(path.join(root, 'native'))
    .filter((f) => /\.(cc|h)$/.test(f))
    .map((f) => 'native/' + f)
  return ['binding.gyp', ...native].sort()
}

function sourceHash () {
  const hash = crypto.createHash('sha256')
  for (const file of sourceFiles()) {
    // Line endings are normalised so a checkout with CRLF hashes the same.
    const text = fs.readFileSync(path.join(root, file), 'utf8').replace(/\r\n/g, '\n')
    hash.update(file + '\0' + text + '\0')
  }
  return hash.digest('hex').slice(0, 16)
}

module.exports = { sourceHash, sourceFiles }

if (require.main === module) process.stdout.write(sourceHash())
