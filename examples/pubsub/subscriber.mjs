// A subscriber process of examples/pubsub: joins the topic, says so, reads
// every tick until the publisher closes, and reports.
import { Subscriber } from 'shm-channel'

/** @type {Subscriber<{ symbol: string, seq: number, bid: number }>} */
const subscriber = Subscriber.open(process.argv[2])
process.send({ type: 'joined' })
let received = 0
let inOrder = true
for await (const tick of subscriber) {
  if (tick.seq !== received) inOrder = false
  received++
}
subscriber.close()
process.send({ type: 'done', received, inOrder }, () => process.disconnect())
