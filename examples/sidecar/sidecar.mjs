// The sidecar: serves requests under the name it is given until its parent
// goes away (or it gets SIGTERM/SIGINT), then closes, which removes its
// shared memory names.
import { setTimeout as sleep } from 'node:timers/promises'
import { serve } from 'shm-channel'

const name = process.argv[2]

const handlers = {
  add: ({ a, b }) => a + b,
  upper: ({ text }) => text.toUpperCase(),
  divide: ({ a, b }) => {
    if (b === 0) throw Object.assign(new RangeError('division by zero'), { code: 'E_DIV_ZERO' })
    return a / b
  },
  // Asynchronous handlers work too; `signal` aborts if the caller gives up.
  sleep: async ({ ms }, { signal }) => {
    await sleep(ms, undefined, { signal })
    return 'slept'
  },
  ping: () => 'pong'
}

const server = serve(name, (/** @type {any} */ request, context) => {
  const handler = handlers[request.op]
  if (handler === undefined) throw Object.assign(new Error(`unknown op ${request.op}`), { code: 'E_UNKNOWN_OP' })
  return handler(request, context)
})
server.on('connection', (client) => { console.log(`[sidecar] client pid ${client.pid} connected`) })
server.on('disconnect', (client, err) => { console.log(`[sidecar] client pid ${client.pid} left${err ? ` (${/** @type {NodeJS.ErrnoException} */ (err).code})` : ''}`) })
console.log(`[sidecar] pid ${process.pid} serving "${name}"`)

const shutdown = () => {
  server.close()
  process.exit(0)
}
process.on('disconnect', shutdown) // the parent closed the IPC channel, or died
process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)
