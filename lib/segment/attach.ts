/**
 * Create-or-attach: how a segment of any kind (a channel, a listener, and
 * the kinds to come) is made under a name or joined, and how a stale one is
 * reclaimed. A kind brings its identity, how to write a fresh header, and
 * its policy for a segment that already exists; the protocol is here, once.
 *
 * Why no process ever trusts a half-made header, and no live segment is
 * ever taken away:
 *
 *   1. Creation is exclusive (`O_CREAT | O_EXCL`): of several processes
 *      racing for a name, one creates; the others get EEXIST and open.
 *   2. The creator writes every header field with plain stores (its own end
 *      too, when it takes one), then the magic with a sequentially
 *      consistent Atomics.store. An opener loads the magic with
 *      Atomics.load; once it sees the magic, it sees every field written
 *      before it. Its own end is therefore never free for another opener to
 *      take: the creator holds it before anyone can look.
 *   3. An opener that finds the magic still 0 polls for it (every
 *      millisecond, up to `openTimeout`). Finishing a header takes
 *      microseconds, so a magic still missing then means the creator died in
 *      between: the name is reclaimed, once; a second time is ERR_TIMEOUT.
 *   4. With the magic in, the identity must be this kind's (else
 *      ERR_INVALID_SEGMENT, and the object is left alone), and the kind's
 *      `join` decides: it took an end (joined), lost a race for one to
 *      another opener (look again), found the segment used up (stale), or
 *      throws (ERR_END_TAKEN: a live process holds what it needs).
 *   5. A stale segment is unlinked only while the name still refers to the
 *      object this process mapped (Region.unlinkIfSame compares device and
 *      inode): a newer segment someone made meanwhile is left alone.
 *      Processes that still map the stale one keep their mapping; they see
 *      their peer's end closed or dead, never the newcomer.
 */
import { ShmChannelError } from '../errors'
import { Region, checkOwner } from '../platform/region'
import { sleepSync } from '../platform/sleep'
import { checkIdentity, publishIdentity, writeIdentity, type SegmentIdentity } from './identity'

/** What `join` found in an existing, initialised segment. */
export type JoinVerdict = 'joined' | 'retry' | 'stale'

/** What opening a segment of a kind needs: its identity, and a check of the rest of its header. */
export interface SegmentShape extends SegmentIdentity {
  /** Checks the rest of an existing header once its identity passed; throws ERR_INVALID_SEGMENT. */
  check? (buffer: SharedArrayBuffer, label: string): void
}

/** What creating or joining one needs besides: a fresh header, and the kind's policy for one that exists. */
export interface SegmentKind extends SegmentShape {
  /**
   * Writes a fresh header in `buffer` (zero-filled), all but the identity
   * words, and takes the creator's end if it has one. Runs before the magic
   * is published: nobody else reads the segment yet.
   */
  init (buffer: SharedArrayBuffer): void
  /**
   * Decides what to do with an existing segment whose header is complete:
   * take an end ('joined'), look again after losing a race ('retry'), or
   * reclaim it ('stale'). Throws to refuse (ERR_END_TAKEN).
   */
  join (buffer: SharedArrayBuffer, label: string): JoinVerdict
}

export interface AttachOptions {
  /** Bytes of a segment this call creates. */
  size: number
  /** Permission bits of a segment this call creates. */
  mode?: number
  /** How long to wait for a creator to publish its magic, in milliseconds. */
  openTimeout: number
  /** Join a segment another user owns (see checkOwner). */
  allowForeignOwner?: boolean
}

/**
 * Opens the segment of `kind` under `name`, creating it if there is none or
 * if the one there is stale. Returns the region and whether this call made it.
 */
export function createOrAttach (name: string, kind: SegmentKind, options: AttachOptions): { region: Region, created: boolean } {
  for (let attempt = 0; ; attempt++) {
    let region: Region
    try {
      region = Region.create(name, options.size, { mode: options.mode })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      try {
        region = Region.open(name)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue // gone meanwhile: create again
        throw err
      }
      let verdict: JoinVerdict | 'unfinished'
      try {
        verdict = judge(region, kind, options)
      } catch (err) {
        region.close()
        throw err
      }
      if (verdict === 'joined') return { region, created: false }
      if (verdict === 'unfinished' && attempt > 0) {
        region.close()
        throw new ShmChannelError('ERR_TIMEOUT', `${kind.kind} ${name} was not initialised within ${options.openTimeout} ms`)
      }
      try {
        // EPERM here (another user's stale name in a sticky /dev/shm) is the
        // caller's to see: quietly going round would find the same name again.
        if (verdict !== 'retry') region.unlinkIfSame()
      } finally {
        region.close()
      }
      continue
    }
    try {
      const h = new Int32Array(region.buffer, 0, kind.headerSize / 4)
      writeIdentity(h, kind)
      kind.init(region.buffer)
      publishIdentity(h, kind)
      return { region, created: true }
    } catch (err) {
      region.unlinkIfSame()
      region.close()
      throw err
    }
  }
}

/** An existing segment: what `join` says of it, or 'unfinished' if its creator never published the magic. */
function judge (region: Region, kind: SegmentKind, options: AttachOptions): JoinVerdict | 'unfinished' {
  checkOwner(region, options.allowForeignOwner)
  if (!awaitIdentity(region.buffer, kind, options.openTimeout)) return 'unfinished'
  const label = region.name ?? ''
  kind.check?.(region.buffer, label)
  return kind.join(region.buffer, label)
}

/**
 * Polls until the creator's magic is in (true) or `timeout` ms pass (false).
 * Throws ERR_INVALID_SEGMENT as soon as the identity is not `kind`'s.
 */
export function awaitIdentity (buffer: SharedArrayBuffer, kind: SegmentIdentity, timeout: number): boolean {
  const deadline = performance.now() + timeout
  for (;;) {
    if (checkIdentity(buffer, kind)) return true
    if (performance.now() >= deadline) return false
    sleepSync(1)
  }
}

/**
 * Opens the segment of `kind` under `name` to use it without taking an end:
 * undefined when there is none, or its creator has not published the magic
 * yet (look again shortly). Throws ERR_INVALID_SEGMENT for another kind.
 */
export function openExisting (name: string, kind: SegmentShape, options: { allowForeignOwner?: boolean } = {}): Region | undefined {
  let region: Region
  try {
    region = Region.open(name)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  try {
    checkOwner(region, options.allowForeignOwner)
    if (!checkIdentity(region.buffer, kind)) {
      region.close()
      return undefined
    }
    kind.check?.(region.buffer, region.name ?? '')
    return region
  } catch (err) {
    region.close()
    throw err
  }
}

/**
 * Removes the segment of `kind` under `name` if `stale` says so of its
 * header: the clean-up a survivor does for a holder that cannot. A name that
 * is gone, unfinished or of another kind is left alone.
 */
export function reclaimIfStale (name: string, kind: SegmentShape, stale: (buffer: SharedArrayBuffer) => boolean): void {
  let region: Region | undefined
  try {
    region = openExisting(name, kind, { allowForeignOwner: true })
  } catch {
    return
  }
  if (region === undefined) return
  try {
    if (stale(region.buffer)) unlinkQuietly(region)
  } finally {
    region.close()
  }
}

/**
 * Removes the region's name if it still refers to the object mapped. In a
 * sticky /dev/shm another user's name is theirs to remove: EPERM and EACCES
 * are left to their next open, which reclaims it.
 */
export function unlinkQuietly (region: Region): void {
  try {
    region.unlinkIfSame()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'EPERM' && code !== 'EACCES') throw err
  }
}
