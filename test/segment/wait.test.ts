import t from 'tap'
import { waitAsync, waitSync, type WaitSpec } from '../../lib/segment/wait'
import { ShmChannelError } from '../../lib/errors'

function spec (strategy: WaitSpec['strategy'], ready: () => boolean): WaitSpec {
  return {
    header: new Int32Array(new SharedArrayBuffer(64)),
    parkedFlag: 0,
    waitWord: 1,
    strategy,
    spinMicros: 10,
    peerCheckInterval: 250,
    ready,
    checkPeer: () => { throw new ShmChannelError('ERR_PEER_DEAD', 'peer died') }
  }
}

for (const strategy of ['spin', 'block', 'adaptive'] as const) {
  t.test(`${strategy}: a wait shorter than a liveness slice still reports a dead peer`, async (t) => {
    t.throws(() => { waitSync(spec(strategy, () => false), 20) }, { code: 'ERR_PEER_DEAD' })
    await t.rejects(waitAsync(spec(strategy, () => false), 20), { code: 'ERR_PEER_DEAD' })
  })

  t.test(`${strategy}: a live peer and nothing to wait for ends in ERR_TIMEOUT`, async (t) => {
    const s = { ...spec(strategy, () => false), checkPeer: () => {} }
    t.throws(() => { waitSync(s, 20) }, { code: 'ERR_TIMEOUT' })
    await t.rejects(waitAsync(s, 20), { code: 'ERR_TIMEOUT' })
  })

  t.test(`${strategy}: a condition that becomes true ends the wait`, async (t) => {
    let calls = 0
    const s = { ...spec(strategy, () => ++calls > 3), checkPeer: () => {} }
    waitSync(s, 1000)
    t.ok(calls > 3)
    calls = 0
    await waitAsync(s, 1000)
    t.ok(calls > 3)
  })
}

t.test('the parked flag is down again after a sleep', async (t) => {
  const s = { ...spec('block', () => false), checkPeer: () => {} }
  t.throws(() => { waitSync(s, 10) }, { code: 'ERR_TIMEOUT' })
  t.equal(Atomics.load(s.header, s.parkedFlag), 0)
  await t.rejects(waitAsync(s, 10), { code: 'ERR_TIMEOUT' })
  t.equal(Atomics.load(s.header, s.parkedFlag), 0)
})
