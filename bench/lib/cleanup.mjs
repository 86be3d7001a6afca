// Cleanup that runs however a bench ends: normal exit, an exception, Ctrl-C or
// SIGTERM. Benches create files, FIFOs, shared memory names and child
// processes; none of them may outlive the run.

const tasks = []
let installed = false

function runAll () {
  while (tasks.length > 0) {
    const task = tasks.pop() // last registered, first undone
    try { task() } catch {} // cleanup is best effort: one failure must not skip the rest
  }
}

function install () {
  installed = true
  // 'exit' handlers must be synchronous; every task is.
  process.on('exit', runAll)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(signal, () => {
      runAll()
      process.kill(process.pid, signal) // die of the signal, as without a handler
    })
  }
  process.on('uncaughtException', (err) => {
    console.error(err)
    runAll()
    process.exit(1)
  })
  process.on('unhandledRejection', (err) => {
    console.error(err)
    runAll()
    process.exit(1)
  })
}

/**
 * Registers a synchronous `task` to run once when the process ends. Returns a
 * function that runs it now (and unregisters it), for cleanup on the normal
 * path.
 */
export function onCleanup (task) {
  if (!installed) install()
  let done = false
  const once = () => {
    if (done) return
    done = true
    task()
  }
  tasks.push(once)
  return () => {
    const i = tasks.indexOf(once)
    if (i >= 0) tasks.splice(i, 1)
    once()
  }
}
