/** The public surface of shm-channel. */
export { Region, MAX_REGION_SIZE } from './region'
export type { RegionOptions, OpenOptions, FileOptions } from './region'
export * as futex from './futex'
export type { WaitResult, WaitAsyncOptions } from './futex'
export { ShmChannelError, AbortError } from './errors'
export type { ErrorCode } from './errors'
