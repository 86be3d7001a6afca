/**
 * Acknowledged publishing into a JetStream stream, a batch at a time, for
 * the to-stream bridge (lib/nats/bridge.ts).
 *
 * `js.publish` of @nats-io/jetstream is a NATS request per message: each
 * one makes a request object, an inbox token, a timer, two Error objects
 * (their stack traces are most of its cost) and a promise. A bridge only
 * needs to know when every message of a batch is stored, so it publishes
 * each message as a plain NATS publish whose reply subject is
 * `<inbox>.<sequence>` on one subscription of its own: one timer per batch,
 * no per-message promise. What JetStream answers to the reply subject is
 * the same publish acknowledgement `js.publish` reads (JSON `{stream, seq,
 * duplicate?}`, or `{error: {...}}`), or a NATS 503 status when no stream
 * listens on the subject.
 *
 * Its failures are NATS-side (no acknowledgement, a refusal, no stream): the
 * bridge publishes the batch again under the same ids, so they are plain
 * Errors that never leave the bridge.
 */
import type { NatsConnection, Msg, Subscription } from '@nats-io/transport-node'
import { createInbox, headers as natsHeaders } from '@nats-io/transport-node'

import { AbortError, ShmChannelError } from '../errors'

/** JetStream's deduplication header: a second message with an id the stream has seen within its duplicate window is dropped. */
const MSG_ID_HEADER = 'Nats-Msg-Id'
/** NATS's status for a request nobody listens to. */
const NO_RESPONDERS = 503
/** How long a batch may wait for its acknowledgements (js.publish's default per message). */
const ACK_TIMEOUT_MS = 5000

const decoder = new TextDecoder()

export class StreamPublisher {
  readonly #nats: NatsConnection
  readonly #subject: string
  readonly #inbox: string
  readonly #subscription: Subscription
  /** Sequence of the batch's first message; acknowledgements outside the batch are ignored (late ones of an earlier attempt). */
  #first = 0
  /** One flag per message of the batch: acknowledged. */
  #acked = new Uint8Array(0)
  #size = 0
  #missing = 0
  #settle: ((err?: Error) => void) | undefined

  constructor (nats: NatsConnection, subject: string) {
    this.#nats = nats
    this.#subject = subject
    this.#inbox = createInbox((nats as { options?: { inboxPrefix?: string } }).options?.inboxPrefix)
    this.#subscription = nats.subscribe(`${this.#inbox}.*`, { callback: (err, msg) => { this.#onReply(err, msg) } })
  }

  /**
   * Publishes `batch` with message ids `<idPrefix>-<first + i>`; resolves
   * once JetStream acknowledged every message (as stored or as a duplicate),
   * rejects at the first error reply, after ACK_TIMEOUT_MS, or when `signal`
   * aborts. One batch at a time.
   */
  async publish (batch: readonly Uint8Array[], first: number, idPrefix: string, signal?: AbortSignal): Promise<void> {
    if (this.#settle !== undefined) throw new ShmChannelError('ERR_BUSY', 'a batch is already being published')
    if (signal?.aborted === true) throw new AbortError({ cause: signal.reason })
    this.#first = first
    if (this.#acked.length < batch.length) this.#acked = new Uint8Array(batch.length)
    this.#acked.fill(0, 0, batch.length)
    this.#size = batch.length
    this.#missing = batch.length
    let settle: (err?: Error) => void = () => {}
    let done = false
    const settled = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#settle?.(new Error(`JetStream did not acknowledge ${this.#missing} of ${batch.length} messages within ${ACK_TIMEOUT_MS} ms`))
      }, ACK_TIMEOUT_MS)
      const onAbort = (): void => { this.#settle?.(new AbortError({ cause: signal?.reason })) }
      signal?.addEventListener('abort', onAbort, { once: true })
      settle = this.#settle = (err) => {
        if (done) return
        done = true
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        this.#settle = undefined
        if (err === undefined) resolve()
        else reject(err)
      }
    })
    const prefix = `${this.#inbox}.`
    try {
      for (let i = 0; i < batch.length; i++) {
        const sequence = first + i
        const h = natsHeaders()
        h.set(MSG_ID_HEADER, `${idPrefix}-${sequence}`)
        this.#nats.publish(this.#subject, batch[i], { reply: prefix + sequence, headers: h })
      }
    } catch (err) {
      // A connection closed or draining throws here: the batch fails like any other.
      settle(err as Error)
    }
    await settled
  }

  #onReply (err: Error | null, msg: Msg): void {
    const settle = this.#settle
    if (settle === undefined) return
    if (err !== null) { settle(err); return }
    const index = Number(msg.subject.slice(this.#inbox.length + 1)) - this.#first
    if (!(index >= 0 && index < this.#size) || this.#acked[index] !== 0) return
    if (msg.headers?.code === NO_RESPONDERS) {
      settle(new Error(`no stream listens on subject ${this.#subject}`))
      return
    }
    // Only a publish acknowledgement counts: `{"stream":...,"seq":...}`
    // without an error. An error reply, or any other status (empty body),
    // fails the batch, which then goes again.
    const body = decoder.decode(msg.data)
    if (!body.includes('"seq"') || body.includes('"error"')) {
      let description = body === '' ? `status ${String(msg.headers?.code ?? '?')} ${msg.headers?.description ?? ''}` : body
      try { description = (JSON.parse(body) as { error?: { description?: string } }).error?.description ?? description } catch {}
      settle(new Error(`JetStream did not store message ${index + this.#first}: ${description}`))
      return
    }
    this.#acked[index] = 1
    if (--this.#missing === 0) settle()
  }

  close (): void {
    this.#settle?.(new ShmChannelError('ERR_CHANNEL_CLOSED', 'the publisher is closed'))
    this.#subscription.unsubscribe()
  }
}
