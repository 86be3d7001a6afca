/**
 * The examples import 'shm-channel', which resolves to dist/ (npm ci builds
 * it). Tests that run them compile lib/ to dist/ first when dist/ is missing
 * or older than any source under lib/.
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

const root = path.join(__dirname, '..', '..')

export function ensureCompiled (): void {
  const built = path.join(root, 'dist', 'index.js')
  const builtAt = fs.existsSync(built) ? fs.statSync(built).mtimeMs : 0
  const lib = path.join(root, 'lib')
  const sources = fs.readdirSync(lib, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'))
  const newest = Math.max(...sources.map((f) => fs.statSync(path.join(lib, f)).mtimeMs))
  if (newest > builtAt) {
    execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.json')], { cwd: root, stdio: 'inherit' })
  }
}
