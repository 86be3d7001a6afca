/**
 * The public surface of shm-channel: what README.md documents, and nothing
 * else. Everything below lib/ that is not exported here is internal and may
 * change in any release.
 */
export { Producer } from './channel/producer'
export { Consumer } from './channel/consumer'
export { createChannelBuffer } from './channel/segment'
export { DEFAULT_CAPACITY, DEFAULT_MAX_MESSAGE_SIZE } from './channel/options'
export type { ChannelOptions, ConsumerOptions, WaitOptions, WaitStrategy } from './channel/options'
export { codecs } from './codecs'
export type { Codec, CodecName } from './codecs'
export { Region, MAX_REGION_SIZE } from './platform/region'
export type { RegionOptions, OpenOptions, FileOptions } from './platform/region'
export * as futex from './platform/futex'
export type { WaitResult, WaitAsyncOptions } from './platform/futex'
export { ShmChannelError, AbortError, RemoteError } from './errors'
export type { ErrorCode } from './errors'
export { Duplex } from './rpc/duplex'
export type { DuplexOptions } from './rpc/duplex'
export { serve, Server } from './rpc/server'
export type { ServeOptions, RequestContext, ClientInfo, Handler, ServerEvents } from './rpc/server'
export { connect, Client } from './rpc/client'
export type { ConnectOptions, RequestOptions, ClientEvents } from './rpc/client'
export type { ConnectionOptions } from './rpc/options'
export { Store } from './kv/store'
export type { Key, SetOptions, BatchOperation, WatchEvent, WatchOptions, Watch, VerifyResult } from './kv/store'
export type { StoreOptions } from './kv/options'
export type { Damage } from './kv/records'
