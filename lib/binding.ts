/**
 * The one place the native addon is loaded: the source build in `build/` if
 * there is one, else the prebuild from `prebuilds/` matching this platform,
 * architecture, libc and Node ABI. When none fits, loading throws one
 * ShmChannelError ('ERR_UNSUPPORTED') that says what was looked for, what
 * ships, and how to build from source.
 * Everything the addon exports is typed here and nowhere else.
 */
import fs from 'node:fs'
import path from 'node:path'

import { ShmChannelError } from './errors'

/** Opaque handle of one mapping, for `release`. */
export interface MappingHandle { readonly __mapping: unique symbol }

export interface NativeWaiter {
  /** Starts one wait; `onResult(id, code)` follows on the event loop. */
  wait (id: number, buffer: SharedArrayBuffer, byteOffset: number, expected: number, timeoutMs: number): void
  /** Ends wait `id` soon with WAIT_CANCELLED (or its result, if it already had one). */
  cancel (id: number): void
  /** Stops the waiter's thread; idempotent. */
  close (): void
}

export interface Binding {
  shmOpen (name: string, oflag: number, mode: number): number
  shmUnlink (name: string): void
  allocate (fd: number, size: number, label: string): void
  map (fd: number, size: number, writable: boolean, label: string): [SharedArrayBuffer, MappingHandle]
  release (handle: MappingHandle): void
  wait (buffer: SharedArrayBuffer, byteOffset: number, expected: number, timeoutMs: number): number
  wake (buffer: SharedArrayBuffer, byteOffset: number, count: number): number
  Waiter: new (onResult: (id: number, code: number) => void) => NativeWaiter
  /** Stores `value` at the word when this thread's Node environment ends (a worker's exit or terminate()), unless cancelled. */
  markOnThreadExit (buffer: SharedArrayBuffer, byteOffset: number, value: number): number
  cancelMarkOnThreadExit (id: number): void
  /** Results of wait and of the asynchronous waiter, as native/futex.h defines them. */
  waitCodes: { OK: number, NOT_EQUAL: number, TIMED_OUT: number, CANCELLED: number }
  /** Hash of the native sources this binary was built from (scripts/source-hash.js). */
  sourceHash: string
}

const nodeGypBuild = require('node-gyp-build') as { path: (dir: string) => string }

/** Directory holding binding.gyp, build/ and prebuilds/ (this file runs from lib/ or dist/). */
export const packageRoot = path.join(__dirname, '..')

/** What a build must match to load in this process. */
export interface NativeTarget {
  platform: string
  arch: string
  libc: string
  /** Node's module ABI (`process.versions.modules`). */
  abi: string
  runtime: string
}

/** The target node-gyp-build looks for, with the same overrides it honours. */
export function currentTarget (): NativeTarget {
  const platform = process.env.npm_config_platform ?? process.platform
  let libc = 'none'
  if (platform === 'linux') libc = process.env.LIBC ?? (fs.existsSync('/etc/alpine-release') ? 'musl' : 'glibc')
  return {
    platform,
    arch: process.env.npm_config_arch ?? process.arch,
    libc,
    abi: process.versions.modules,
    runtime: process.versions.electron !== undefined ? 'electron' : 'node'
  }
}

/** The prebuilds under `root`, one entry per platform, arch and libc: "linux-x64 glibc abi115 abi127". */
export function shippedTargets (root: string): string[] {
  const dir = path.join(root, 'prebuilds')
  const abis = new Map<string, string[]>()
  for (const tuple of fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []) {
    for (const file of fs.readdirSync(path.join(dir, tuple)).sort()) {
      // shm-channel.abi127.glibc.node: tags between the name and ".node"
      const tags = file.split('.').slice(1, -1)
      const abi = tags.find((tag) => /^abi\d+$/.test(tag))
      if (!file.endsWith('.node') || abi === undefined) continue
      const key = [tuple, ...tags.filter((tag) => tag !== abi)].join(' ')
      abis.set(key, [...(abis.get(key) ?? []), abi])
    }
  }
  return [...abis].map(([key, list]) => `${key} ${list.join(' ')}`)
}

/** The one error for "no native build fits this process". */
function noBuildFits (root: string, cause: unknown): ShmChannelError {
  const t = currentTarget()
  const shipped = shippedTargets(root)
  return new ShmChannelError('ERR_UNSUPPORTED',
    `shm-channel has no native build for ${t.platform}-${t.arch} ${t.libc} abi${t.abi} (${t.runtime} ${process.version}). ` +
    `Prebuilt: ${shipped.length === 0 ? 'none' : shipped.join('; ')} (README, "Supported platforms"). ` +
    'To build from source (needs python3, make and a C++20 compiler): npm rebuild shm-channel --build-from-source',
    { cause })
}

/** Loads the addon under `root` (a package directory), or throws noBuildFits. */
export function loadBinding (root: string): Binding {
  let file: string
  try {
    file = nodeGypBuild.path(root)
  } catch (err) {
    throw noBuildFits(root, err)
  }
  try {
    return require(file) as Binding
  } catch (err) {
    // A build that matched by name but does not load here (a binary for another
    // libc, a runtime that refuses V8-level addons) is the same case for the user.
    throw noBuildFits(root, err)
  }
}

export const binding = loadBinding(packageRoot)

/** Native wait codes, read from the addon; `CANCELLED` only from the asynchronous waiter. */
export const WAIT_OK = binding.waitCodes.OK
export const WAIT_NOT_EQUAL = binding.waitCodes.NOT_EQUAL
export const WAIT_TIMED_OUT = binding.waitCodes.TIMED_OUT
export const WAIT_CANCELLED = binding.waitCodes.CANCELLED
