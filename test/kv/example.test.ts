/**
 * examples/kv-config runs as written (importing 'shm-channel', which
 * resolves to dist/): several processes share configuration and counters,
 * and a watcher in another process prints the configuration changes.
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'

import { leavesNothingInDevShm } from '../support/shm'

const root = path.join(__dirname, '..', '..')

t.test('examples/kv-config: every increment counted, every configuration change heard by the watcher', (t) => {
  const built = path.join(root, 'dist', 'kv', 'store.js')
  const source = path.join(root, 'lib', 'kv', 'store.ts')
  if (!fs.existsSync(built) || fs.statSync(built).mtimeMs < fs.statSync(source).mtimeMs) {
    execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.json')], { cwd: root, stdio: 'inherit' })
  }
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  const out = execFileSync(process.execPath, [path.join(root, 'examples', 'kv-config', 'main.mjs'), '--workers', '2', '--increments', '500'], { cwd: root, env, timeout: 60_000, encoding: 'utf8' })
  t.match(out, 'total 1000 of 1000 increments')
  t.match(out, 'watcher: config/greeting = "bonjour"')
  t.match(out, 'watcher: config/batchSize = 250')
  t.end()
})

leavesNothingInDevShm(t)
