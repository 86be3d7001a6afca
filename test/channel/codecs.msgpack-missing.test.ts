/**
 * The msgpack codec without msgpackr installed: asking for it, by name or
 * through `codecs.msgpack`, throws ERR_MISSING_DEPENDENCY that says what to
 * install; the other codecs are unaffected. (Its own file: this process
 * must not have loaded msgpackr before the module is hidden.)
 */
import Module from 'node:module'
import t from 'tap'

import { Producer, codecs, createChannelBuffer } from '../../lib/index'
import { thrown } from '../support/peers'

// Make msgpackr unresolvable in this process, as if it were not installed.
const loader = Module as unknown as { _resolveFilename: (request: string, ...rest: unknown[]) => string }
const resolve = loader._resolveFilename
loader._resolveFilename = function (request: string, ...rest: unknown[]): string {
  if (request === 'msgpackr') throw Object.assign(new Error(`Cannot find module '${request}'`), { code: 'MODULE_NOT_FOUND' })
  return resolve.call(this, request, ...rest)
}
t.teardown(() => { loader._resolveFilename = resolve })

t.test('opening an end with codec msgpack throws ERR_MISSING_DEPENDENCY naming msgpackr', async (t) => {
  const err = thrown(() => Producer.fromBuffer(createChannelBuffer(4096), { codec: 'msgpack' }))
  t.equal(err.code, 'ERR_MISSING_DEPENDENCY')
  t.match(err.message, /npm install msgpackr/)
  t.equal((err.cause as { code?: string }).code, 'MODULE_NOT_FOUND', 'the loader\'s error is the cause')
})

t.test('reading codecs.msgpack throws the same; the other codecs work', async (t) => {
  t.equal(thrown(() => codecs.msgpack).code, 'ERR_MISSING_DEPENDENCY')
  const producer = Producer.fromBuffer(createChannelBuffer(4096), { codec: 'json' })
  t.ok(producer.trySend({ ok: true }))
  producer.close()
})
