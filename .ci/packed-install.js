'use strict'
// What a user gets: run inside a scratch project where the packed tarball was
// installed with `npm install --ignore-scripts`. The parent opens a channel's
// consumer, forks itself as the producer, and expects its messages, then the
// end. Prints one TAP-style count line for .ci/run and exits non-zero on failure.
const { fork } = require('node:child_process')
const assert = require('node:assert/strict')

const { Consumer, Producer } = require('shm-channel')

// The parent names the channel; its child (the producer) gets the name in argv.
const name = process.argv[3] ?? `shm-channel-packed-${process.pid}`
const messages = ['one', { two: 2 }, 'three']

async function parent () {
  const consumer = Consumer.open(name, { codec: 'json' })
  try {
    const child = fork(__filename, ['producer', name], { stdio: 'inherit' })
    const received = []
    for (let i = 0; i < messages.length; i++) received.push(await consumer.receive({ timeout: 30_000 }))
    assert.deepEqual(received, messages)
    const [code] = await new Promise((resolve) => child.once('exit', (...args) => resolve(args)))
    assert.equal(code, 0, 'producer exit code')
    const err = await consumer.receive({ timeout: 30_000 }).then(() => null, (e) => e)
    assert.equal(err && err.code, 'ERR_CHANNEL_CLOSED', 'the producer closed its end')
  } finally {
    consumer.close()
  }
}

async function producer () {
  const end = Producer.open(name, { codec: 'json' })
  for (const m of messages) await end.send(m, { timeout: 30_000 })
  end.close()
}

if (process.argv[2] === 'producer') {
  producer().catch((err) => { console.error(err); process.exit(1) })
} else {
  const label = `${process.version} ${process.arch}`
  parent().then(() => {
    console.log(`ok - packed install: a channel across two processes on ${label}`)
    console.log('# { total: 1, pass: 1, fail: 0 }')
  }, (err) => {
    console.error(err)
    console.log(`not ok - packed install: a channel across two processes on ${label}`)
    console.log('# { total: 1, pass: 0, fail: 1 }')
    process.exitCode = 1
  })
}
