/**
 * The shm-channel command (lib/tools/cli.ts, bin/shm-channel.js) against real
 * channels: ends held here and in forked processes (test/fixtures/cli-holder.ts),
 * some of them SIGKILLed to leave dead ends, and objects in /dev/shm that are
 * not channels. `main()` runs in-process with captured output; a few tests
 * run the real bin from dist/.
 *
 * Commands that act on every channel (gc) are always given --prefix, so this
 * file never touches channels of other processes on the machine.
 */
import { execFileSync, fork, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import t, { type Test } from 'tap'

import { main, EXIT_FAILURE, EXIT_NOT_A_CHANNEL, EXIT_OK, EXIT_USAGE, type CliIO } from '../../lib/tools/cli'
import { Consumer, Event, Producer, Region } from '../../lib/index'
import { initSegment } from '../../lib/channel/segment'
import * as L from '../../lib/channel/layout'
import type { HolderSpec } from '../fixtures/cli-holder'
import { RpcPeer } from '../support/rpc-peer'

const ROOT = path.join(__dirname, '..', '..')
const BIN = path.join(ROOT, 'bin', 'shm-channel.js')
const DIST_CLI = path.join(ROOT, 'dist', 'tools', 'cli.js')
const CAPACITY = 65536
const SIZE = L.segmentSize(CAPACITY)

/** Every name this file makes starts with this, so gc --prefix reaches only them. */
const PREFIX = `shmch-test-${process.pid}-cli-`
let counter = 0

/** A fresh channel name (no slash), unlinked when `t` ends if it still exists. */
function channelName (t: Test, label: string): string {
  const name = `${PREFIX}${label}-${++counter}`
  t.teardown(() => { unlinkIfPresent(name) })
  return name
}

function unlinkIfPresent (name: string): void {
  try {
    Region.unlink(name)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
}

function exists (name: string): boolean {
  return fs.existsSync(path.join('/dev/shm', name))
}

interface Run {
  code: number
  stdout: string
  stderr: string
}

/** Runs the command in-process. `onWrite` sees stdout as it comes (for watch mode). */
async function run (argv: string[], options: { signal?: AbortSignal, onWrite?: (chunk: string) => void } = {}): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const io: CliIO = {
    stdout: { write: (chunk: string) => { stdout += chunk; options.onWrite?.(chunk) } },
    stderr: { write: (chunk: string) => { stderr += chunk } },
    signal: options.signal
  }
  const code = await main(argv, io)
  return { code, stdout, stderr }
}

async function runJson<T = any> (t: Test, argv: string[]): Promise<T> {
  const result = await run(argv)
  t.equal(result.code, EXIT_OK, `${argv.join(' ')} exits 0`)
  return JSON.parse(result.stdout) as T
}

/** A forked process holding channel ends (fixtures/cli-holder.ts); killed when `t` ends if still running. */
class Holder {
  readonly child: ChildProcess
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  readonly ready: Promise<number>
  #stderr = ''

  constructor (t: Test, spec: HolderSpec) {
    this.child = fork(path.join(__dirname, '..', 'fixtures', 'cli-holder.ts'), [JSON.stringify(spec)], {
      execArgv: process.execArgv,
      stdio: ['ignore', 'inherit', 'pipe', 'ipc']
    })
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { this.#stderr += chunk })
    this.exited = new Promise((resolve) => { this.child.on('exit', (code, signal) => { resolve({ code, signal }) }) })
    this.ready = new Promise((resolve, reject) => {
      this.child.once('message', (message: { pid: number }) => { resolve(message.pid) })
      void this.exited.then(({ code, signal }) => { reject(new Error(`holder ended (${signal ?? code}) before it was ready:\n${this.#stderr}`)) })
    })
    t.teardown(async () => {
      if (this.child.exitCode === null && this.child.signalCode === null) {
        this.child.kill('SIGKILL')
        await this.exited
      }
    })
  }

  get pid (): number {
    return this.child.pid ?? -1
  }

  /** SIGKILL: the ends it holds stay open under a pid that no longer runs. */
  async kill (t: Test): Promise<void> {
    this.child.kill('SIGKILL')
    t.same(await this.exited, { code: null, signal: 'SIGKILL' }, 'the holder died of SIGKILL')
  }
}

/** Record size in the ring of a message of `size` bytes. */
const record = (size: number): number => L.alignRecord(size)

t.test('ls lists a channel with its fill level, message counts, and each end\'s pid and liveness', async (t) => {
  const name = channelName(t, 'ls')
  const holder = new Holder(t, { name, producer: true, send: 10, size: 100 })
  await holder.ready
  const consumer = Consumer.open<Uint8Array>(name, { codec: 'bytes' })
  t.teardown(() => { consumer.close() })
  for (let i = 0; i < 4; i++) t.ok(consumer.read(), `message ${i} read`)
  consumer.release()

  const used = 6 * record(100)
  const channels = await runJson<any[]>(t, ['ls', '--json'])
  const entry = channels.find((c) => c.name === name)
  t.ok(entry, 'the channel is listed (without --prefix too)')
  t.match(entry, {
    name,
    size: SIZE,
    capacity: CAPACITY,
    version: '1.1',
    used,
    usedPercent: Math.round(used / CAPACITY * 10000) / 100,
    messagesSent: 10,
    messagesReceived: 4,
    producer: { pid: holder.pid, status: 'alive' },
    consumer: { pid: process.pid, status: 'alive' }
  })

  const text = await run(['ls', '--prefix', PREFIX])
  t.equal(text.code, EXIT_OK)
  const lines = text.stdout.trimEnd().split('\n')
  t.match(lines[0], /^NAME +SIZE +CAPACITY +USED +SENT +RECEIVED +PRODUCER +CONSUMER$/)
  const line = lines.find((l) => l.startsWith(name + ' '))
  t.ok(line, 'a line for the channel')
  t.match(line, new RegExp(`^${name} +65 KiB +64 KiB +${used} B \\(1.03%\\) +10 +4 +${holder.pid} alive +${process.pid} alive$`))

  await holder.kill(t)
  const after = (await runJson<any[]>(t, ['ls', '--json', '--prefix', PREFIX])).find((c) => c.name === name)
  t.match(after, { producer: { pid: holder.pid, status: 'dead' }, consumer: { status: 'alive' }, used, messagesSent: 10 }, 'the killed holder\'s end shows dead')
})

t.test('stat shows the header\'s counters as sent and received, by name with or without its slash', async (t) => {
  const name = channelName(t, 'stat')
  const holder = new Holder(t, { name, producer: true, consumer: true, send: 7, size: 50, receive: 3 })
  await holder.ready

  for (const given of [name, `/${name}`]) {
    const stat = await runJson(t, ['stat', given, '--json'])
    t.match(stat, {
      name,
      capacity: CAPACITY,
      headerSize: L.HEADER_SIZE,
      flags: 0,
      producerPosition: 7 * record(50),
      consumerPosition: 3 * record(50),
      used: 4 * record(50),
      messagesSent: 7,
      bytesSent: 350,
      messagesReceived: 3,
      bytesReceived: 150,
      timesFull: 0,
      wakeupsToConsumer: 0,
      wakeupsToProducer: 0,
      consumerParked: false,
      producerParked: false,
      producer: { pid: holder.pid, status: 'alive', state: L.END_OPEN },
      consumer: { pid: holder.pid, status: 'alive', state: L.END_OPEN }
    }, `stat ${given}`)
  }

  const text = await run(['stat', name])
  t.equal(text.code, EXIT_OK)
  t.match(text.stdout, `channel     ${name} (/dev/shm/${name}, ${SIZE} bytes)\n`)
  t.match(text.stdout, `positions   producer ${7 * record(50)}, consumer ${3 * record(50)}\n`)
  t.match(text.stdout, 'sent        7 messages, 350 bytes\n')
  t.match(text.stdout, 'received    3 messages, 150 bytes\n')
  t.match(text.stdout, 'unread      4 messages\n')
  t.match(text.stdout, 'wake-ups    to the consumer 0, to the producer 0\n')
  t.match(text.stdout, 'parked      consumer no, producer no\n')
  t.match(text.stdout, new RegExp(`producer    pid ${holder.pid}, alive \\(state 1, start time \\d+\\)\n`))

  await holder.kill(t)
  t.match(await runJson(t, ['stat', name, '--json']), { producer: { status: 'dead' }, consumer: { status: 'dead' } })
})

t.test('stat --watch prints a sample per interval with rates until its signal aborts, then exits 0', async (t) => {
  const name = channelName(t, 'watch')
  const producer = Producer.open<Uint8Array>(name, { codec: 'bytes', capacity: CAPACITY })
  t.teardown(() => { producer.close() })

  t.test('--json: one object per line; the first has no rates, later ones count what was sent meanwhile', async (t) => {
    const stop = new AbortController()
    let lines = 0
    const result = await run(['stat', name, '--watch', '--interval', '20', '--json'], {
      signal: AbortSignal.any([stop.signal, AbortSignal.timeout(10_000)]),
      onWrite: (chunk) => {
        lines += chunk.split('\n').length - 1
        if (lines >= 3) stop.abort()
        else for (let i = 0; i < 5; i++) producer.trySend(new Uint8Array(10))
      }
    })
    t.equal(result.code, EXIT_OK)
    t.equal(result.stderr, '')
    const samples = result.stdout.trimEnd().split('\n').map((line) => JSON.parse(line))
    t.equal(samples.length, 3, 'three samples, then the abort')
    t.equal(samples[0].rates, null)
    t.equal(samples[0].messagesSent, 0)
    t.equal(samples[1].messagesSent, 5)
    t.equal(samples[2].messagesSent, 10)
    t.ok(samples[1].rates.messagesSentPerSecond > 0, 'a send rate')
    t.ok(samples[1].rates.bytesSentPerSecond > 0, 'a byte rate')
    t.equal(samples[1].rates.messagesReceivedPerSecond, 0, 'nothing received')
    t.ok(Date.parse(samples[2].time) >= Date.parse(samples[0].time))
  })

  t.test('text: a header and a row per sample', async (t) => {
    const stop = new AbortController()
    let lines = 0
    const result = await run(['stat', `/${name}`, '--watch', '--interval=20'], {
      signal: AbortSignal.any([stop.signal, AbortSignal.timeout(10_000)]),
      onWrite: (chunk) => { if ((lines += chunk.split('\n').length - 1) >= 3) stop.abort() }
    })
    t.equal(result.code, EXIT_OK)
    const output = result.stdout.trimEnd().split('\n')
    t.match(output[0], /^TIME +SENT\/S +SENT MB\/S +RECV\/S +RECV MB\/S +USED +FULL +PRODUCER +CONSUMER$/)
    t.equal(output.length, 3, 'the header and two samples')
    const used = 10 * record(10)
    const percent = Math.round(used / CAPACITY * 10000) / 100
    t.match(output[1], new RegExp(`^\\d\\d:\\d\\d:\\d\\d +- +- +- +- +${used} B ${percent}% +0 +${process.pid} alive +free$`))
    t.match(output[2], /^\d\d:\d\d:\d\d +0\.0 +0\.00 +0\.0 +0\.00 /, 'rates of an idle channel')
  })

  t.test('a channel removed while watched ends the watch with exit 1', async (t) => {
    let samples = 0
    const result = await run(['stat', name, '--watch', '--interval', '20', '--json'], {
      signal: AbortSignal.timeout(10_000),
      onWrite: () => { if (++samples === 1) Region.unlink(name) }
    })
    t.equal(result.code, EXIT_FAILURE)
    t.equal(samples, 1)
    t.match(result.stderr, `no channel named ${name}`)
  })
})

t.test('a request/response listener: ls shows it, stat explains it, gc removes it and its connections\' channels once its server is gone', async (t) => {
  const name = channelName(t, 'listener')
  const server = new RpcPeer(t, 'rpc-server.ts')
  const { pid } = await server.call('serve', name) as { pid: number }
  // A client in its own process, killed below: nobody is left to clean up.
  // It looks at its server only once a minute, so it is not the one that removes the names.
  const client = new RpcPeer(t, 'rpc-client.ts')
  await client.call('connect', name, { peerCheckInterval: 60_000 })
  t.same(await client.call('request', { op: 'echo', value: 1 }), 1)
  const connection = fs.readdirSync('/dev/shm').filter((n) => n.startsWith(`${name}.`)).sort()
  t.equal(connection.length, 2, 'the connection has its two channels')

  const listed = await run(['ls', '--prefix', name])
  t.equal(listed.code, EXIT_OK)
  t.match(listed.stdout, new RegExp(`listener ${name} \\(request/response, codec json\\): server ${pid} alive`))
  const stat = await runJson(t, ['stat', name, '--json'])
  t.match(stat, { kind: 'listener', name, codec: 'json', server: { pid, status: 'alive' } })
  t.match((await run(['stat', name])).stdout, /^listener +\S+ \(request\/response/)
  await run(['gc', '--prefix', name])
  t.ok(exists(name), 'gc leaves the listener of a live server')

  t.same(await server.kill('SIGKILL'), { code: null, signal: 'SIGKILL' })
  t.same(await client.kill('SIGKILL'), { code: null, signal: 'SIGKILL' })
  t.match(await runJson(t, ['stat', name, '--json']), { kind: 'listener', server: { pid, status: 'dead' } })
  const dry = await runJson(t, ['gc', '--dry-run', '--json', '--prefix', name])
  t.match(dry.listeners, [{ name, channels: connection }])
  t.ok(exists(name), '--dry-run removes nothing')
  const gc = await run(['gc', '--prefix', name])
  t.equal(gc.code, EXIT_OK, gc.stderr)
  t.match(gc.stdout, `removed listener ${name} (server ${pid} dead)`)
  t.same(fs.readdirSync('/dev/shm').filter((n) => n === name || n.startsWith(`${name}.`)), [], 'the listener and its channels are gone')
})

t.test('a named event: ls shows it, stat explains it, gc leaves it', async (t) => {
  const name = channelName(t, 'event')
  const event = Event.open(name)
  t.teardown(() => { event.close() })
  event.notify()
  event.notify()
  const listed = await run(['ls', '--prefix', name])
  t.equal(listed.code, EXIT_OK)
  t.match(listed.stdout, `event ${name}: 1 holder, 2 notifications, 0 waiting`)
  t.match(await runJson(t, ['stat', name, '--json']), { kind: 'event', name, version: '1.0', holders: 1, notifications: 2, waiters: 0 })
  t.match((await run(['stat', name])).stdout, /^event +\S+ \(a named event/)
  const gc = await run(['gc', '--prefix', name])
  t.equal(gc.code, EXIT_OK, gc.stderr)
  t.ok(exists(name), 'gc leaves an event: its holders are a count, not processes')
  event.close()
  t.notOk(exists(name), 'its last holder removed it')
})

t.test('gc removes channels whose ends are all dead, closed or free, and never one with a live end', async (t) => {
  const dead = channelName(t, 'gc-dead')
  const halfDead = channelName(t, 'gc-half-dead')
  const closed = channelName(t, 'gc-closed')
  const live = channelName(t, 'gc-live')
  const fresh = channelName(t, 'gc-fresh')

  // Three processes, started together (each takes a moment to load):
  // both ends in one that dies; a producer that dies while its consumer (this
  // process) lives on; both ends in one that lives.
  const both = new Holder(t, { name: dead, producer: true, consumer: true, send: 3, receive: 1 })
  const producerOnly = new Holder(t, { name: halfDead, producer: true, send: 2 })
  const holder = new Holder(t, { name: live, producer: true, consumer: true })
  await Promise.all([both.ready, producerOnly.ready, holder.ready])
  await both.kill(t)
  const consumer = Consumer.open(halfDead, { codec: 'bytes' })
  t.teardown(() => { consumer.close() })
  await producerOnly.kill(t)
  // A producer that sent and closed before any consumer came: closed + free.
  const early = Producer.open(closed, { capacity: CAPACITY })
  early.trySend('never read')
  early.close()
  // A header nobody has taken an end of yet: its creator is taking one now.
  const region = Region.create(fresh, L.segmentSize(4096))
  initSegment(region.buffer, 4096)
  region.close()

  const status = (await runJson<any[]>(t, ['ls', '--json', '--prefix', PREFIX]))
    .filter((c) => [dead, halfDead, closed, live, fresh].includes(c.name))
    .map((c) => [c.name, c.producer.status, c.consumer.status])
  t.same(status, [
    [closed, 'closed', 'free'],
    [dead, 'dead', 'dead'],
    [fresh, 'free', 'free'],
    [halfDead, 'dead', 'alive'],
    [live, 'alive', 'alive']
  ].sort(), 'ls sees each channel\'s ends')

  const dry = await runJson(t, ['gc', '--dry-run', '--json', '--prefix', PREFIX])
  t.equal(dry.dryRun, true)
  t.same(dry.removed.map((c: { name: string }) => c.name), [closed, dead], '--dry-run names the dead and the closed channel')
  t.same(dry.failed, [])
  for (const name of [dead, halfDead, closed, live, fresh]) t.ok(exists(name), `--dry-run left ${name}`)

  const dryText = await run(['gc', '--dry-run', '--prefix', PREFIX])
  t.equal(dryText.code, EXIT_OK)
  t.match(dryText.stdout, `would remove ${closed} (producer ${process.pid} closed, consumer free, 1 unread message)\n`)
  t.match(dryText.stdout, `would remove ${dead} (producer ${both.pid} dead, consumer ${both.pid} dead, 2 unread messages)\n`)

  const text = await run(['gc', '--prefix', PREFIX])
  t.equal(text.code, EXIT_OK)
  t.equal(text.stderr, '')
  t.same(text.stdout.trimEnd().split('\n').map((line) => line.split(' ').slice(0, 2).join(' ')), [`removed ${closed}`, `removed ${dead}`])
  t.notOk(exists(dead), 'the dead channel is gone')
  t.notOk(exists(closed), 'the closed channel is gone')
  t.ok(exists(halfDead), 'a channel with one live end stays')
  t.ok(exists(live), 'a live channel stays')
  t.ok(exists(fresh), 'a channel just created stays')

  const again = await runJson(t, ['gc', '--json', '--prefix', PREFIX])
  t.same(again.removed, [], 'nothing more to remove')
  t.equal((await run(['gc', '--prefix', PREFIX])).stdout, 'nothing removed\n')
})

t.test('rm removes a channel by name; refuses what is not a channel unless --force', async (t) => {
  t.test('a channel, with or without slash', async (t) => {
    for (const slash of ['', '/']) {
      const name = channelName(t, 'rm')
      Producer.open(name).close() // closed before a consumer came: the name stays
      t.ok(exists(name))
      const result = await run(['rm', slash + name])
      t.same(result, { code: EXIT_OK, stdout: `removed ${name}\n`, stderr: '' })
      t.notOk(exists(name))
    }
  })

  t.test('a channel with a live end: removed, with a warning; the end keeps working', async (t) => {
    const name = channelName(t, 'rm-live')
    const producer = Producer.open(name)
    t.teardown(() => { producer.close() })
    const result = await run(['rm', name])
    t.equal(result.code, EXIT_OK)
    t.equal(result.stderr, `shm-channel: warning: ${name} is in use (producer pid ${process.pid}): what has it open keeps its mapping, and the next open of ${name} makes a new channel\n`)
    t.notOk(exists(name))
    t.ok(producer.trySend('still fine'))
  })

  t.test('an unknown name: exit 1', async (t) => {
    const result = await run(['rm', `${PREFIX}nothing-here`])
    t.equal(result.code, EXIT_FAILURE)
    t.equal(result.stderr, `shm-channel: no channel named ${PREFIX}nothing-here\n`)
  })

  t.test('a foreign object: exit 3 and left alone; removed with --force', async (t) => {
    const name = channelName(t, 'rm-foreign')
    foreignObject(name)
    const refused = await run(['rm', name])
    t.equal(refused.code, EXIT_NOT_A_CHANNEL)
    t.match(refused.stderr, `${name} is not a shm-channel segment`)
    t.match(refused.stderr, '--force')
    t.ok(exists(name))
    t.same(await run(['rm', name, '--force']), { code: EXIT_OK, stdout: `removed ${name}\n`, stderr: '' })
    t.notOk(exists(name))
  })

  t.test('a segment of another protocol version is still shm-channel\'s to remove', async (t) => {
    const name = channelName(t, 'rm-v2')
    segmentOfVersion(name, 2, 0)
    t.equal((await run(['rm', name])).code, EXIT_OK)
    t.notOk(exists(name))
  })
})

t.test('objects in /dev/shm that are not channels are not listed, and stat says why with exit 3', async (t) => {
  const foreign = channelName(t, 'foreign')
  foreignObject(foreign)
  const zeros = channelName(t, 'zeros')
  Region.create(zeros, 8192).close()
  const tiny = channelName(t, 'tiny')
  Region.create(tiny, 16).close()
  const empty = channelName(t, 'empty')
  fs.closeSync(fs.openSync(path.join('/dev/shm', empty), 'w', 0o600))
  const v2 = channelName(t, 'v2')
  segmentOfVersion(v2, 2, 1)
  const channel = channelName(t, 'real')
  const producer = Producer.open(channel)
  t.teardown(() => { producer.close() })

  const names = (await runJson<any[]>(t, ['ls', '--json', '--prefix', PREFIX])).map((c) => c.name)
  t.ok(names.includes(channel), 'the channel is listed')
  for (const name of [foreign, zeros, tiny, empty, v2]) t.notOk(names.includes(name), `${name} is not`)
  const all = await run(['ls'])
  t.equal(all.code, EXIT_OK)
  t.notMatch(all.stdout, foreign)

  const cases: Array<[string, string]> = [
    [foreign, `${foreign} is not a shm-channel segment: magic is 0x`],
    [zeros, `${zeros} is not a shm-channel segment: no header yet`],
    [tiny, `${tiny} is not a shm-channel segment: 16 bytes, smaller than a channel header`],
    [empty, `${empty} is not a shm-channel segment: 0 bytes`],
    [v2, `${v2} is a shm-channel segment of protocol version 2.1, which this version (1.1) cannot read`]
  ]
  for (const [name, message] of cases) {
    const result = await run(['stat', name])
    t.equal(result.code, EXIT_NOT_A_CHANNEL, `stat ${name} exits 3`)
    t.match(result.stderr, `shm-channel: ${message}`)
    t.equal(result.stdout, '')
  }
})

t.test('bad input: unknown name exits 1, bad usage exits 2, help and --version exit 0', async (t) => {
  const unknown = await run(['stat', `/${PREFIX}no-such-channel`])
  t.same(unknown, { code: EXIT_FAILURE, stdout: '', stderr: `shm-channel: no channel named ${PREFIX}no-such-channel\n` })

  const usage: string[][] = [
    ['frobnicate'],
    ['--frobnicate'],
    ['ls', '--frobnicate'],
    ['ls', 'extra'],
    ['stat'],
    ['stat', 'a', 'b'],
    ['stat', 'a/b'],
    ['stat', ''],
    ['stat', 'x', '--interval', '100'],
    ['stat', 'x', '--watch', '--interval', '0'],
    ['stat', 'x', '--watch', '--interval', 'soon'],
    ['stat', 'x', '--watch', '--interval'],
    ['stat', 'x', '--json=yes'],
    ['rm'],
    ['gc', '--prefix'],
    ['help', 'frobnicate']
  ]
  for (const argv of usage) {
    const result = await run(argv)
    t.equal(result.code, EXIT_USAGE, `${JSON.stringify(argv)} exits 2`)
    t.match(result.stderr, /^shm-channel: .+\nRun "shm-channel help" for usage\.\n$/)
    t.equal(result.stdout, '')
  }
  t.match((await run(['frobnicate'])).stderr, 'unknown command "frobnicate"')
  t.match((await run(['ls', '--frobnicate'])).stderr, 'unknown option --frobnicate for "ls"')
  t.match((await run(['stat'])).stderr, '"stat" needs NAME')

  for (const argv of [[], ['help'], ['--help'], ['-h'], ['help', 'gc'], ['gc', '--help']]) {
    const result = await run(argv)
    t.equal(result.code, EXIT_OK, `${JSON.stringify(argv)} exits 0`)
    t.match(result.stdout, /^Usage: shm-channel <command>/)
    t.match(result.stdout, 'Exit codes:\n  0  success\n  1  failure at run time, or no channel by that name\n  2  usage error')
    t.match(result.stdout, '  3  not a shm-channel segment, or an unsupported protocol version\n')
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }
  t.same(await run(['--version']), { code: EXIT_OK, stdout: `shm-channel ${pkg.version} (protocol 1.1)\n`, stderr: '' })
})

const noDist = fs.existsSync(DIST_CLI) ? false : 'dist/tools/cli.js is missing: run `npx tsc -p tsconfig.json` first'

t.test('the bin runs dist/tools/cli.js and exits with its code', { skip: noDist }, async (t) => {
  const name = channelName(t, 'bin')
  const producer = Producer.open(name)
  t.teardown(() => { producer.close() })
  producer.trySend('hello')

  t.ok((fs.statSync(BIN).mode & 0o111) !== 0, 'bin/shm-channel.js is executable')
  t.match(fs.readFileSync(BIN, 'utf8'), /^#!\/usr\/bin\/env node\n/)

  const out = execFileSync(process.execPath, [BIN, 'ls', '--json'], { cwd: ROOT, encoding: 'utf8' })
  const listed = (JSON.parse(out) as any[]).find((c) => c.name === name)
  t.match(listed, { messagesSent: 1, producer: { pid: process.pid, status: 'alive' }, consumer: { status: 'free' } })

  const failed = runSync(process.execPath, [BIN, 'stat', `${PREFIX}no-such-channel`])
  t.equal(failed.status, EXIT_FAILURE, 'exit code 1 for an unknown name')
  t.equal(failed.stderr, `shm-channel: no channel named ${PREFIX}no-such-channel\n`)
  t.equal(runSync(process.execPath, [BIN, 'frobnicate']).status, EXIT_USAGE, 'exit code 2 for bad usage')

  t.test('Ctrl-C ends stat --watch with exit code 0', async (t) => {
    const child = spawn(process.execPath, [BIN, 'stat', name, '--watch', '--interval', '20'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
    await new Promise<void>((resolve) => {
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk
        if (stdout.split('\n').length > 3) resolve() // the header and two samples
      })
    })
    child.kill('SIGINT')
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => { child.on('exit', (code, signal) => { resolve([code, signal]) }) })
    t.same({ code, signal, stderr }, { code: 0, signal: null, stderr: '' })
  })
})

t.test('as a user that may not read the channels: ls skips them, stat says permission denied', {
  skip: noDist !== false ? noDist : process.getuid?.() !== 0 ? 'needs root, to run the bin as "nobody"' : false
}, async (t) => {
  const name = channelName(t, 'private')
  const producer = Producer.open(name) // mode 0600, owned by root
  t.teardown(() => { producer.close() })
  // Through env -u NODE_OPTIONS: tap puts its process-tracking loader back
  // into the NODE_OPTIONS of every child, and that loader writes to .tap/ on
  // exit, which nobody may not.
  const asNobody = (args: string[]): { status: number | null, stdout: string, stderr: string } =>
    runSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, BIN, ...args], { uid: 65534, gid: 65534 })
  const ls = asNobody(['ls', '--json', '--prefix', PREFIX])
  t.equal(ls.status, EXIT_OK, ls.stderr)
  t.notOk((JSON.parse(ls.stdout) as any[]).some((c) => c.name === name), 'not listed')
  t.match(ls.stderr, `shm-channel: skipped ${name}: permission denied\n`)
  const stat = asNobody(['stat', name])
  t.equal(stat.status, EXIT_FAILURE)
  t.equal(stat.stderr, `shm-channel: cannot read ${name}: permission denied\n`)
})

t.test(`leaves no /dev/shm/${PREFIX}* entries behind`, (t) => {
  t.same(fs.readdirSync('/dev/shm').filter((entry) => entry.startsWith(PREFIX)), [])
  t.end()
})

/** Runs `file` with `args` to its end: exit status and output. */
function runSync (file: string, args: string[], options: { uid?: number, gid?: number } = {}): { status: number | null, stdout: string, stderr: string } {
  const { status, stdout, stderr, error } = spawnSync(file, args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000, ...options })
  if (error !== undefined) throw error
  return { status, stdout, stderr }
}

/** A shared memory object of random bytes that do not start with shm-channel's magic. */
function foreignObject (name: string): void {
  const region = Region.create(name, 8192)
  const bytes = new Uint8Array(region.buffer)
  randomFillSync(bytes)
  new DataView(region.buffer).setUint32(0, 0xdeadbeef, true)
  region.close()
}

/** A channel header of protocol version major.minor. */
function segmentOfVersion (name: string, major: number, minor: number): void {
  const region = Region.create(name, L.segmentSize(4096))
  initSegment(region.buffer, 4096)
  new DataView(region.buffer).setUint32(L.VERSION_OFFSET, (major << 16) | minor, true)
  region.close()
}
