/**
 * `shm-channel bridge DIRECTION CHANNEL --server URL --stream NAME
 * [--subject SUBJECT]`: runs one channel bridge (lib/nats/bridge.ts) until
 * SIGINT or SIGTERM. lib/tools/cli.ts registers it; this module loads the
 * NATS packages only when the command runs, and says which to install when
 * they are missing.
 */
import type * as BridgeModule from './bridge'
import type * as Transport from '@nats-io/transport-node'

export interface BridgeArgs {
  flags: Record<string, boolean | string | undefined>
  positionals: string[]
}

export interface BridgeIO {
  stdout: { write: (chunk: string) => unknown }
  stderr: { write: (chunk: string) => unknown }
  signal?: AbortSignal
}

const EXIT_OK = 0
const EXIT_FAILURE = 1
const EXIT_USAGE = 2

export const BRIDGE_USAGE = `  bridge to-stream|from-stream CHANNEL --server URL --stream NAME [--subject SUBJECT]
      Run a channel bridge over NATS JetStream until Ctrl-C: to-stream moves
      CHANNEL's messages into stream NAME (holding the channel's consumer
      end), from-stream moves the stream's messages into CHANNEL (holding its
      producer end); in order, each once, across restarts. URL may list
      several servers, comma-separated. Needs @nats-io/transport-node and
      @nats-io/jetstream installed.
`

function missingPackages (err: unknown): boolean {
  const e = err as { code?: string, message?: string }
  return e?.code === 'MODULE_NOT_FOUND' && /@nats-io\//.test(e.message ?? '')
}

export async function bridgeCommand (args: BridgeArgs, io: BridgeIO): Promise<number> {
  const [direction, channel] = args.positionals
  const { server, stream, subject } = args.flags
  if (direction !== 'to-stream' && direction !== 'from-stream') {
    io.stderr.write(`shm-channel: DIRECTION must be to-stream or from-stream, got "${String(direction)}"\nRun "shm-channel help" for usage.\n`)
    return EXIT_USAGE
  }
  if (typeof server !== 'string' || typeof stream !== 'string') {
    io.stderr.write('shm-channel: "bridge" needs --server URL and --stream NAME\nRun "shm-channel help" for usage.\n')
    return EXIT_USAGE
  }
  let transport: typeof Transport
  let bridges: typeof BridgeModule
  try {
    transport = require('@nats-io/transport-node') as typeof Transport
    bridges = require('./bridge') as typeof BridgeModule
  } catch (err) {
    if (!missingPackages(err)) throw err
    io.stderr.write('shm-channel: "bridge" needs the NATS client packages: npm install @nats-io/transport-node @nats-io/jetstream\n')
    return EXIT_FAILURE
  }
  const nats = await transport.connect({ servers: server.split(','), maxReconnectAttempts: -1, name: `shm-channel bridge ${direction} ${channel}` })
  const options = { nats, channel, stream, subject: typeof subject === 'string' ? subject : undefined }
  const bridge = direction === 'to-stream' ? await bridges.bridgeChannelToStream(options) : await bridges.bridgeStreamToChannel(options)
  io.stdout.write(`bridging ${direction === 'to-stream' ? `channel ${channel} -> stream ${stream}` : `stream ${stream} -> channel ${channel}`} on ${server}\n`)
  const stop = (): void => { void bridge.close() }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  io.signal?.addEventListener('abort', stop, { once: true })
  try {
    await bridge.done
    io.stdout.write(`stopped after ${bridge.forwarded} messages\n`)
    return EXIT_OK
  } catch (err) {
    io.stderr.write(`shm-channel: the bridge stopped: ${(err as Error).message}\n`)
    return EXIT_FAILURE
  } finally {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
    await nats.close()
  }
}
