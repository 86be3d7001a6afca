// Every JavaScript block in the README that names its file in its first line
// ("// quickstart.mjs") runs as a user would paste it: in a folder of its own
// where `shm-channel` resolves to this package.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const root = path.join(__dirname, '..')
const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8')
const blocks = [...readme.matchAll(/```js\n\/\/ ([\w.-]+\.mjs)\n([\s\S]*?)```/g)].map((m) => ({ file: m[1], code: m[2] }))

t.ok(blocks.length >= 2, 'the README has runnable examples')

if (!fs.existsSync(path.join(root, 'dist', 'index.js'))) {
  t.fail('dist/ is missing: npm ci compiles it')
} else {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shm-channel-readme-'))
  fs.mkdirSync(path.join(dir, 'node_modules'))
  fs.symlinkSync(root, path.join(dir, 'node_modules', 'shm-channel'), 'dir')
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))

  for (const { file, code } of blocks) {
    t.test(`README: ${file} runs as pasted`, async (t) => {
      fs.writeFileSync(path.join(dir, file), code)
      // A clean environment: tap's loaders are not what a user has.
      const env = { ...process.env }
      delete env.NODE_OPTIONS
      const out = execFileSync(process.execPath, [file], { cwd: dir, env, timeout: 30_000, encoding: 'utf8' })
      t.ok(out.length > 0, 'it prints')
      if (file === 'quickstart.mjs') {
        t.match(out, "got { hello: 'world', i: 0 }")
        t.match(out, "got { hello: 'world', i: 2 }")
      }
      if (file === 'sidecar.mjs') t.match(out, '2 + 3 = 5')
      if (file === 'batch.mjs') t.match(out, '1000 messages, first bytes summing to 124716')
    })
  }
}
