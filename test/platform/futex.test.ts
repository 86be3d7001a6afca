/**
 * futex.wait / wake / waitAsync: cross-process wake-ups through a shared
 * region, checked against a real forked process (test/fixtures/futex-peer.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'

import { Region, futex } from '../../lib/index'
import { Peer, settledFlag, wakeUntilWoken } from '../support/peers'
import { closeAtEnd, leavesNothingInDevShm, shmName } from '../support/shm'

const PAGE = 4096

t.test('a wake in one process ends a wait in another', async (t) => {
  const name = shmName(t)
  const words = new Int32Array(closeAtEnd(t, Region.create(name, PAGE)).buffer)
  const peer = new Peer(t, 'futex-peer.ts')
  await peer.call('open', name)

  // Each test waits on its own word. The waiter reports "parked" just before
  // it waits, and the waker wakes until a wake reports a waiter woken: so the
  // count is exact however late the waiter reaches the kernel.

  t.test('futex.wake here ends a synchronous futex.wait there, and reports one waiter woken', async (t) => {
    const result = peer.call('waitSync', 0, 0, 10_000)
    await peer.event('parked')
    t.equal(await wakeUntilWoken(() => futex.wake(words, 0), settledFlag(result)), 1)
    t.equal(await result, 'ok')
  })

  t.test('futex.wake here ends a futex.waitAsync there, and reports one waiter woken', async (t) => {
    const result = peer.call('waitAsync', 1, 0, 10_000)
    await peer.event('parked')
    t.equal(await wakeUntilWoken(() => futex.wake(words, 1), settledFlag(result)), 1)
    t.equal(await result, 'ok')
  })

  t.test('futex.wake there ends a futex.waitAsync here', async (t) => {
    const result = futex.waitAsync(words, 2, 0, { timeout: 10_000 })
    t.equal(await peer.call('wakeUntilWoken', 2, 10_000), 1)
    t.equal(await result, 'ok')
  })

  t.test('futex.wake there ends a synchronous futex.wait here', async (t) => {
    const woken = peer.call('wakeUntilWoken', 3, 10_000)
    await peer.event('waking')
    // Blocks this process until the peer's wake arrives (or 10 s pass).
    t.equal(futex.wait(words, 3, 0, 10_000), 'ok')
    t.equal(await woken, 1)
  })

  t.test('a pending waitAsync keeps its process alive; once it ends the process exits on its own', async (t) => {
    const result = peer.call('waitAsync', 4, 0, 10_000)
    await peer.event('parked')
    let exited = false
    const exit = peer.end().then((how) => { exited = true; return how })
    // Only our wake can end that wait, so the peer cannot exit before it
    // unless the pending wait fails to hold its process.
    await sleep(150)
    t.equal(exited, false, 'still running after the parent disconnected, its wait the only work left')
    t.equal(await wakeUntilWoken(() => futex.wake(words, 4), () => exited), 1)
    t.same(await exit, { code: 0, signal: null })
    await t.rejects(result, 'its answer had nowhere to go')
  })
})

t.test('wait results', async (t) => {
  const region = closeAtEnd(t, Region.create(shmName(t), PAGE))
  const words = new Int32Array(region.buffer)

  t.test('wait returns not-equal at once when the word does not hold the value', (t) => {
    Atomics.store(words, 0, 7)
    t.equal(futex.wait(words, 0, 8), 'not-equal')
    t.end()
  })

  t.test('wait returns timed-out when nobody wakes it', (t) => {
    Atomics.store(words, 0, 7)
    t.equal(futex.wait(words, 0, 7, 20), 'timed-out')
    t.equal(futex.wait(words, 0, 7, 0), 'timed-out', 'a zero timeout only compares')
    t.end()
  })

  t.test('the value is compared as a 32-bit pattern, so -1 and 0xffffffff both match a stored -1', (t) => {
    Atomics.store(words, 0, -1)
    t.equal(futex.wait(words, 0, -1, 1), 'timed-out')
    t.equal(futex.wait(words, 0, 0xffffffff, 1), 'timed-out')
    t.equal(futex.wait(words, 0, 0x7fffffff, 1), 'not-equal')
    t.end()
  })

  t.test('a view that starts inside the buffer waits on its own index, not the buffer\'s', (t) => {
    const tail = new Int32Array(region.buffer, 16, 4) // tail[1] is words[5]
    Atomics.store(words, 1, 100)
    Atomics.store(words, 5, 500)
    t.equal(futex.wait(tail, 1, 500, 1), 'timed-out')
    t.equal(futex.wait(tail, 1, 100, 1), 'not-equal')
    t.end()
  })

  t.test('wake with nobody waiting returns 0', (t) => {
    t.equal(futex.wake(words, 0), 0)
    t.equal(futex.wake(words, 0, 1), 0)
    t.end()
  })

  t.test('futex works on a plain SharedArrayBuffer too', (t) => {
    const plain = new Int32Array(new SharedArrayBuffer(8))
    t.equal(futex.wait(plain, 1, 0, 1), 'timed-out')
    t.equal(futex.wake(plain, 1), 0)
    t.end()
  })

  t.test('waitAsync resolves not-equal when the word does not hold the value', async (t) => {
    Atomics.store(words, 0, 7)
    t.equal(await futex.waitAsync(words, 0, 8), 'not-equal')
  })

  t.test('waitAsync with a timeout resolves timed-out', async (t) => {
    Atomics.store(words, 0, 7)
    t.equal(await futex.waitAsync(words, 0, 7, { timeout: 30 }), 'timed-out')
  })

  t.test('waitAsync is ended by a wake in this process too', async (t) => {
    Atomics.store(words, 6, 0)
    const result = futex.waitAsync(words, 6, 0, { timeout: 10_000 })
    t.equal(await wakeUntilWoken(() => futex.wake(words, 6), settledFlag(result)), 1)
    t.equal(await result, 'ok')
  })

  t.test('aborting the signal rejects waitAsync with ABORT_ERR, the reason as its cause', async (t) => {
    Atomics.store(words, 0, 7)
    const controller = new AbortController()
    const result = futex.waitAsync(words, 0, 7, { signal: controller.signal })
    setTimeout(() => { controller.abort('enough') }, 20)
    await t.rejects(result, { name: 'AbortError', code: 'ABORT_ERR', cause: 'enough' })
  })

  t.test('a signal that is already aborted rejects waitAsync at once', async (t) => {
    Atomics.store(words, 0, 7)
    await t.rejects(futex.waitAsync(words, 0, 7, { signal: AbortSignal.abort() }), { code: 'ABORT_ERR' })
  })

  t.test('a timeout still applies with a signal that never aborts', async (t) => {
    Atomics.store(words, 0, 7)
    const controller = new AbortController()
    t.equal(await futex.waitAsync(words, 0, 7, { timeout: 20, signal: controller.signal }), 'timed-out')
  })

  t.test('waits after an abort get their own results, never the aborted one\'s', async (t) => {
    // Waiters are pooled: these reuse the one whose wait was just cancelled.
    Atomics.store(words, 0, 7)
    for (let round = 0; round < 5; round++) {
      const controller = new AbortController()
      const aborted = futex.waitAsync(words, 0, 7, { signal: controller.signal })
      controller.abort()
      await t.rejects(aborted, { code: 'ABORT_ERR' })
      t.equal(await futex.waitAsync(words, 0, 8), 'not-equal')
      t.equal(await futex.waitAsync(words, 0, 7, { timeout: 5 }), 'timed-out')
    }
  })
})

t.test('arguments are checked, with Node\'s error codes', async (t) => {
  const words = new Int32Array(closeAtEnd(t, Region.create(shmName(t), PAGE)).buffer)
  const calls = {
    wait: (view: unknown, index: unknown) => futex.wait(view as Int32Array, index as number, 0, 0),
    wake: (view: unknown, index: unknown) => futex.wake(view as Int32Array, index as number),
    // Thrown at the call, as by wait: the arguments are wrong, not the wait.
    waitAsync: (view: unknown, index: unknown) => futex.waitAsync(view as Int32Array, index as number, 0, { timeout: 0 })
  }
  for (const [fn, call] of Object.entries(calls)) {
    t.test(`${fn}: the view must be an Int32Array over a SharedArrayBuffer`, (t) => {
      const wanted = { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }
      t.throws(() => call(new Uint32Array(words.buffer), 0), wanted, 'Uint32Array')
      t.throws(() => call(new Int32Array(4), 0), wanted, 'Int32Array over an ArrayBuffer')
      t.throws(() => call(words.buffer, 0), wanted, 'the SharedArrayBuffer itself')
      t.throws(() => call([0, 0], 0), wanted, 'an array')
      t.end()
    })

    t.test(`${fn}: the index must be an integer inside the view`, (t) => {
      const wanted = { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }
      for (const index of [-1, words.length, 1.5, NaN, '0']) {
        t.throws(() => call(words, index), wanted, `index ${JSON.stringify(index)}`)
      }
      t.end()
    })
  }

  t.test('a timeout must be a non-negative number of milliseconds', async (t) => {
    t.throws(() => futex.wait(words, 0, 0, -1), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' })
    t.throws(() => futex.wait(words, 0, 0, NaN), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' })
    t.throws(() => futex.wait(words, 0, 0, '5' as unknown as number), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
    t.throws(() => futex.waitAsync(words, 0, 0, { timeout: -1 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' })
  })

  t.test('a wake count must be a non-negative number', (t) => {
    t.throws(() => futex.wake(words, 0, -1), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' })
    t.throws(() => futex.wake(words, 0, NaN), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' })
    t.equal(futex.wake(words, 0, 0), 0)
    t.end()
  })
})

t.test('waiting asynchronously costs neither the event loop nor CPU', async (t) => {
  const name = shmName(t)
  const words = new Int32Array(closeAtEnd(t, Region.create(name, PAGE)).buffer)

  t.test('timers keep firing while a waitAsync is pending for 300 ms', async (t) => {
    let ticks = 0
    const timer = setInterval(() => { ticks++ }, 10)
    const result = await futex.waitAsync(words, 0, 0, { timeout: 300 })
    clearInterval(timer)
    t.equal(result, 'timed-out')
    // About 30 if the loop is free, 0 if the wait blocked it; a loaded
    // machine may delay timers, so ask for a third.
    t.ok(ticks >= 10, `the interval fired ${ticks} times`)
  })

  t.test('a process parked in a wait uses almost no CPU: waitAsync for 1 s (twice), wait for 0.5 s', async (t) => {
    const peer = new Peer(t, 'futex-peer.ts')
    await peer.call('open', name)
    // A busy wait would use about as much CPU as the time it waits. The
    // process's CPU time also counts V8's background threads, which in a
    // freshly started process may still be compiling and collecting (seen:
    // 64 ms during the first 1 s wait on Node 26), so the lower of two waits
    // is held to the bound: a wait that burns CPU burns it in both.
    const bound = 50
    const waits = []
    for (let i = 0; i < 2; i++) waits.push(await peer.call<{ result: string, cpuMs: number }>('cpuWhileWaiting', 'async', 0, 1000))
    t.same(waits.map((w) => w.result), ['timed-out', 'timed-out'])
    const least = Math.min(...waits.map((w) => w.cpuMs))
    t.ok(least < bound, `waitAsync: ${waits.map((w) => w.cpuMs).join(' and ')} ms of CPU, the lower within the bound of ${bound} ms`)
    const synchronous = await peer.call<{ result: string, cpuMs: number }>('cpuWhileWaiting', 'sync', 0, 500)
    t.equal(synchronous.result, 'timed-out')
    t.ok(synchronous.cpuMs < bound, `wait: ${synchronous.cpuMs} ms of CPU, bound ${bound} ms`)
    t.same(await peer.end(), { code: 0, signal: null })
  })
})

leavesNothingInDevShm(t)
