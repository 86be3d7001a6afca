/**
 * Channel bridges: a local channel's messages into a JetStream stream, and
 * a stream's messages into a local channel, in order, each message once,
 * across a bridge process killed at any instant (docs/nats.md).
 *
 * Both directions keep their progress in a cursor beside the channel
 * (lib/nats/cursor.ts) and tie it to the channel's own durable state, the
 * ring position of the end they hold, read from the channel's header:
 *
 * - Out (channel -> stream): the bridge is the channel's consumer. It reads
 *   a batch without releasing it, writes {first sequence, consumer position,
 *   batch size} to the cursor, publishes the batch with message ids
 *   `<cursor identity>-<sequence>`, waits for every acknowledgement, then
 *   releases. A bridge that takes over after a crash is handed the
 *   unreleased messages again (the channel's takeover), and the cursor says
 *   which sequence the first of them has: if the consumer position is still
 *   the one written, the batch was never released and goes out again under
 *   the same ids, which JetStream drops as duplicates; if it moved, the
 *   batch was released and numbering goes on after it.
 * - In (stream -> channel): the bridge is the channel's producer. Before it
 *   sends a stream message it writes {stream sequence, producer position,
 *   the last sequence sent before} to the cursor. After a crash, a producer
 *   position that moved means that send was published (one message is one
 *   atomic publish of the position); a position that did not means it was
 *   not. The bridge then reads the stream from the next sequence on with an
 *   ordered consumer: in stream order, no gaps, no acknowledgements to lose.
 *
 * Backpressure: out, the batch is released only once JetStream has
 * acknowledged it, so a slow or absent stream fills the ring and the local
 * producer's send waits; in, the next message is pulled from the stream
 * only once the local send returned, so a slow local consumer leaves
 * messages in the stream.
 */
import fs from 'node:fs'
import path from 'node:path'

import type { NatsConnection } from '@nats-io/transport-node'
import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream'

import { Consumer } from '../channel/consumer'
import { Producer } from '../channel/producer'
import * as L from '../channel/layout'
import { ShmChannelError, invalidType } from '../errors'
import { checkInteger } from '../options'
import { Region, checkName } from '../platform/region'
import { Cursor } from './cursor'
import { StreamPublisher } from './publisher'

export interface StreamTarget {
  /** A connection from `connect()` of `@nats-io/transport-node`. */
  nats: NatsConnection
  /** JetStream stream name. Created (file storage, `subject` only) when it does not exist. */
  stream: string
  /** Subject the messages travel on. Default: the stream name. */
  subject?: string
  /** Replicas of the stream if the bridge creates it (a cluster keeps it through the loss of a server with 3). Default 1. */
  replicas?: number
}

export interface ChannelToStreamOptions extends StreamTarget {
  /** Local channel whose consumer end the bridge holds. */
  channel: string
  /** Ring size if the bridge creates the channel. Default the channel's default (1 MiB). */
  capacity?: number
  /** Largest batch published before waiting for its acknowledgements. Default 256. */
  batch?: number
}

export interface StreamToChannelOptions extends StreamTarget {
  /** Local channel whose producer end the bridge holds. */
  channel: string
  /** Ring size if the bridge creates the channel. Default the channel's default (1 MiB). */
  capacity?: number
  /** Messages fetched from the stream ahead of the local sends. Default 256. */
  window?: number
}

/** A running bridge. */
export interface Bridge {
  /** Messages moved by this bridge since it started. */
  readonly forwarded: number
  /**
   * Settles when the bridge stops: resolves after close(), or (channel to
   * stream) once the local producer closed and every message went out;
   * rejects with what stopped it otherwise.
   */
  readonly done: Promise<void>
  /** Stops the bridge and closes its channel end. Idempotent. */
  close: () => Promise<void>
}

const RETRY_MS = 250

/** Creates `stream` on `subject` unless a stream of that name exists. */
export async function ensureStream (jsm: JetStreamManager, stream: string, subject: string, replicas = 1): Promise<void> {
  try {
    await jsm.streams.info(stream)
  } catch (err) {
    if ((err as { code?: unknown }).code !== 404 && !/not found/i.test(String(err))) throw err
    try {
      await jsm.streams.add({ name: stream, subjects: [subject], num_replicas: replicas })
    } catch (addErr) {
      // Another bridge made it between our two calls.
      if (!/already in use|exists/i.test(String(addErr))) throw addErr
    }
  }
}

/**
 * Removes the cursors bridges keep beside `channel` (both directions). For a
 * channel taken out of service: a bridge started afterwards numbers its
 * messages afresh (to-stream) or reads the stream from its start
 * (from-stream). Never while a bridge of the channel runs.
 */
export function removeBridgeState (channel: string): void {
  const bare = checkName(channel).slice(1)
  Cursor.remove(`${bare}.nats-out`)
  Cursor.remove(`${bare}.nats-in`)
}

function inodeOf (channel: string): number {
  return fs.statSync(path.join('/dev/shm', checkName(channel).slice(1))).ino
}

/** The channel's header words, through a mapping of our own (the ends keep theirs private). */
function headerOf (channel: string): { region: Region, words: Int32Array } {
  const region = Region.open(channel)
  return { region, words: new Int32Array(region.buffer, 0, L.HEADER_SIZE / 4) }
}

const CONSUMER_POSITION = L.word(L.CONSUMER_POSITION_OFFSET)
const PRODUCER_POSITION = L.word(L.PRODUCER_POSITION_OFFSET)

function checkTarget (options: StreamTarget & { channel: string }): string {
  if (options === null || typeof options !== 'object') throw invalidType('options', 'an object', options)
  if (typeof options.nats?.publish !== 'function') throw invalidType('nats', 'a connection from @nats-io/transport-node', options.nats)
  checkName(options.channel)
  if (typeof options.stream !== 'string' || options.stream === '') throw invalidType('stream', 'a non-empty string', options.stream)
  const subject = options.subject ?? options.stream
  if (typeof subject !== 'string' || subject === '') throw invalidType('subject', 'a non-empty string', subject)
  return subject
}

/** Opens what a bridge holds beside its channel end; closes the end if that fails. */
function openBeside (channel: string, end: { close: () => void }, suffix: string): { header: { region: Region, words: Int32Array }, cursor: Cursor, inode: number } {
  try {
    const header = headerOf(channel)
    try {
      return { header, cursor: Cursor.open(`${checkName(channel).slice(1)}.${suffix}`), inode: inodeOf(channel) }
    } catch (err) {
      header.region.close()
      throw err
    }
  } catch (err) {
    end.close()
    throw err
  }
}

async function sleep (ms: number, signal: AbortSignal): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
    function done (): void { clearTimeout(timer); signal.removeEventListener('abort', done); resolve() }
  })
}

/**
 * Moves the messages of local channel `channel` into JetStream stream
 * `stream`, in order, each once. The bridge holds the channel's consumer
 * end (taking it over from a dead bridge).
 */
export async function bridgeChannelToStream (options: ChannelToStreamOptions): Promise<Bridge> {
  const subject = checkTarget(options)
  const batchSize = checkInteger('batch', options.batch ?? 256, 1, 1 << 20)
  await ensureStream(await jetstreamManager(options.nats, { checkAPI: false }), options.stream, subject, checkInteger('replicas', options.replicas ?? 1, 1, 5))
  const consumer = Consumer.open(options.channel, { codec: 'bytes', capacity: options.capacity, maxMessageSize: Infinity })
  const { header, cursor, inode } = openBeside(options.channel, consumer, 'nats-out')
  const stopper = new AbortController()
  let forwarded = 0

  // Where numbering resumes (see the top of this file).
  let next = 1
  const state = cursor.read()
  if (state !== undefined) {
    const unreleasedBatch = state.inode === inode && Atomics.load(header.words, CONSUMER_POSITION) >>> 0 === state.position
    next = unreleasedBatch ? state.sequence : state.sequence + state.pending
  }

  const publisher = new StreamPublisher(options.nats, subject)

  async function publishBatch (batch: Buffer[], first: number): Promise<void> {
    for (;;) {
      try {
        await publisher.publish(batch, first, cursor.identity, stopper.signal)
        return
      } catch (err) {
        if (stopper.signal.aborted) throw err
      }
      // Not acknowledged (server gone, no leader yet, timeout): the same ids again; JetStream drops what it already has.
      await sleep(RETRY_MS, stopper.signal)
    }
  }

  async function run (): Promise<void> {
    const batch: Buffer[] = []
    while (!stopper.signal.aborted) {
      if (!await consumer.readable({ signal: stopper.signal })) return
      batch.length = 0
      try {
        for (let m = consumer.read(); m !== undefined; m = batch.length < batchSize ? consumer.read() : undefined) batch.push(m)
      } catch (err) {
        if ((err as ShmChannelError).code !== 'ERR_CHANNEL_CLOSED' || batch.length === 0) throw err
      }
      if (batch.length === 0) continue
      // Written before anything goes out: the ids the batch gets are fixed from here on.
      cursor.write(next, Atomics.load(header.words, CONSUMER_POSITION) >>> 0, batch.length, inode)
      await publishBatch(batch, next)
      consumer.release()
      next += batch.length
      forwarded += batch.length
    }
  }

  return start(run, stopper, () => forwarded, () => {
    publisher.close()
    consumer.close()
    header.region.close()
    cursor.close()
  })
}

/**
 * Moves the messages of JetStream stream `stream` (those on `subject`) into
 * local channel `channel`, in order, each once. The bridge holds the
 * channel's producer end (taking it over from a dead bridge). Every message
 * must fit in one record of the ring (a quarter of its capacity):
 * ERR_MESSAGE_TOO_LARGE stops the bridge otherwise.
 */
export async function bridgeStreamToChannel (options: StreamToChannelOptions): Promise<Bridge> {
  const subject = checkTarget(options)
  const window = checkInteger('window', options.window ?? 256, 1, 1 << 20)
  const js: JetStreamClient = jetstream(options.nats)
  const jsm = await jetstreamManager(options.nats, { checkAPI: false })
  await ensureStream(jsm, options.stream, subject, checkInteger('replicas', options.replicas ?? 1, 1, 5))
  const producer = Producer.open(options.channel, { codec: 'bytes', capacity: options.capacity })
  const { header, cursor, inode } = openBeside(options.channel, producer, 'nats-in')
  const maxPayload = L.maxRecordPayload(producer.capacity)
  const stopper = new AbortController()
  let forwarded = 0

  // The last stream sequence in the channel (see the top of this file).
  let delivered = 0
  const state = cursor.read()
  if (state !== undefined) {
    const published = state.inode !== inode || Atomics.load(header.words, PRODUCER_POSITION) >>> 0 !== state.position
    delivered = published ? state.sequence : state.base
  }

  async function run (): Promise<void> {
    while (!stopper.signal.aborted) {
      try {
        await deliver()
      } catch (err) {
        // A local failure stops the bridge; a NATS one (server gone, stream leader moving) is retried from the cursor.
        if (err instanceof ShmChannelError || stopper.signal.aborted) throw err
      }
      if (!stopper.signal.aborted) await sleep(RETRY_MS, stopper.signal)
    }
  }

  async function deliver (): Promise<void> {
    const consumer = await js.consumers.get(options.stream, delivered === 0
      ? { filter_subjects: subject, deliver_policy: DeliverPolicy.All }
      : { filter_subjects: subject, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: delivered + 1 })
    // Pulls that expire after 5 s (heartbeats every 2.5 s): a server killed under the
    // consumer is noticed in seconds, not the default 30.
    const messages = await consumer.consume({ max_messages: window, expires: 5000 })
    const stop = (): void => { void messages.close() }
    stopper.signal.addEventListener('abort', stop, { once: true })
    // Two heartbeats missed, or no message for 15 s while the stream holds
    // messages past the last one delivered (after its leader moved, a
    // consumer can be left answering pulls with nothing): start again from
    // the cursor on a fresh consumer. The watchdog compares `delivered`
    // between its ticks: no clock read per message.
    void (async () => {
      for await (const s of messages.status()) if (s.type === 'heartbeats_missed' && s.count >= 2) stop()
    })().catch(() => {})
    let seen = delivered
    let quietTicks = 0
    const watchdog = setInterval(() => {
      if (delivered !== seen) { seen = delivered; quietTicks = 0; return }
      if (++quietTicks < 3) return
      quietTicks = 0
      jsm.streams.info(options.stream).then((info) => { if (info.state.last_seq > delivered) stop() }, () => {})
    }, 5000)
    watchdog.unref()
    const sendOptions = { signal: stopper.signal }
    try {
      for await (const m of messages) {
        const sequence = m.seq
        if (sequence <= delivered) continue
        const data = m.data
        if (data.length > maxPayload) {
          throw new ShmChannelError('ERR_MESSAGE_TOO_LARGE', `stream message ${sequence} has ${data.length} bytes; a bridge into a ring of ${producer.capacity} bytes takes at most ${maxPayload} (a quarter of the ring)`)
        }
        cursor.write(sequence, Atomics.load(header.words, PRODUCER_POSITION) >>> 0, 1, inode, delivered)
        // An awaited send: sends of one socket read are published to the
        // consumer together (lib/channel/producer.ts, deferred publish).
        await producer.send(data, sendOptions)
        delivered = sequence
        forwarded++
      }
    } finally {
      clearInterval(watchdog)
      stopper.signal.removeEventListener('abort', stop)
    }
  }

  return start(run, stopper, () => forwarded, () => {
    producer.close()
    header.region.close()
    cursor.close()
  })
}

/** Runs a bridge's loop; close() stops it and releases what it holds once the loop is out. */
function start (run: () => Promise<void>, stopper: AbortController, count: () => number, release: () => void): Bridge {
  let released = false
  const releaseOnce = (): void => { if (!released) { released = true; release() } }
  const done = run().then(releaseOnce, (err) => {
    releaseOnce()
    if (stopper.signal.aborted) return
    throw err
  })
  // The caller may not watch `done`; its rejection still reaches whoever awaits it.
  done.catch(() => {})
  return {
    get forwarded () { return count() },
    done,
    async close () {
      stopper.abort()
      await done.catch(() => {})
    }
  }
}
