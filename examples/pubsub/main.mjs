// Publish/subscribe: one publisher, several subscriber processes, one ring
// written once. The publisher waits for its subscribers to join, publishes
// price ticks under the 'block' policy (nobody misses one), then closes;
// each subscriber's `for await` ends and it reports what it got.
//
//   node examples/pubsub/main.mjs [--subscribers N] [--ticks N]
import { fork } from 'node:child_process'
import { parseArgs } from 'node:util'
import { Publisher } from 'shm-channel'

const { values: args } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '3' },
    ticks: { type: 'string', default: '100000' }
  }
})
const subscribers = Number(args.subscribers)
const ticks = Number(args.ticks)

const topic = `prices-${process.pid}`
const publisher = Publisher.open(topic, { policy: 'block', maxSubscribers: subscribers })

const children = Array.from({ length: subscribers }, () => fork(new URL('./subscriber.mjs', import.meta.url), [topic]))
/** @type {Array<Promise<{ received: number, inOrder: boolean }>>} */
const results = children.map((child) => new Promise((resolve, reject) => {
  child.on('message', (/** @type {any} */ m) => { if (m.type === 'done') resolve(m) })
  child.once('exit', (code) => { if (code !== 0) reject(new Error(`subscriber exited with code ${code}`)) })
}))
await Promise.all(children.map((child) => new Promise((resolve) => child.once('message', resolve))))

const start = performance.now()
for (let i = 0; i < ticks; i++) {
  const tick = { symbol: 'ACME', seq: i, bid: 100 + (i % 100) / 100 }
  if (!publisher.tryPublish(tick)) await publisher.publish(tick)
}
publisher.close()
for (const [i, r] of (await Promise.all(results)).entries()) {
  console.log(`subscriber ${i}: ${r.received.toLocaleString()} ticks, in order: ${r.inOrder}`)
}
const seconds = (performance.now() - start) / 1000
console.log(`published ${ticks.toLocaleString()} ticks once to ${subscribers} subscribers: ${(ticks * subscribers / seconds / 1e6).toFixed(2)} M deliveries/s`)
