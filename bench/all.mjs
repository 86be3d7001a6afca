// `npm run bench`: the whole comparison in one run, one script after the
// other on an otherwise idle machine: the channel against the alternatives
// (bench/compare.mjs), then publish/subscribe (bench/pubsub.mjs) and
// many-to-one (bench/fanin.mjs), each against the channel and the Unix
// socket measured in its own run.
//
//   npm run bench [-- --quick]            all three
//   npm run bench -- --rows shm-await ... any other option: compare.mjs alone
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const partial = args.some((arg) => arg !== '--quick')
const scripts = partial ? ['compare.mjs'] : ['compare.mjs', 'pubsub.mjs', 'fanin.mjs']

for (const script of scripts) {
  const { status, signal } = spawnSync(process.execPath, [path.join(here, script), ...(script === 'compare.mjs' ? args : args.filter((a) => a === '--quick'))], { stdio: 'inherit' })
  if (status !== 0) {
    console.error(`bench/${script} ${signal === null ? `exited with ${status}` : `was killed by ${signal}`}`)
    process.exit(1)
  }
}
