#!/usr/bin/env node
'use strict'
// The shm-channel command. Everything it does is in lib/tools/cli.ts, compiled to
// dist/tools/cli.js; this file only runs it and exits with its code.

let cli
try {
  cli = require('../dist/tools/cli.js')
} catch (err) {
  if (err.code !== 'MODULE_NOT_FOUND' || !String(err.message).includes('dist/tools/cli.js')) throw err
  process.stderr.write('shm-channel: dist/tools/cli.js is missing: compile the package first (npm run compile)\n')
  process.exit(1)
}

// A reader that goes away (`shm-channel stat x --watch | head`) is not an error.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0)
  throw err
})

cli.main(process.argv.slice(2)).then((code) => {
  // exitCode, not exit(): output still queued for a pipe gets written first.
  process.exitCode = code
}, (err) => {
  process.stderr.write(`shm-channel: ${err && err.stack ? err.stack : err}\n`)
  process.exitCode = 1
})
