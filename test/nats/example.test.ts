/**
 * examples/nats-bridge runs as written (a user's `node
 * examples/nats-bridge/main.mjs`): two nats-servers, a producer behind one,
 * a consumer behind the other, every order once and in order.
 */
import { spawn } from 'node:child_process'
import path from 'node:path'
import t from 'tap'

import { ensureCompiled } from '../support/dist'

t.test('examples/nats-bridge: every order crosses from host A to host B once, in order', async (t) => {
  ensureCompiled()
  const root = path.join(__dirname, '..', '..')
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  const child = spawn(process.execPath, [path.join(root, 'examples', 'nats-bridge', 'main.mjs'), '--orders', '2000'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c })
  child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c })
  const code = await new Promise((resolve) => child.once('exit', resolve))
  t.equal(code, 0, stderr)
  t.match(stdout, /^host A \(server :\d+\): sent 2000 orders through its bridge$/m)
  t.match(stdout, /^host B \(server :\d+\): received 2000 orders, in order: true, duplicates: 0$/m)
})
