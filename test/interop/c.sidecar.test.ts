/**
 * examples/c-sidecar runs as written: it builds the C library and its
 * sidecar with make, starts the sidecar, and a Node client gets its answers
 * through two channels; the sidecar exits 0 once the client closes, and
 * nothing is left in /dev/shm.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'

import { ensureCompiled } from '../support/dist'

const root = path.join(__dirname, '..', '..')

t.test('a Node client gets its answers from the C sidecar, which exits once the client closes', async (t) => {
  ensureCompiled()
  const child = spawn(process.execPath, [path.join(root, 'examples', 'c-sidecar', 'main.mjs'), '--requests', '2000'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => { resolve(c) }))
  t.equal(code, 0, stderr)
  t.match(stdout, /upper "shared memory" = SHARED MEMORY/)
  t.match(stdout, /sum 1 2 3 39 = 45/)
  t.match(stdout, /hello = error: unknown request/)
  t.match(stdout, /2000 requests in/)
  t.match(stdout, /sidecar exited with code 0/)
  t.match(stderr, /requests served, stopped: the peer closed the channel/)
  const pid = child.pid ?? 0
  t.same(fs.readdirSync('/dev/shm').filter((entry) => entry.startsWith(`c-sidecar-example-${pid}-`)), [], 'nothing left in /dev/shm')
})
