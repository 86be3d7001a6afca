// A worker process: takes jobs, sends back results, until the parent is done.
// `node worker.mjs shm NAME` talks over a shm-channel duplex;
// `node worker.mjs ipc` over child_process IPC (process.send).
import { Duplex } from 'shm-channel'
import { work } from './job.mjs'

const [mode, name] = process.argv.slice(2)

if (mode === 'shm') {
  const duplex = Duplex.connect(name)
  // Ends when the parent closes its side.
  for await (const job of duplex) {
    const result = work(/** @type {any} */ (job))
    if (!duplex.trySend(result)) await duplex.send(result)
  }
  duplex.close()
  process.disconnect()
} else {
  process.on('message', (/** @type {any} */ job) => { process.send(work(job)) })
  // The parent disconnects when it is done; then nothing keeps this process alive.
}
