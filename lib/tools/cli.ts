/**
 * The `shm-channel` command: lists, inspects and removes the channels on
 * this machine. bin/shm-channel.js runs `main`; tests call it in-process with
 * their own output streams and an AbortSignal to end `stat --watch`.
 *
 * Reading is lib/tools/inspect.ts's business; this module parses arguments,
 * formats what it finds and decides exit codes.
 */
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

import * as L from '../channel/layout'
import { describeEntry, dump, findStores, openForInspection, verify as verifyStore } from '../kv/inspect'
import { Region, checkName } from '../platform/region'
import {
  SHM_DIR, ageOf, collectable, listChannels, probe, read,
  type ChannelSnapshot, type EndSnapshot, type Probe
} from './inspect'
import { describeFanIn, inspectFanIn, type FanInSnapshot } from '../fanin/inspect'
import { describeTopic, inspectTopic, type TopicSnapshot } from '../pubsub/inspect'
import { BRIDGE_USAGE, bridgeCommand } from '../nats/command'
import { connectionChannels, describeListener, inspectListener, listenerCollectable, type ListenerSnapshot } from '../rpc/inspect'
import { describeEvent, inspectEvent, summarizeEvent, type EventSnapshot } from '../event/inspect'

/** Exit codes, stable for scripts (also listed in the usage text). */
export const EXIT_OK = 0
/** A failure at run time, or no channel by that name. */
export const EXIT_FAILURE = 1
/** Unknown command or option, missing or malformed argument. */
export const EXIT_USAGE = 2
/** The object is not a shm-channel segment, or one of an unsupported protocol version. */
export const EXIT_NOT_A_CHANNEL = 3

/** Where `main` writes, and what stops `stat --watch` besides Ctrl-C. */
export interface CliIO {
  stdout: { write: (chunk: string) => unknown }
  stderr: { write: (chunk: string) => unknown }
  /** Ends `stat --watch` (exit code 0), as SIGINT does. */
  signal?: AbortSignal
}

const USAGE = `Usage: shm-channel <command> [options]

Inspects the shm-channel channels on this machine (POSIX shared memory, ${SHM_DIR}).

Commands:
  ls [--json] [--prefix PREFIX]
      List channels: size, capacity, bytes in the ring, messages sent and
      received, and each end's pid and state (alive, dead, closed or free);
      then the topics, fan-in rings, request/response listeners and events.
  stat NAME [--json] [--watch] [--interval MS]
      A channel's header: positions, counters, parked flags, ends. --watch
      prints a sample every MS milliseconds (default 1000) with message and
      byte rates, until Ctrl-C; with --json, one JSON object per line.
  rm NAME [--force]
      Remove a channel's name. Processes that have it open keep their
      mapping. Refuses an object that is not a shm-channel segment unless --force.
  gc [--dry-run] [--json] [--prefix PREFIX]
      Remove channels none of whose ends is alive (each is dead, closed or
      free), and the listeners of request/response servers that died or
      closed with their connections' channels; --dry-run only says what would go.
  kv-ls [DIR] [--json]
      List the key-value store files in DIR (default: the current directory).
  kv-get PATH KEY [--json]
      A key's value in the store at PATH, decoded with the codec that wrote it.
  kv-dump PATH [--json]
      Every key and value of the store at PATH.
  kv-verify PATH [--json]
      Read every record again; list damaged stretches (exit 1 if any).
  kv-compact PATH
      Rewrite the store's live records into a new file that replaces it.
${BRIDGE_USAGE}  help [COMMAND]
      This text.

Options:
  -h, --help       this text
  -v, --version    the package and protocol versions
  --prefix PREFIX  (ls, gc) only channels whose names start with PREFIX

NAME is a channel's name, with or without its leading slash.

Exit codes:
  0  success
  1  failure at run time, or no channel by that name
  2  usage error: unknown command or option, missing or bad argument
  3  not a shm-channel segment, or an unsupported protocol version
`

/** An outcome that ends the command with `exitCode` and a message on stderr. */
class CliError extends Error {
  constructor (readonly exitCode: number, message: string) {
    super(message)
  }
}

function usageError (message: string): CliError {
  return new CliError(EXIT_USAGE, `${message}\nRun "shm-channel help" for usage.`)
}

interface OptionSpec {
  [option: string]: 'boolean' | 'string'
}

interface Command {
  options: OptionSpec
  /** Positional arguments: names in order; the last may be optional (ending in '?'). */
  positionals: string[]
  run: (args: ParsedArgs, io: CliIO) => Promise<number> | number
}

interface ParsedArgs {
  flags: Record<string, boolean | string | undefined>
  positionals: string[]
}

const COMMANDS: Record<string, Command> = {
  ls: { options: { json: 'boolean', prefix: 'string' }, positionals: [], run: ls },
  stat: { options: { json: 'boolean', watch: 'boolean', interval: 'string' }, positionals: ['NAME'], run: stat },
  rm: { options: { force: 'boolean' }, positionals: ['NAME'], run: rm },
  gc: { options: { 'dry-run': 'boolean', json: 'boolean', prefix: 'string' }, positionals: [], run: gc },
  'kv-ls': { options: { json: 'boolean' }, positionals: ['DIR?'], run: kvLs },
  'kv-get': { options: { json: 'boolean' }, positionals: ['PATH', 'KEY'], run: kvGet },
  'kv-dump': { options: { json: 'boolean' }, positionals: ['PATH'], run: kvDump },
  'kv-verify': { options: { json: 'boolean' }, positionals: ['PATH'], run: kvVerify },
  'kv-compact': { options: {}, positionals: ['PATH'], run: kvCompact },
  // Loads the NATS packages only when run (shm-channel/nats, docs/nats.md).
  bridge: { options: { server: 'string', stream: 'string', subject: 'string' }, positionals: ['DIRECTION', 'CHANNEL'], run: async (args, io) => await bridgeCommand(args, io) },
  help: { options: {}, positionals: ['COMMAND?'], run: (_args, io) => { io.stdout.write(USAGE); return EXIT_OK } }
}

/**
 * Runs the command in `argv` (the arguments after the program name) and
 * returns its exit code. Never throws for a user's mistake or a failing
 * system call: those become a message on `io.stderr` and a code.
 */
export async function main (argv: string[], io: CliIO = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  try {
    const [first, ...rest] = argv
    if (first === undefined || first === '-h' || first === '--help') {
      io.stdout.write(USAGE)
      return EXIT_OK
    }
    if (first === '-v' || first === '--version') {
      io.stdout.write(`shm-channel ${packageVersion()} (protocol ${L.VERSION_MAJOR}.${L.VERSION_MINOR})\n`)
      return EXIT_OK
    }
    if (first.startsWith('-')) throw usageError(`unknown option ${first} (options come after the command)`)
    const command = Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined
    if (command === undefined) throw usageError(`unknown command "${first}"`)
    const options = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest
    if (options.includes('-h') || options.includes('--help')) {
      io.stdout.write(USAGE)
      return EXIT_OK
    }
    const args = parseArgs(first, command, rest)
    if (first === 'help' && args.positionals[0] !== undefined && !Object.hasOwn(COMMANDS, args.positionals[0])) {
      throw usageError(`unknown command "${args.positionals[0]}"`)
    }
    return await command.run(args, io)
  } catch (err) {
    if (err instanceof CliError) {
      io.stderr.write(`shm-channel: ${err.message}\n`)
      return err.exitCode
    }
    const e = err as NodeJS.ErrnoException
    io.stderr.write(`shm-channel: ${e.message ?? String(err)}\n`)
    return EXIT_FAILURE
  }
}

/** `--flag`, `--option value`, `--option=value`, `--` ending options; anything else is a positional. */
function parseArgs (commandName: string, command: Command, argv: string[]): ParsedArgs {
  const flags: ParsedArgs['flags'] = {}
  const positionals: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1))
      break
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg)
      continue
    }
    const eq = arg.indexOf('=')
    const option = arg.startsWith('--') ? arg.slice(2, eq === -1 ? undefined : eq) : ''
    const type = Object.hasOwn(command.options, option) ? command.options[option] : undefined
    if (type === undefined) throw usageError(`unknown option ${eq === -1 ? arg : arg.slice(0, eq)} for "${commandName}"`)
    if (type === 'boolean') {
      if (eq !== -1) throw usageError(`--${option} takes no value`)
      flags[option] = true
    } else if (eq !== -1) {
      flags[option] = arg.slice(eq + 1)
    } else {
      if (i + 1 >= argv.length) throw usageError(`--${option} needs a value`)
      flags[option] = argv[++i]
    }
  }
  const required = command.positionals.filter((p) => !p.endsWith('?'))
  if (positionals.length < required.length) throw usageError(`"${commandName}" needs ${required.slice(positionals.length).join(' ')}`)
  if (positionals.length > command.positionals.length) throw usageError(`unexpected argument "${positionals[command.positionals.length]}" for "${commandName}"`)
  return { flags, positionals }
}

function packageVersion (): string {
  // This file runs from lib/tools/ (tests) or dist/tools/ (the bin): the package root is two up either way.
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }
  return pkg.version
}

/** A channel name as given (slash optional), checked; returned without its slash. */
function channelArg (name: string): string {
  try {
    return checkName(name).slice(1)
  } catch (err) {
    throw usageError(`bad NAME ${JSON.stringify(name)}: ${(err as Error).message.replace(/^"name" /, '')}`)
  }
}

function prefixArg (prefix: unknown): string {
  if (prefix === undefined) return ''
  return String(prefix).replace(/^\//, '')
}

/**
 * Probes NAME for the commands that take one: the channel, or a CliError
 * with the right code (not found: 1; not a channel or wrong version: 3).
 */
function probeNamed (name: string): Probe {
  try {
    return probe(name)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new CliError(EXIT_FAILURE, `no channel named ${name}`)
    if (code === 'EACCES' || code === 'EPERM') throw new CliError(EXIT_FAILURE, `cannot read ${name}: permission denied`)
    throw new CliError(EXIT_FAILURE, `cannot read ${name}: ${(err as Error).message}`)
  }
}

function requireChannel (name: string, found: Probe): ChannelSnapshot {
  if (found.kind === 'channel') return found.channel
  throw new CliError(EXIT_NOT_A_CHANNEL, notAChannel(name, found))
}

function notAChannel (name: string, found: Exclude<Probe, { kind: 'channel' }>): string {
  switch (found.kind) {
    case 'unsupported': return `${name} is a shm-channel segment of protocol version ${found.version}, which this version (${L.VERSION_MAJOR}.${L.VERSION_MINOR}) cannot read`
    case 'invalid': return `${name} is not a valid shm-channel segment: ${found.reason.replace(/^invalid segment: /, '')}`
    default: return `${name} is not a shm-channel segment: ${found.reason}`
  }
}

// ---------------------------------------------------------------------------
// ls

function ls (args: ParsedArgs, io: CliIO): number {
  const listing = listChannels(prefixArg(args.flags.prefix))
  reportUnreadable(listing.unreadable, io)
  if (args.flags.json === true) {
    io.stdout.write(JSON.stringify(listing.channels, null, 2) + '\n')
    return EXIT_OK
  }
  const others = topicsAndFanIns(prefixArg(args.flags.prefix))
  if (listing.channels.length === 0) {
    io.stdout.write('no channels\n')
    writeTopicsAndFanIns(others, io)
    return EXIT_OK
  }
  io.stdout.write(table(
    ['NAME', 'SIZE', 'CAPACITY', 'USED', 'SENT', 'RECEIVED', 'PRODUCER', 'CONSUMER'],
    listing.channels.map((c) => [
      c.name,
      bytes(c.size),
      bytes(c.capacity),
      `${bytes(c.used)} (${c.usedPercent}%)`,
      String(c.messagesSent),
      String(c.messagesReceived),
      endSummary(c.producer),
      endSummary(c.consumer)
    ]),
    new Set([1, 2, 4, 5])
  ))
  writeTopicsAndFanIns(others, io)
  return EXIT_OK
}

/** Topics, fan-ins, listeners and events in SHM_DIR (lib/pubsub/inspect.ts, lib/fanin/inspect.ts, lib/rpc/inspect.ts, lib/event/inspect.ts); objects that cannot be read are left out. */
function topicsAndFanIns (prefix: string): Other[] {
  const found: Other[] = []
  const names = fs.readdirSync(SHM_DIR, { withFileTypes: true }).filter((e) => e.isFile() && e.name.startsWith(prefix)).map((e) => e.name).sort()
  for (const name of names) {
    const snapshot = inspectOther(name)
    if (snapshot !== undefined) found.push(snapshot)
  }
  return found
}

type Other = TopicSnapshot | FanInSnapshot | ListenerSnapshot | EventSnapshot

/** The topic, fan-in, listener or event under `name`, or undefined (not one, unreadable, or gone). */
function inspectOther (name: string): Other | undefined {
  let region: Region
  try {
    region = Region.open(`/${name.replace(/^\//, '')}`, { readOnly: true })
  } catch {
    return undefined
  }
  try {
    return inspectListener(name, region.buffer) ?? inspectTopic(name, region.buffer) ?? inspectFanIn(name, region.buffer) ?? inspectEvent(name, region.buffer)
  } catch {
    return undefined
  } finally {
    region.close()
  }
}

function writeTopicsAndFanIns (others: Other[], io: CliIO): void {
  for (const o of others) {
    if (o.kind === 'event') {
      io.stdout.write(summarizeEvent(o))
    } else if (o.kind === 'listener') {
      io.stdout.write(`listener ${o.name} (request/response, codec ${o.codec}): server ${endSummary(o.server)}, ${o.connecting} of ${o.slots} slots connecting, up to ${o.tableBits} connections\n`)
    } else if (o.kind === 'topic') {
      const subs = o.subscribers.map((s) => `${s.pid}:${s.status}:lag ${bytes(s.lag)}`).join(', ')
      io.stdout.write(`topic ${o.name} (${o.policy}): ${o.messagesPublished} published, publisher ${o.publisher.pid} ${o.publisher.status}; subscribers: ${subs === '' ? 'none' : subs}\n`)
    } else {
      const producers = o.producers.map((p) => `${p.pid}:${p.status}${p.claim === null ? '' : `:in flight ${p.claim.length} B`}`).join(', ')
      io.stdout.write(`fan-in ${o.name}: ${bytes(o.used)} used, ${o.messagesReceived} received, ${o.claimsSkipped} claims skipped, ${o.partialsDropped} partial messages dropped, consumer ${o.consumer.pid} ${o.consumer.status}; producers: ${producers === '' ? 'none' : producers}\n`)
    }
  }
}

function reportUnreadable (unreadable: Array<{ name: string, reason: string }>, io: CliIO): void {
  for (const { name, reason } of unreadable) io.stderr.write(`shm-channel: skipped ${name}: ${reason}\n`)
}

// ---------------------------------------------------------------------------
// stat

const DEFAULT_INTERVAL_MS = 1000
const MIN_INTERVAL_MS = 10

async function stat (args: ParsedArgs, io: CliIO): Promise<number> {
  const name = channelArg(args.positionals[0])
  let interval = DEFAULT_INTERVAL_MS
  if (args.flags.interval !== undefined) {
    if (args.flags.watch !== true) throw usageError('--interval goes with --watch')
    interval = Number(args.flags.interval)
    if (!Number.isInteger(interval) || interval < MIN_INTERVAL_MS) throw usageError(`--interval must be a whole number of milliseconds, at least ${MIN_INTERVAL_MS}; got ${JSON.stringify(args.flags.interval)}`)
  }
  const found = probeNamed(name)
  if (found.kind === 'foreign') {
    const other = inspectOther(name)
    if (other !== undefined) {
      io.stdout.write(args.flags.json === true
        ? JSON.stringify(other, null, 2) + '\n'
        : other.kind === 'topic' ? describeTopic(other) : other.kind === 'listener' ? describeListener(other) : other.kind === 'event' ? describeEvent(other) : describeFanIn(other))
      return EXIT_OK
    }
  }
  const first = requireChannel(name, found)
  if (args.flags.watch === true) return await watch(name, first, interval, args.flags.json === true, io)
  io.stdout.write(args.flags.json === true ? JSON.stringify(first, null, 2) + '\n' : describe(first))
  return EXIT_OK
}

function describe (c: ChannelSnapshot): string {
  const rows: Array<[string, string]> = [
    ['channel', `${c.name} (${path.join(SHM_DIR, c.name)}, ${c.size} bytes)`],
    ['protocol', `${c.version}, header ${c.headerSize} bytes, flags 0x${c.flags.toString(16)}`],
    ['capacity', `${c.capacity} bytes (${bytes(c.capacity)})`],
    ['used', `${c.used} bytes (${c.usedPercent}%)`],
    ['positions', `producer ${c.producerPosition}, consumer ${c.consumerPosition}`],
    ['sent', `${c.messagesSent} messages, ${c.bytesSent} bytes`],
    ['received', `${c.messagesReceived} messages, ${c.bytesReceived} bytes`],
    ['unread', `${Math.max(0, c.messagesSent - c.messagesReceived)} messages`],
    ['times full', String(c.timesFull)],
    ['wake-ups', `to the consumer ${c.wakeupsToConsumer}, to the producer ${c.wakeupsToProducer}`],
    ['parked', `consumer ${c.consumerParked ? 'yes' : 'no'}, producer ${c.producerParked ? 'yes' : 'no'}`],
    ['producer', endDetail(c.producer)],
    ['consumer', endDetail(c.consumer)],
    ['takeovers', takeovers(c)]
  ]
  const width = Math.max(...rows.map(([key]) => key.length))
  return rows.map(([key, value]) => `${key.padEnd(width)}  ${value}\n`).join('')
}

/** How often each end was taken over from a dead holder, when last, and what that redelivered. */
function takeovers (c: ChannelSnapshot): string {
  const one = (count: number, last: string | null): string => count === 0 ? '0' : `${count} (last ${last ?? 'unknown'})`
  return `producer ${one(c.producerTakeovers, c.lastProducerTakeover)}, consumer ${one(c.consumerTakeovers, c.lastConsumerTakeover)}; ${c.redelivered} messages redelivered`
}

interface Rates {
  messagesSentPerSecond: number
  bytesSentPerSecond: number
  messagesReceivedPerSecond: number
  bytesReceivedPerSecond: number
}

/**
 * Prints a sample every `interval` ms until SIGINT or `io.signal`. Each
 * sample re-opens the name, so a channel removed meanwhile is noticed, and a
 * new channel under the same name (counters going back) restarts the rates.
 */
async function watch (name: string, first: ChannelSnapshot, interval: number, json: boolean, io: CliIO): Promise<number> {
  const stop = new AbortController()
  const onSigint = (): void => { stop.abort() }
  process.on('SIGINT', onSigint)
  const signal = io.signal === undefined ? stop.signal : AbortSignal.any([stop.signal, io.signal])
  // Fixed widths, so rows line up without knowing the samples to come.
  const columns: Array<[string, number]> = [
    ['TIME', -8], ['SENT/S', 9], ['SENT MB/S', 9], ['RECV/S', 9], ['RECV MB/S', 9],
    ['USED', 17], ['FULL', 6], ['PRODUCER', -16], ['CONSUMER', -16]
  ]
  const line = (cells: string[]): string => cells
    .map((cell, i) => columns[i][1] < 0 ? cell.padEnd(-columns[i][1]) : cell.padStart(columns[i][1]))
    .join('  ').trimEnd() + '\n'
  try {
    if (!json) io.stdout.write(line(columns.map(([title]) => title)))
    let previous: { channel: ChannelSnapshot, at: number } | undefined
    let current = first
    for (;;) {
      const at = performance.now()
      const rates = previous === undefined ? null : ratesBetween(previous.channel, current, (at - previous.at) / 1000)
      if (json) {
        io.stdout.write(JSON.stringify({ time: new Date().toISOString(), ...current, rates }) + '\n')
      } else {
        const cells = [
          new Date().toTimeString().slice(0, 8),
          rates === null ? '-' : rate(rates.messagesSentPerSecond),
          rates === null ? '-' : megabytes(rates.bytesSentPerSecond),
          rates === null ? '-' : rate(rates.messagesReceivedPerSecond),
          rates === null ? '-' : megabytes(rates.bytesReceivedPerSecond),
          `${bytes(current.used)} ${current.usedPercent}%`,
          String(current.timesFull),
          endSummary(current.producer),
          endSummary(current.consumer)
        ]
        io.stdout.write(line(cells))
      }
      previous = { channel: current, at }
      try {
        await sleep(interval, undefined, { signal })
      } catch {
        return EXIT_OK // Ctrl-C or the caller's signal: the normal way out
      }
      current = requireChannel(name, probeNamed(name))
    }
  } finally {
    process.removeListener('SIGINT', onSigint)
  }
}

/** Rates from two samples; null when the counters went back (a new channel under the name). */
function ratesBetween (a: ChannelSnapshot, b: ChannelSnapshot, seconds: number): Rates | null {
  if (b.messagesSent < a.messagesSent || b.messagesReceived < a.messagesReceived || seconds <= 0) return null
  const perSecond = (delta: number): number => Math.round(delta / seconds * 10) / 10
  return {
    messagesSentPerSecond: perSecond(b.messagesSent - a.messagesSent),
    bytesSentPerSecond: perSecond(b.bytesSent - a.bytesSent),
    messagesReceivedPerSecond: perSecond(b.messagesReceived - a.messagesReceived),
    bytesReceivedPerSecond: perSecond(b.bytesReceived - a.bytesReceived)
  }
}

// ---------------------------------------------------------------------------
// rm

function rm (args: ParsedArgs, io: CliIO): number {
  const name = channelArg(args.positionals[0])
  const found = probeNamed(name)
  // A segment of another protocol version is still shm-channel's to remove.
  const ours = found.kind === 'channel' || found.kind === 'unsupported' || found.kind === 'invalid'
  if (!ours && args.flags.force !== true) {
    throw new CliError(EXIT_NOT_A_CHANNEL, `${notAChannel(name, found)}; not removed (--force removes it anyway)`)
  }
  if (found.kind === 'channel') {
    const { producer, consumer } = found.channel
    const live = [['producer', producer], ['consumer', consumer]] as const
    const holders = live.filter(([, end]) => end.status === 'alive' || end.status === 'claiming').map(([role, end]) => `${role} pid ${end.pid}`)
    if (holders.length > 0) {
      io.stderr.write(`shm-channel: warning: ${name} is in use (${holders.join(', ')}): what has it open keeps its mapping, and the next open of ${name} makes a new channel\n`)
    }
  }
  try {
    Region.unlink(name)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new CliError(EXIT_FAILURE, `no channel named ${name}`)
    if (code === 'EACCES' || code === 'EPERM') throw new CliError(EXIT_FAILURE, `cannot remove ${name}: permission denied`)
    throw err
  }
  io.stdout.write(`removed ${name}\n`)
  return EXIT_OK
}

// ---------------------------------------------------------------------------
// gc

function gc (args: ParsedArgs, io: CliIO): number {
  const dryRun = args.flags['dry-run'] === true
  const listing = listChannels(prefixArg(args.flags.prefix))
  reportUnreadable(listing.unreadable, io)
  const removed: ChannelSnapshot[] = []
  const failed: Array<{ name: string, error: string }> = []
  for (const channel of listing.channels) {
    if (!collectable(channel, ageOf(channel.name))) continue
    if (dryRun) {
      removed.push(channel)
      continue
    }
    try {
      if (removeIfStillCollectable(channel.name)) removed.push(channel)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      failed.push({ name: channel.name, error: code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (err as Error).message })
    }
  }
  const listeners = collectListeners(prefixArg(args.flags.prefix), dryRun, failed)
  if (args.flags.json === true) {
    io.stdout.write(JSON.stringify({ dryRun, removed, listeners, failed }, null, 2) + '\n')
  } else {
    const verb = dryRun ? 'would remove' : 'removed'
    for (const c of removed) {
      const unread = Math.max(0, c.messagesSent - c.messagesReceived)
      io.stdout.write(`${verb} ${c.name} (producer ${endSummary(c.producer)}, consumer ${endSummary(c.consumer)}${unread > 0 ? `, ${unread} unread message${unread === 1 ? '' : 's'}` : ''})\n`)
    }
    for (const l of listeners) {
      const channels = l.channels.length === 0 ? '' : ` and ${l.channels.length} connection channel${l.channels.length === 1 ? '' : 's'}`
      io.stdout.write(`${verb} listener ${l.name}${channels} (server ${endSummary(l.server)})\n`)
    }
    if (removed.length === 0 && listeners.length === 0) io.stdout.write(dryRun ? 'nothing to remove\n' : 'nothing removed\n')
  }
  for (const { name, error } of failed) io.stderr.write(`shm-channel: could not remove ${name}: ${error}\n`)
  return failed.length === 0 ? EXIT_OK : EXIT_FAILURE
}

/**
 * Listeners whose server is gone (dead or closed), with the channels of
 * their connections (some may be among the channels gc removed already): a
 * client still attached to one sees its server gone anyway.
 */
function collectListeners (prefix: string, dryRun: boolean, failed: Array<{ name: string, error: string }>): Array<ListenerSnapshot & { channels: string[] }> {
  const names = fs.readdirSync(SHM_DIR, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name)
  const collected: Array<ListenerSnapshot & { channels: string[] }> = []
  for (const name of names.filter((n) => n.startsWith(prefix)).sort()) {
    const found = inspectOther(name)
    if (found?.kind !== 'listener' || !listenerCollectable(found)) continue
    const channels = connectionChannels(name, names)
    if (!dryRun) {
      try {
        if (!removeListenerIfStillGone(name)) continue
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        failed.push({ name, error: code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (err as Error).message })
        continue
      }
      for (const channel of channels) {
        try {
          Region.unlink(channel)
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code
          if (code !== 'ENOENT') failed.push({ name: channel, error: code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (err as Error).message })
        }
      }
    }
    collected.push({ ...found, channels })
  }
  return collected
}

/**
 * Maps `name` again and unlinks it only if `stillCollectable` holds for what
 * it holds now and the name still refers to that same object: an end that
 * came alive since the listing, or an object re-created under the name
 * meanwhile, is left alone.
 */
function unlinkIfStill (name: string, stillCollectable: (buffer: SharedArrayBuffer) => boolean): boolean {
  let region: Region
  try {
    region = Region.open(name, { readOnly: true })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
  try {
    return stillCollectable(region.buffer) && region.unlinkIfSame()
  } finally {
    region.close()
  }
}

/** Unlinks listener `name` if its server is still gone. */
function removeListenerIfStillGone (name: string): boolean {
  return unlinkIfStill(name, (buffer) => {
    const again = inspectListener(name, buffer)
    return again !== undefined && listenerCollectable(again)
  })
}

/** Unlinks channel `name` if no end came alive since the listing. */
function removeIfStillCollectable (name: string): boolean {
  return unlinkIfStill(name, (buffer) => {
    const again = read(name, buffer)
    return again.kind === 'channel' && collectable(again.channel, ageOf(name))
  })
}

// ---------------------------------------------------------------------------
// Formatting

function endSummary (end: EndSnapshot): string {
  return end.pid === 0 ? end.status : `${end.pid} ${end.status}`
}

function endDetail (end: EndSnapshot): string {
  if (end.pid === 0) return end.status
  return `pid ${end.pid}, ${end.status} (state ${end.state}, start time ${end.startTime})`
}

/** Bytes in binary units: 512 B, 64 KiB, 1.5 MiB. */
function bytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = n
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  const text = unit === 0 || Number.isInteger(value) ? String(value) : value.toFixed(1)
  return `${text} ${units[unit]}`
}

function rate (perSecond: number): string {
  return perSecond >= 100 ? String(Math.round(perSecond)) : perSecond.toFixed(1)
}

/** Bytes per second as MB/s (10^6 bytes). */
function megabytes (bytesPerSecond: number): string {
  return (bytesPerSecond / 1e6).toFixed(2)
}

/** Left-aligned columns, or right-aligned ones in `numeric`. */
function table (header: string[], rows: string[][], numeric: Set<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)))
  const format = (cells: string[]): string => cells
    .map((cell, i) => numeric.has(i) ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))
    .join('  ').trimEnd() + '\n'
  return [header, ...rows].map(format).join('')
}

// ---- key-value stores (the reading is lib/kv/inspect.ts's) --------------------

function kvLs (args: ParsedArgs, io: CliIO): number {
  const stores = findStores(args.positionals[0] ?? '.')
  if (args.flags.json === true) io.stdout.write(JSON.stringify(stores) + '\n')
  else for (const s of stores) io.stdout.write(`${s.path}\t${bytes(s.size)}\n`)
  return EXIT_OK
}

function showValue (value: unknown): string {
  return Buffer.isBuffer(value) ? `hex:${value.toString('hex')}` : JSON.stringify(value) ?? String(value)
}

function kvGet (args: ParsedArgs, io: CliIO): number {
  const store = openForInspection(args.positionals[0], { allowForeignOwner: true })
  try {
    const entry = describeEntry(store, args.positionals[1])
    if (entry === undefined) throw new CliError(EXIT_FAILURE, `no key ${JSON.stringify(args.positionals[1])} in ${args.positionals[0]}`)
    if (args.flags.json === true) io.stdout.write(JSON.stringify(entry) + '\n')
    else io.stdout.write(entry.codec === 'custom' ? '(written with a custom codec)\n' : showValue(entry.value) + '\n')
    return EXIT_OK
  } finally {
    store.close()
  }
}

function kvDump (args: ParsedArgs, io: CliIO): number {
  const store = openForInspection(args.positionals[0], { allowForeignOwner: true })
  try {
    for (const entry of dump(store)) {
      if (args.flags.json === true) io.stdout.write(JSON.stringify(entry) + '\n')
      else io.stdout.write(`${entry.key}\t${entry.codec}\t${entry.codec === 'custom' ? '' : showValue(entry.value)}\n`)
    }
    return EXIT_OK
  } finally {
    store.close()
  }
}

function kvVerify (args: ParsedArgs, io: CliIO): number {
  const store = openForInspection(args.positionals[0], { allowForeignOwner: true })
  try {
    const result = verifyStore(store)
    if (args.flags.json === true) {
      io.stdout.write(JSON.stringify(result) + '\n')
    } else {
      io.stdout.write(`${result.records} records, ${result.keys} keys, ${bytes(result.live)} live of ${bytes(result.used)} used, file ${bytes(result.fileSize)}\n`)
      for (const d of result.damaged) io.stdout.write(`damaged: ${d.length} bytes at offset ${d.offset} (${d.reason})\n`)
    }
    return result.damaged.length === 0 ? EXIT_OK : EXIT_FAILURE
  } finally {
    store.close()
  }
}

function kvCompact (args: ParsedArgs, io: CliIO): number {
  const store = openForInspection(args.positionals[0])
  try {
    const before = store.fileSize
    store.compact()
    io.stdout.write(`${args.positionals[0]}: ${bytes(before)} -> ${bytes(store.fileSize)}\n`)
    return EXIT_OK
  } finally {
    store.close()
  }
}
