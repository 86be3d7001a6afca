// Talking to a forked benchmark child over IPC.

/** The next IPC message of `type` from `child`; rejects if it exits first or takes longer than `ms`. */
export function nextMessage (child, type, ms = 30_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`child ${child.pid} sent no "${type}" within ${ms} ms`)), ms)
    const onMessage = (msg) => { if (msg?.type === type) done(null, msg) }
    const onExit = (code, signal) => done(new Error(`child ${child.pid} exited (${signal ?? code}) before sending "${type}"`))
    function done (err, msg) {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
      if (err) reject(err)
      else resolve(msg)
    }
    child.on('message', onMessage)
    child.on('exit', onExit)
  })
}

/** Resolves once `child` has exited (at once if it already has). */
export function exited (child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', resolve))
}
