/**
 * Worker threads that hold native resources end every way a worker can end
 * (terminate(), process.exit(), an uncaught error, running out of work)
 * without crashing their process, on every Node of the matrix: V8 releases a
 * dying worker's external SharedArrayBuffers while it tears the heap down,
 * and our deleters run then. Each way runs in a process of its own
 * (test/fixtures/worker-exit-host.ts), so a crash is that process's signal.
 */
import { fork } from 'node:child_process'
import { once } from 'node:events'
import path from 'node:path'
import t from 'tap'

import type { Round } from '../fixtures/worker-exit-host'
import { SHM_PREFIX, leavesNothingInDevShm } from '../support/shm'

const ROUNDS = 2

const WAYS = [
  { how: 'terminate', title: 'worker.terminate()', exitCode: 1 },
  { how: 'exit', title: 'process.exit(7) in the worker', exitCode: 7 },
  { how: 'throw', title: 'an uncaught error in the worker', exitCode: 1, error: 'thrown on purpose by worker-exit-holder' },
  { how: 'end', title: 'the worker running out of work', exitCode: 0 }
] as const

for (const way of WAYS) {
  t.test(`a worker holding regions, a producer end and a pending wait ends by ${way.title}; its process lives on`, async (t) => {
    const host = fork(path.join(__dirname, '..', 'fixtures', 'worker-exit-host.ts'), [way.how, String(ROUNDS), `${SHM_PREFIX}wx-${way.how}-`], {
      execArgv: process.execArgv,
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc']
    })
    const exited = once(host, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
    let rounds: Round[] = []
    host.on('message', (message) => { rounds = message as Round[] })
    const [code, signal] = await exited
    t.same({ code, signal }, { code: 0, signal: null }, 'the process that ran the workers exited normally')
    t.equal(rounds.length, ROUNDS, `it ran ${ROUNDS} workers`)
    rounds.forEach((round, i) => {
      t.equal(round.exitCode, way.exitCode, `worker ${i + 1} exit code`)
      t.equal(round.error, 'error' in way ? way.error : undefined, `worker ${i + 1} error event`)
      t.equal(round.mark, i + 1, 'the worker wrote the shared region')
      t.equal(round.received, `hello from worker ${i + 1}`, 'its message arrived')
      if (way.how === 'end') {
        // A worker that runs out of work drops its producer: a collection in
        // the worker before its environment ends closes the end (a forgotten
        // end is closed), else the thread-exit mark makes it dead. Either way
        // the consumer sees the producer gone.
        t.ok(['ERR_PEER_DEAD', 'ERR_CHANNEL_CLOSED'].includes(String(round.afterExit)), `then its end reads as dead or closed: ${round.afterExit}`)
      } else {
        t.equal(round.afterExit, 'ERR_PEER_DEAD', 'then its end reads as dead')
      }
      t.equal(round.woken, 0, 'its pending wait ended with it: nothing is parked on the word any more')
    })
  })
}

leavesNothingInDevShm(t)
