/**
 * Duplex: a two-way connection made of two channels, opened with one call
 * by name. The listening side consumes `NAME.up` and produces `NAME.down`;
 * the connecting side the reverse. Each channel keeps its own guarantees
 * (one producer, one consumer, order, backpressure, peer-death detection);
 * the duplex only pairs them.
 */
import type { Codec, CodecName } from '../codecs'
import { Region, checkName } from '../platform/region'
import { Consumer } from '../channel/consumer'
import type { ConsumerOptions, WaitOptions } from '../channel/options'
import { Producer } from '../channel/producer'

export interface DuplexOptions<Send = unknown, Receive = Send> extends Omit<ConsumerOptions<unknown>, 'codec'> {
  /** One codec for both directions: 'json' (default), 'structured', 'utf8', 'bytes', or your own. */
  codec?: Codec<Send | Receive> | CodecName
}

/** The names of the two channels of duplex `name`: `up` carries connector to listener, `down` the reverse. */
export function duplexChannelNames (name: string): { up: string, down: string } {
  return { up: `${name}.up`, down: `${name}.down` }
}

export class Duplex<Send = unknown, Receive = Send> implements AsyncIterable<Receive> {
  /** Where this side's messages go. */
  readonly producer: Producer<Send>
  /** Where the other side's messages arrive. */
  readonly consumer: Consumer<Receive>
  readonly name: string

  private constructor (name: string, producer: Producer<Send>, consumer: Consumer<Receive>) {
    this.name = name
    this.producer = producer
    this.consumer = consumer
  }

  /**
   * The listening side of duplex `name`: consumes `name.up`, produces
   * `name.down`. Either side may come first; each creates what is missing.
   */
  static listen<Send = unknown, Receive = Send> (name: string, options: DuplexOptions<Send, Receive> = {}): Duplex<Send, Receive> {
    const { up, down } = duplexChannelNames(checkName(name))
    return Duplex.#open<Send, Receive>(name, down, up, options)
  }

  /** The connecting side of duplex `name`: produces `name.up`, consumes `name.down`. */
  static connect<Send = unknown, Receive = Send> (name: string, options: DuplexOptions<Send, Receive> = {}): Duplex<Send, Receive> {
    const { up, down } = duplexChannelNames(checkName(name))
    return Duplex.#open<Send, Receive>(name, up, down, options)
  }

  static #open<Send, Receive> (name: string, out: string, into: string, options: DuplexOptions<Send, Receive>): Duplex<Send, Receive> {
    const consumer = Consumer.open<Receive>(into, options as ConsumerOptions<Receive>)
    let producer: Producer<Send>
    try {
      producer = Producer.open<Send>(out, options as ConsumerOptions<Send>)
    } catch (err) {
      consumer.close()
      throw err
    }
    return new Duplex(name, producer, consumer)
  }

  /**
   * Removes both channel names of duplex `name` (those missing are skipped).
   * For clean-up when the other side can no longer do its part: processes
   * that have the channels open keep them.
   */
  static unlink (name: string): void {
    const { up, down } = duplexChannelNames(checkName(name))
    for (const channel of [up, down]) {
      try {
        Region.unlink(channel)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
    }
  }

  /** `producer.send`: waits for room; see Producer. */
  async send (value: Send, options?: WaitOptions): Promise<void> {
    await this.producer.send(value, options)
  }

  /** `producer.trySend`: false when the ring is full. */
  trySend (value: Send): boolean {
    return this.producer.trySend(value)
  }

  /** `producer.sendSync`: blocks the thread while the ring is full. */
  sendSync (value: Send, options?: { timeout?: number }): void {
    this.producer.sendSync(value, options)
  }

  /** `consumer.receive`: the next message from the other side. */
  async receive (options?: WaitOptions): Promise<Receive> {
    return await this.consumer.receive(options)
  }

  /** `consumer.tryReceive`: a message if one is waiting. */
  tryReceive (): Receive | undefined {
    return this.consumer.tryReceive()
  }

  /** `consumer.receiveSync`: blocks the thread until a message comes. */
  receiveSync (options?: { timeout?: number }): Receive {
    return this.consumer.receiveSync(options)
  }

  /** Messages from the other side until it closes its sending channel. */
  [Symbol.asyncIterator] (): AsyncIterator<Receive> {
    return this.consumer[Symbol.asyncIterator]()
  }

  get closed (): boolean {
    return this.producer.closed && this.consumer.closed
  }

  /**
   * Closes both channels: the other side reads what was sent, then sees the
   * end; its sends fail with ERR_CHANNEL_CLOSED. Idempotent.
   */
  close (): void {
    this.producer.close()
    this.consumer.close()
  }

  /** `using duplex = Duplex.connect(...)`: close() at the end of the scope. */
  [Symbol.dispose] (): void {
    this.close()
  }
}
