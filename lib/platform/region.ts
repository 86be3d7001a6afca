/**
 * Regions: shared memory objects (`shm_open`) and files, mapped `MAP_SHARED`
 * and handed out as real `SharedArrayBuffer`s. Any process that maps the same
 * name or path sees the same bytes.
 */
import fs from 'node:fs'

import { binding, type MappingHandle } from '../binding'
import { ShmChannelError, invalidType, invalidValue } from '../errors'
import { checkInteger } from '../options'
import { sleepSync } from './sleep'

const { O_RDONLY, O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants

/** Largest region: what V8 accepts as one SharedArrayBuffer on 64-bit hosts. */
export const MAX_REGION_SIZE = 2 ** 53 - 1
const NAME_MAX = 255
/** How long `open` waits for a creator that has made the name but not yet sized it. */
const SIZING_GRACE_MS = 1000

export interface RegionOptions {
  /** Permission bits for a region this call creates. Default `0o600`. */
  mode?: number
}

export interface OpenOptions {
  /** Map read-only. Writing through the buffer of a read-only region kills the process (SIGSEGV), as with any read-only mapping. */
  readOnly?: boolean
  /** Fail with `ERR_REGION_TOO_SMALL` if the object is smaller than this. */
  size?: number
}

export interface FileOptions {
  /**
   * `openFile`: follow a symbolic link at `path`. Default false: a link is
   * refused (`ELOOP`). `createFile` never creates through a link either way:
   * `O_EXCL` takes a link, even a dangling one, for an existing path (`EEXIST`).
   */
  followSymlinks?: boolean
}

/**
 * A mapped shared memory object or file.
 *
 * `close()` lets go of the shared object at once. A `SharedArrayBuffer` cannot
 * be detached, so views taken before `close()` stay usable but reach private,
 * zero-filled memory instead: they never crash the process and never touch
 * the shared object again. A region that is never closed is released when its
 * buffer is garbage-collected.
 */
export class Region {
  /** The mapping. Views of it see every other mapper's writes. */
  readonly buffer: SharedArrayBuffer
  /** Size in bytes. */
  readonly size: number
  /** The shared memory name (with its leading slash), for `shm_open` regions. */
  readonly name: string | undefined
  /** The file path, for file regions. */
  readonly path: string | undefined
  readonly readOnly: boolean
  /** User id owning the object, as when it was mapped. */
  readonly owner: number
  #handle: MappingHandle | undefined
  /** Device and inode of the object mapped, to tell it from a later object of the same name. */
  readonly #identity: string

  private constructor (buffer: SharedArrayBuffer, handle: MappingHandle, source: { name?: string, path?: string }, readOnly: boolean, fd: number) {
    const st = fs.fstatSync(fd)
    this.buffer = buffer
    this.size = buffer.byteLength
    this.name = source.name
    this.path = source.path
    this.readOnly = readOnly
    this.owner = st.uid
    this.#handle = handle
    this.#identity = `${st.dev}:${st.ino}`
  }

  /** Creates a new shared memory object; `EEXIST` if the name is taken. */
  static create (name: string, size: number, options: RegionOptions = {}): Region {
    const shmName = checkName(name)
    checkSize('size', size)
    const mode = checkMode(options.mode)
    const fd = binding.shmOpen(shmName, O_RDWR | O_CREAT | O_EXCL, mode)
    try {
      return Region.#sizeAndMap(fd, size, { name: shmName })
    } catch (err) {
      // Creation failed half way (ENOSPC, most likely): leave no name behind.
      try { binding.shmUnlink(shmName) } catch {}
      throw err
    } finally {
      fs.closeSync(fd)
    }
  }

  /** Opens an existing shared memory object at its full size; `ENOENT` if there is none. */
  static open (name: string, options: OpenOptions = {}): Region {
    const shmName = checkName(name)
    const readOnly = options.readOnly === true
    const wanted = options.size === undefined ? 1 : checkSize('size', options.size)
    const fd = binding.shmOpen(shmName, readOnly ? O_RDONLY : O_RDWR, 0)
    try {
      return Region.#mapExisting(fd, wanted, readOnly, { name: shmName })
    } finally {
      fs.closeSync(fd)
    }
  }

  /** Opens the object if it exists, else creates it with `size` bytes. */
  static openOrCreate (name: string, size: number, options: RegionOptions = {}): Region {
    const shmName = checkName(name)
    checkSize('size', size)
    for (;;) {
      try {
        return Region.create(shmName, size, options)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      try {
        return Region.open(shmName, { size })
      } catch (err) {
        // Unlinked between our two calls: try to create it again.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
    }
  }

  /** Creates a new file of `size` bytes and maps it; `EEXIST` if the path exists, a symbolic link included. */
  static createFile (path: string, size: number, options: RegionOptions & FileOptions = {}): Region {
    checkPath(path)
    checkSize('size', size)
    const mode = checkMode(options.mode)
    const flags = O_RDWR | O_CREAT | O_EXCL | (options.followSymlinks === true ? 0 : O_NOFOLLOW)
    const fd = fs.openSync(path, flags, mode)
    try {
      return Region.#sizeAndMap(fd, size, { path })
    } catch (err) {
      try { fs.unlinkSync(path) } catch {}
      throw err
    } finally {
      fs.closeSync(fd)
    }
  }

  /** Maps an existing file at its full size. */
  static openFile (path: string, options: OpenOptions & FileOptions = {}): Region {
    checkPath(path)
    const readOnly = options.readOnly === true
    const wanted = options.size === undefined ? 1 : checkSize('size', options.size)
    const flags = (readOnly ? O_RDONLY : O_RDWR) | (options.followSymlinks === true ? 0 : O_NOFOLLOW)
    const fd = fs.openSync(path, flags)
    try {
      return Region.#mapExisting(fd, wanted, readOnly, { path })
    } finally {
      fs.closeSync(fd)
    }
  }

  /** Removes a shared memory name. Processes that mapped it keep their mapping. */
  static unlink (name: string): void {
    binding.shmUnlink(checkName(name))
  }

  /**
   * Removes this region's name (or file), but only while the name still
   * refers to the object this region mapped: a newer object created under the
   * same name by someone else is left alone. Returns true if it removed it.
   */
  unlinkIfSame (): boolean {
    const target = this.name !== undefined ? shmPath(this.name) : this.path
    if (target === undefined) return false
    try {
      const st = fs.statSync(target)
      if (`${st.dev}:${st.ino}` !== this.#identity) return false
      if (this.name !== undefined) binding.shmUnlink(this.name)
      else fs.unlinkSync(target)
      return true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
      throw err
    }
  }

  /** True once `close()` has been called. */
  get closed (): boolean {
    return this.#handle === undefined
  }

  /** Releases the shared object now. Idempotent. */
  close (): void {
    const handle = this.#handle
    if (handle === undefined) return
    this.#handle = undefined
    binding.release(handle)
  }

  /** `using region = Region.open(...)`: close() at the end of the scope. */
  [Symbol.dispose] (): void {
    this.close()
  }

  static #sizeAndMap (fd: number, size: number, source: { name?: string, path?: string }): Region {
    const label = source.name ?? source.path ?? ''
    fs.ftruncateSync(fd, size)
    binding.allocate(fd, size, label)
    const [buffer, handle] = binding.map(fd, size, true, label)
    return new Region(buffer, handle, source, false, fd)
  }

  static #mapExisting (fd: number, wanted: number, readOnly: boolean, source: { name?: string, path?: string }): Region {
    const label = source.name ?? source.path ?? ''
    let size = fs.fstatSync(fd).size
    // A creator sizes its object right after making the name; an opener that
    // comes in between sees zero bytes for a moment. Never map a short object:
    // touching a page past its end is SIGBUS.
    const deadline = Date.now() + SIZING_GRACE_MS
    while (size === 0 && source.name !== undefined && Date.now() < deadline) {
      sleepSync(1)
      size = fs.fstatSync(fd).size
    }
    if (size < wanted) {
      throw new ShmChannelError('ERR_REGION_TOO_SMALL', `${label} is ${size} bytes, smaller than the ${wanted} asked for`)
    }
    if (size > MAX_REGION_SIZE) throw new ShmChannelError('ERR_INVALID_SEGMENT', `${label} is too large to map (${size} bytes)`)
    const [buffer, handle] = binding.map(fd, size, !readOnly, label)
    return new Region(buffer, handle, source, readOnly, fd)
  }
}

/**
 * Refuses a region another user owns unless `allowForeignOwner`: anyone who
 * can write to /dev/shm can make a name first, with a mode that lets us in,
 * and would then read what we send or feed what we receive (docs/security.md).
 */
export function checkOwner (region: Region, allowForeignOwner: boolean | undefined): void {
  checkOwnerOf(region.name ?? region.path ?? '', region.owner, allowForeignOwner)
}

/** checkOwner for an object known by its label (name or path) and owner uid, mapped or not. */
export function checkOwnerOf (label: string, owner: number, allowForeignOwner: boolean | undefined): void {
  if (allowForeignOwner === true) return
  const uid = process.geteuid?.()
  if (uid === undefined || owner === uid) return
  throw new ShmChannelError('ERR_FOREIGN_OWNER', `${label} is owned by user ${owner}, not by this process's user ${uid}; pass allowForeignOwner: true to join it`)
}

/** Where Linux shows a shared memory name in the file system. */
function shmPath (name: string): string {
  return '/dev/shm' + name
}

/**
 * POSIX shared memory names: one optional leading slash, then 1 to 255
 * characters with no slash or NUL, and not "." or "..". Returned with the slash.
 */
export function checkName (name: unknown): string {
  if (typeof name !== 'string') throw invalidType('name', 'a string', name)
  const bare = name.startsWith('/') ? name.slice(1) : name
  if (bare.length === 0) throw invalidValue('name', 'must not be empty')
  if (Buffer.byteLength(bare) > NAME_MAX) throw invalidValue('name', `must be at most ${NAME_MAX} bytes`)
  if (bare.includes('/')) throw invalidValue('name', `must not contain "/" after the first character, got ${JSON.stringify(name)}`)
  if (bare.includes('\0')) throw invalidValue('name', 'must not contain NUL')
  if (bare === '.' || bare === '..') throw invalidValue('name', `must not be ${JSON.stringify(bare)}`)
  return '/' + bare
}

function checkPath (path: unknown): void {
  if (typeof path !== 'string') throw invalidType('path', 'a string', path)
  if (path.length === 0) throw invalidValue('path', 'must not be empty')
}

function checkSize (name: string, size: unknown): number {
  return checkInteger(name, size, 1, MAX_REGION_SIZE)
}

function checkMode (mode: unknown): number {
  if (mode === undefined) return 0o600
  return checkInteger('mode', mode, 0, 0o777)
}
