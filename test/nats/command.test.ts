/**
 * `shm-channel bridge` against a real nats-server: usage errors, and a
 * to-stream bridge that runs until its signal and moves every message.
 */
import t from 'tap'
import { connect } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'

import { Producer } from '../../lib/index'
import { removeBridgeState } from '../../lib/nats/index'
import { main, EXIT_OK, EXIT_USAGE } from '../../lib/tools/cli'
import { startServer } from '../support/nats-server'
import { channelName, closeAtEnd, leavesNothingInDevShm, unlinkIfPresent } from '../support/shm'

function io (signal?: AbortSignal): { out: string[], err: string[], stdout: { write: (s: string) => void }, stderr: { write: (s: string) => void }, signal?: AbortSignal } {
  const out: string[] = []
  const err: string[] = []
  return { out, err, stdout: { write: (s) => { out.push(s) } }, stderr: { write: (s) => { err.push(s) } }, signal }
}

t.test('bad usage exits 2 with a message', async (t) => {
  for (const argv of [['bridge', 'sideways', 'ch', '--server', 'nats://127.0.0.1:1', '--stream', 's'], ['bridge', 'to-stream', 'ch'], ['bridge']]) {
    const out = io()
    t.equal(await main(argv, out), EXIT_USAGE, `${JSON.stringify(argv)} exits 2`)
    t.match(out.err.join(''), /^shm-channel: .+\nRun "shm-channel help" for usage\.\n$/)
  }
})

t.test('bridge to-stream moves a channel into a stream until stopped', async (t) => {
  const server = await startServer(t)
  const channel = channelName()
  t.teardown(() => { removeBridgeState(channel); unlinkIfPresent(channel) })
  const producer = closeAtEnd(t, Producer.open<string>(channel, { codec: 'utf8', onPeerDeath: 'wait' }))
  const stopper = new AbortController()
  const out = io(stopper.signal)
  const running = main(['bridge', 'to-stream', channel, '--server', server.url, '--stream', 'cli', '--subject', 'cli.orders'], out)
  for (let i = 0; i < 100; i++) await producer.send(`order ${i}`)
  const nc = await connect({ servers: server.url })
  t.teardown(async () => { await nc.close() })
  const jsm = await jetstreamManager(nc)
  let stored = 0
  for (let attempt = 0; stored < 100 && attempt < 200; attempt++) {
    stored = (await jsm.streams.info('cli').catch(() => undefined))?.state.messages ?? 0
    if (stored < 100) await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.equal(stored, 100, 'every message reached the stream')
  stopper.abort()
  t.equal(await running, EXIT_OK, 'exits 0 when stopped')
  t.match(out.out.join(''), /bridging channel .+ -> stream cli/)
  t.match(out.out.join(''), /stopped after 100 messages/)
})

leavesNothingInDevShm(t)
