/**
 * The public surface is what README.md documents: every runtime export of
 * the package root appears in the README's API section, and the internals
 * (the ring, segment helpers) are not exported.
 */
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'

import * as api from '../lib/index'

const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8')
const apiSection = readme.slice(readme.indexOf('## API'), readme.indexOf('## Inspecting channels'))

t.test('every runtime export is documented in the README\'s API section', async (t) => {
  const names = Object.keys(api).sort()
  t.same(names, [
    'AbortError', 'Client', 'Consumer', 'DEFAULT_CAPACITY', 'DEFAULT_MAX_MESSAGE_SIZE', 'Duplex', 'Event', 'FanInConsumer', 'FanInProducer', 'LappedError', 'MAX_REGION_SIZE', 'Producer', 'Publisher', 'Region',
    'RemoteError', 'Server', 'ShmChannelError', 'Store', 'Subscriber', 'codecs', 'connect', 'createChannelBuffer', 'futex', 'serve'
  ])
  for (const name of names) {
    t.ok(apiSection.includes(name), `${name} is in the API section`)
  }
})

t.test('internals are not exported', async (t) => {
  for (const name of ['RingProducer', 'RingConsumer', 'initSegment', 'checkSegment']) {
    t.notOk(name in api, name)
  }
  t.notOk('assertOpen' in api.Region.prototype, 'Region has no assertOpen')
})
