// One "host" of examples/nats-bridge: its own local channel and a bridge to
// or from stream ORDERS over its own nats-server.
//   node host.mjs producer|consumer URL ORDERS RUN_ID
import { connect } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'
import { Consumer, Producer } from 'shm-channel'
import { bridgeChannelToStream, bridgeStreamToChannel, removeBridgeState } from 'shm-channel/nats'

const [role, url, count, runId] = process.argv.slice(2)
const orders = Number(count)
const stream = `ORDERS_${runId}`
const nats = await connect({ servers: url })
// The stream is made by whichever host comes first; a cluster needs a moment to elect its JetStream leader.
const jsm = await jetstreamManager(nats, { checkAPI: false })
for (let attempt = 0; ; attempt++) {
  try {
    await jsm.streams.info(stream).catch(async () => await jsm.streams.add({ name: stream, subjects: [stream] }))
    break
  } catch (err) {
    if (attempt === 100) throw err
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

if (role === 'producer') {
  // Host A: the application sends into a local channel; the bridge carries it to the stream.
  const channel = `orders-a-${runId}`
  const producer = Producer.open(channel, { fresh: true })
  const bridge = await bridgeChannelToStream({ nats, channel, stream })
  for (let i = 1; i <= orders; i++) await producer.send({ id: i, item: 'widget', qty: 1 + (i % 5) })
  while (bridge.forwarded < orders) await new Promise((resolve) => setTimeout(resolve, 10))
  producer.close()
  await bridge.done
  removeBridgeState(channel) // the channel is done: its bridge's cursor goes too
  process.send({ type: 'done', sent: orders })
} else {
  // Host B: the bridge fills a local channel from the stream; the application reads it locally.
  const channel = `orders-b-${runId}`
  /** @type {Consumer<{ id: number, item: string, qty: number }>} */
  const consumer = Consumer.open(channel, { fresh: true })
  const bridge = await bridgeStreamToChannel({ nats, channel, stream })
  let received = 0
  let duplicates = 0
  let inOrder = true
  while (received < orders) {
    const order = await consumer.receive()
    if (order.id <= received) { duplicates++; continue }
    if (order.id !== received + 1) inOrder = false
    received = order.id
  }
  await bridge.close()
  consumer.close()
  removeBridgeState(channel)
  process.send({ type: 'done', received, inOrder, duplicates })
}
await nats.close()
