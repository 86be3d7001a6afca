/**
 * What the operating system's permission model gives a channel, and what
 * the library adds (docs/security.md is the threat model):
 *
 * - segments are created 0600 with O_CREAT|O_EXCL: a name someone else made
 *   first is never truncated, reinitialised or taken over;
 * - shared memory names cannot leave /dev/shm, and a symbolic link planted
 *   there is not followed;
 * - a process without permission gets EACCES, never a half-open channel;
 * - a channel or listener another user made is refused (ERR_FOREIGN_OWNER)
 *   unless allowForeignOwner, and a non-owner closing last leaves the name
 *   to its owner without an error.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'

import { Consumer, Producer, Region, connect } from '../lib/index'
import { forkAsUser, Peer } from './support/peers'
import { ChannelPeer, rejection, thrown } from './support/peers'
import { channelName, closeAtEnd, leavesNothingInDevShm, shmExists, unlinkIfPresent } from './support/shm'
import { RpcPeer } from './support/rpc-peer'

const shmFile = (name: string): string => path.join('/dev/shm', name.replace(/^\//, ''))
const isRoot = process.getuid?.() === 0

t.test('segments are created 0600, exclusively', async (t) => {
  t.test('a channel created by either end is mode 0600 and owned by its creator', async (t) => {
    for (const Open of [Producer, Consumer]) {
      const name = channelName()
      const end = Open.open(name)
      const st = fs.statSync(shmFile(name))
      t.equal(st.mode & 0o777, 0o600)
      t.equal(st.uid, process.getuid?.())
      end.close()
      unlinkIfPresent(name)
    }
  })

  t.test('Producer.open on a name whose live producer is another process neither truncates nor reinitialises it', async (t) => {
    const name = channelName()
    const owner = new ChannelPeer(t, 'rel-peer.ts')
    await owner.call('openProducer', name, { codec: 'utf8', capacity: 8192 })
    await owner.call('openConsumer', name, { codec: 'utf8' })
    const before = fs.readFileSync(shmFile(name))
    const inode = fs.statSync(shmFile(name)).ino
    t.equal(thrown(() => Producer.open(name, { capacity: 4096 })).code, 'ERR_END_TAKEN')
    t.equal(thrown(() => Consumer.open(name)).code, 'ERR_END_TAKEN')
    t.equal(fs.statSync(shmFile(name)).ino, inode, 'the same object under the name')
    t.same(fs.readFileSync(shmFile(name)), before, 'same size, same bytes')
    await owner.call('close')
    t.notOk(shmExists(name))
  })

  t.test('a name that is not a channel is refused, not overwritten', async (t) => {
    const name = channelName()
    const foreign = closeAtEnd(t, Region.create(name, 8192))
    Buffer.from(foreign.buffer).fill(0xab)
    t.equal(thrown(() => Producer.open(name)).code, 'ERR_INVALID_SEGMENT')
    t.ok(Buffer.from(foreign.buffer).every((b) => b === 0xab), 'untouched')
    t.equal(fs.statSync(shmFile(name)).size, 8192, 'not truncated')
    unlinkIfPresent(name)
  })
})

t.test('names cannot escape /dev/shm', async (t) => {
  for (const bad of ['../x', 'a/b', '/../etc/passwd', '..', '.', 'x\0y', '']) {
    t.test(JSON.stringify(bad), async (t) => {
      for (const open of [() => Producer.open(bad), () => Consumer.open(bad), () => Region.create(bad, 4096)]) {
        t.equal(thrown(open).code, 'ERR_INVALID_ARG_VALUE')
      }
    })
  }
  t.notOk(fs.existsSync('/dev/x'), 'nothing was made beside /dev/shm')
})

t.test('a symbolic link planted in /dev/shm under a channel name is not followed', async (t) => {
  const name = channelName()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shmch-sec-'))
  t.teardown(() => { fs.rmSync(dir, { recursive: true, force: true }) })
  const victim = path.join(dir, 'victim')
  fs.writeFileSync(victim, 'precious')
  fs.symlinkSync(victim, shmFile(name))
  t.teardown(() => { try { fs.unlinkSync(shmFile(name)) } catch {} })
  for (const open of [() => Producer.open(name), () => Consumer.open(name)]) {
    t.equal(thrown(open).code, 'ELOOP', 'shm_open opens with O_NOFOLLOW')
  }
  t.equal(fs.readFileSync(victim, 'utf8'), 'precious', 'the link\'s target is untouched')
  t.ok(fs.lstatSync(shmFile(name)).isSymbolicLink(), 'and the link left as it was')
  // File-backed regions refuse links unless asked (test/platform/region.test.ts has the details).
  t.throws(() => Region.openFile(shmFile(name)), { code: 'ELOOP' })
})

t.test('a process without permission gets EACCES and leaves no trace', { skip: isRoot ? false : 'needs root to run an opener as nobody' }, async (t) => {
  const name = channelName()
  const producer = closeAtEnd(t, Producer.open<string>(name, { codec: 'utf8' }))
  producer.trySend('mine')
  const before = fs.readFileSync(shmFile(name))
  const nobody = new Peer(t, 'rel-peer.ts', [], forkAsUser(65534, 65534))
  t.same(await nobody.call('tryOpen', 'consumer', name), { opened: false, code: 'EACCES', syscall: 'shm_open' }, 'Consumer.open as nobody')
  t.same(await nobody.call('tryOpen', 'producer', name), { opened: false, code: 'EACCES', syscall: 'shm_open' }, 'Producer.open as nobody')
  t.same(fs.readFileSync(shmFile(name)), before, 'the segment is untouched: no end taken, nothing reclaimed')
  const consumer = closeAtEnd(t, Consumer.open<string>(name, { codec: 'utf8' }))
  t.equal(consumer.tryReceive(), 'mine', 'and still works for its owner')

  t.test('a stale channel of root\'s (both ends dead) is not reclaimed by nobody: /dev/shm is sticky', async (t) => {
    const stale = channelName()
    const dead = new ChannelPeer(t, 'rel-peer.ts')
    await dead.call('openProducer', stale)
    await dead.call('openConsumer', stale)
    await dead.kill()
    t.same(await nobody.call('tryOpen', 'producer', stale), { opened: false, code: 'EACCES', syscall: 'shm_open' })
    t.ok(shmExists(stale), 'the name is still root\'s')
    unlinkIfPresent(stale)
  })

  t.test('a channel nobody creates is 0600 and nobody\'s', async (t) => {
    const own = channelName()
    const opened = await nobody.call('openProducer', own)
    t.ok(opened)
    const st = fs.statSync(shmFile(own))
    t.same({ uid: st.uid, mode: st.mode & 0o777 }, { uid: 65534, mode: 0o600 })
    await nobody.call('close')
    unlinkIfPresent(own)
  })
})

t.test('a segment another user owns is refused unless allowForeignOwner', { skip: isRoot ? false : 'needs root to run a creator as nobody' }, async (t) => {
  t.test('a channel nobody made first, open to all (0666): ERR_FOREIGN_OWNER and untouched; joined when allowed', async (t) => {
    const name = channelName()
    const nobody = new ChannelPeer(t, 'channel-peer.ts', [], forkAsUser(65534, 65534))
    await nobody.call('openProducer', name, { codec: 'utf8', mode: 0o666 })
    await nobody.call('send', ['from nobody'])
    t.equal(fs.statSync(shmFile(name)).uid, 65534)
    const before = fs.readFileSync(shmFile(name))
    const err = thrown(() => Consumer.open<string>(name, { codec: 'utf8' }))
    t.equal(err.code, 'ERR_FOREIGN_OWNER')
    t.match(err.message, /owned by user 65534/)
    t.equal(thrown(() => Producer.open(name, { codec: 'utf8' })).code, 'ERR_FOREIGN_OWNER', 'the producer end as well')
    t.same(fs.readFileSync(shmFile(name)), before, 'no end taken, nothing written')
    t.equal(thrown(() => Consumer.open(name, { allowForeignOwner: 'yes' as any })).code, 'ERR_INVALID_ARG_TYPE')
    const consumer = closeAtEnd(t, Consumer.open<string>(name, { codec: 'utf8', allowForeignOwner: true }))
    t.equal(consumer.receiveSync({ timeout: 10_000 }), 'from nobody', 'joined when allowed')
    await nobody.call('closeProducer')
    unlinkIfPresent(name)
  })

  t.test('the last end to close, if not the owner, leaves the name without an error; the owner\'s next open reclaims it', async (t) => {
    const name = channelName()
    const umask = process.umask(0)
    const producer = Producer.open<string>(name, { codec: 'utf8', mode: 0o666 })
    process.umask(umask)
    const nobody = new ChannelPeer(t, 'channel-peer.ts', [], forkAsUser(65534, 65534))
    await nobody.call('openConsumer', name, { codec: 'utf8', allowForeignOwner: true })
    producer.trySend('to nobody')
    t.same(await nobody.call('receive', 1), ['to nobody'])
    producer.close()
    t.equal(await nobody.call('closeConsumer'), true, 'close() succeeds')
    t.ok(shmExists(name), 'the name stays: only its owner may remove it')
    const again = closeAtEnd(t, Producer.open(name))
    t.equal(again.trySend('fresh'), true, 'a new channel under the name')
    again.close()
    unlinkIfPresent(name)
  })

  t.test('an rpc server running as nobody: a client is refused unless allowed, then talks to it', async (t) => {
    const name = channelName()
    const server = new RpcPeer(t, 'rpc-server.ts', [], forkAsUser(65534, 65534))
    await server.call('serve', name, { mode: 0o666, allowForeignOwner: true })
    t.equal((await rejection(connect(name, { timeout: 2000 }))).code, 'ERR_FOREIGN_OWNER')
    // The client makes the two channels; nobody must be able to open them read-write despite the umask.
    const umask = process.umask(0)
    const client = await connect(name, { timeout: 15_000, mode: 0o666, allowForeignOwner: true }).finally(() => process.umask(umask))
    t.same(await client.request({ op: 'echo', value: 'across users' }), 'across users')
    // /dev/shm is sticky: only the client (root) may remove the channels it made, so it closes last.
    await server.call('close')
    client.close()
  })
})

t.test('the limit of the model: a peer that shrinks the object kills its mappers with SIGBUS (docs/security.md)', async (t) => {
  const name = channelName()
  const victim = new ChannelPeer(t, 'rel-peer.ts')
  await victim.call('openConsumer', name, { codec: 'utf8' })
  const fd = fs.openSync(shmFile(name), 'r+')
  fs.ftruncateSync(fd, 0)
  fs.closeSync(fd)
  void victim.call('consumeAll', 1, { min: 8, max: 8 }, 1000).catch(() => {})
  t.same(await victim.exited, { code: null, signal: 'SIGBUS' }, 'no library can catch this: POSIX shared memory has no seals')
  unlinkIfPresent(name)
})

t.test('the mode option widens access only when asked', async (t) => {
  const name = channelName()
  const end = closeAtEnd(t, Producer.open(name, { mode: 0o660 }))
  const umask = process.umask()
  t.equal(fs.statSync(shmFile(name)).mode & 0o777, 0o660 & ~umask)
  end.close()
  unlinkIfPresent(name)
})

leavesNothingInDevShm(t)
