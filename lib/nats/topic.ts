/**
 * Topics across hosts: a local publish/subscribe topic mirrored to a core
 * NATS subject, and a subject fed into a local topic. Core NATS is at most
 * once, as a topic under 'overwrite' is: a mirror that is not running, or a
 * NATS connection that is down, loses what is published meanwhile. For a
 * replayable record, bridge a channel into a stream instead (bridge.ts).
 *
 * A mirror stamps each message with an origin (host name and topic), and a
 * feed drops messages of its own topic's origin: mirroring topic T to
 * subject S and feeding S into T on the same host does not echo.
 */
import os from 'node:os'

import type { NatsConnection, Subscription } from '@nats-io/transport-node'
import { headers as natsHeaders } from '@nats-io/transport-node'

import { Publisher } from '../pubsub/publisher'
import { Subscriber } from '../pubsub/subscriber'
import type { TopicOptions } from '../pubsub/publisher'
import { checkName } from '../platform/region'
import { invalidType } from '../errors'

/** Header naming the host and topic a mirrored message comes from. */
export const ORIGIN_HEADER = 'Shm-Channel-Origin'

export interface TopicMirrorOptions {
  /** A connection from `connect()` of `@nats-io/transport-node`. */
  nats: NatsConnection
  /** The local topic. */
  topic: string
  /** The NATS subject. */
  subject: string
  /** Options of the topic end the mirror or feed opens (capacity, policy... when it creates the topic). Its codec is always 'bytes'. */
  topicOptions?: Omit<TopicOptions<Uint8Array>, 'codec'>
}

/** A running mirror or feed. */
export interface TopicLink {
  /** Messages moved since it started. */
  readonly forwarded: number
  /** Settles when it stops: resolves after close() (or when the topic's publisher closed, for a mirror); rejects with what stopped it otherwise. */
  readonly done: Promise<void>
  /** Stops it and closes its topic end. Idempotent. */
  close: () => Promise<void>
}

function originOf (topic: string): string {
  return `${os.hostname()}:${checkName(topic)}`
}

function check (options: TopicMirrorOptions): void {
  if (options === null || typeof options !== 'object') throw invalidType('options', 'an object', options)
  if (typeof options.nats?.publish !== 'function') throw invalidType('nats', 'a connection from @nats-io/transport-node', options.nats)
  checkName(options.topic)
  if (typeof options.subject !== 'string' || options.subject === '') throw invalidType('subject', 'a non-empty string', options.subject)
}

/**
 * Publishes every message of local topic `topic` on NATS subject `subject`,
 * as one more subscriber of the topic (under 'block', a NATS connection
 * that cannot keep up slows the local publisher, as any subscriber does).
 */
export function mirrorTopicToSubject (options: TopicMirrorOptions): TopicLink {
  check(options)
  const subscriber = Subscriber.open<Uint8Array>(options.topic, { ...options.topicOptions, codec: 'bytes' })
  const origin = originOf(options.topic)
  let forwarded = 0
  async function run (): Promise<void> {
    const h = natsHeaders()
    h.set(ORIGIN_HEADER, origin)
    for await (const message of subscriber) {
      options.nats.publish(options.subject, message, { headers: h })
      forwarded++
    }
  }
  const done = run().finally(() => { subscriber.close() })
  done.catch(() => {})
  return {
    get forwarded () { return forwarded },
    done,
    async close () {
      subscriber.close()
      await done.catch(() => {})
    }
  }
}

/**
 * Publishes every message of NATS subject `subject` into local topic
 * `topic`, holding the topic's publisher end. Messages wait in the NATS
 * subscription while the topic's publisher waits for a slow subscriber
 * (policy 'block').
 */
export function feedSubjectToTopic (options: TopicMirrorOptions): TopicLink {
  check(options)
  const publisher = Publisher.open<Uint8Array>(options.topic, { ...options.topicOptions, codec: 'bytes' })
  const own = originOf(options.topic)
  let subscription: Subscription
  try {
    subscription = options.nats.subscribe(options.subject)
  } catch (err) {
    publisher.close()
    throw err
  }
  let forwarded = 0
  async function run (): Promise<void> {
    for await (const m of subscription) {
      if (m.headers?.get(ORIGIN_HEADER) === own) continue
      await publisher.publish(m.data)
      forwarded++
    }
  }
  const done = run().finally(() => { publisher.close() })
  done.catch(() => {})
  return {
    get forwarded () { return forwarded },
    done,
    async close () {
      subscription.unsubscribe()
      await done.catch(() => {})
    }
  }
}
