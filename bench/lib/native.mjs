// Loads the package's compiled output (dist/), with a clear message when it
// has not been built.
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const entry = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'index.js')

if (!fs.existsSync(entry)) {
  console.error('dist/index.js is missing: run `npm install` (or `npm run compile`) first.')
  process.exit(1)
}

/** The package as a user gets it: `require('shm-channel')`. */
export const shm = require(entry)
