/**
 * What the `shm-channel kv-*` commands read (lib/tools/cli.ts formats it):
 * the store files in a directory, one store's keys and values decoded with
 * the codec that wrote each, verify and compact.
 */
import fs from 'node:fs'
import path from 'node:path'

import type { CodecName } from '../codecs'
import { STORE_MAGIC } from './layout'
import { Store, type Key, type VerifyResult } from './store'

export interface StoreFile {
  path: string
  /** Bytes of the file. */
  size: number
}

/** The files directly in `dir` that start with a store's magic. */
export function findStores (dir: string): StoreFile[] {
  const found: StoreFile[] = []
  const head = Buffer.alloc(4)
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isFile()) continue
    const file = path.join(dir, entry.name)
    let fd: number
    try {
      fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
    } catch {
      continue
    }
    try {
      if (fs.readSync(fd, head, 0, 4, 0) === 4 && head.readUInt32LE(0) === STORE_MAGIC) found.push({ path: file, size: fs.fstatSync(fd).size })
    } finally {
      fs.closeSync(fd)
    }
  }
  return found.sort((a, b) => a.path < b.path ? -1 : 1)
}

/** Opens an existing store to inspect it (ENOENT if there is none: inspecting never creates one). */
export function openForInspection (file: string, options: { allowForeignOwner?: boolean } = {}): Store {
  fs.accessSync(file)
  return Store.open(file, { openTimeout: 100, allowForeignOwner: options.allowForeignOwner })
}

export interface DumpedEntry {
  /** A string key, or a bytes key as `hex:<hex>`. */
  key: string
  codec: string
  /** The value decoded with the codec that wrote it; undefined for a custom codec (the inspector cannot know it). */
  value: unknown
}

/** A key and its value as the inspector shows them. */
export function describeEntry (store: Store, key: Key): DumpedEntry | undefined {
  const codec = store.codecOf(key)
  if (codec === undefined) return undefined
  const shown = typeof key === 'string' ? key : `hex:${Buffer.from(key).toString('hex')}`
  const value = codec === 'custom' ? undefined : store.get(key, codec as CodecName)
  return { key: shown, codec, value }
}

export function dump (store: Store): DumpedEntry[] {
  const out: DumpedEntry[] = []
  for (const key of store.keys()) {
    const entry = describeEntry(store, key)
    if (entry !== undefined) out.push(entry)
  }
  return out
}

export function verify (store: Store): VerifyResult & { fileSize: number } {
  return { ...store.verify(), fileSize: store.fileSize }
}
