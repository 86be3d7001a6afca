/**
 * Every error the library throws on its own account. Codes are stable and
 * meant for `err.code` checks; messages are for people and may change.
 * Failed system calls are not here: they surface as Node-style system errors
 * (`code` 'ENOENT', `errno`, `syscall`, `path`), exactly as `fs` reports them.
 */

export type ErrorCode =
  /** The channel or end was closed (by this process, or the peer closed a direction that needs it). */
  | 'ERR_CHANNEL_CLOSED'
  /** No longer thrown (nothing checks a closed region any more); kept so code matching on it still compiles. */
  | 'ERR_REGION_CLOSED'
  /** The other end's process died without closing. */
  | 'ERR_PEER_DEAD'
  /** A message is larger than the receiving end accepts. */
  | 'ERR_MESSAGE_TOO_LARGE'
  /** A wait ran past its timeout. */
  | 'ERR_TIMEOUT'
  /** A segment's header or records are not what this version of the protocol allows. */
  | 'ERR_INVALID_SEGMENT'
  /** An existing region is smaller than the size asked for. */
  | 'ERR_REGION_TOO_SMALL'
  /** The channel already has a live end of this kind. */
  | 'ERR_END_TAKEN'
  /** A fan-in or topic already has the maximum number of producers or subscribers its creator set. */
  | 'ERR_TOO_MANY_ENDS'
  /** A topic subscriber was overtaken by its publisher (policy 'overwrite'): the error's `lost` says how many messages it missed. */
  | 'ERR_LAPPED'
  /** An existing shared memory object belongs to another user (see the allowForeignOwner option). */
  | 'ERR_FOREIGN_OWNER'
  /** A message could not be decoded by the channel's codec. */
  | 'ERR_DECODE'
  /** A call that this end's state does not allow now (e.g. two receives at once). */
  | 'ERR_BUSY'
  /** This platform lacks what the call needs. */
  | 'ERR_UNSUPPORTED'
  /** An optional peer dependency that the call needs is not installed (the msgpack codec needs msgpackr). */
  | 'ERR_MISSING_DEPENDENCY'
  /**
   * A request's handler failed in the other process (lib/rpc/server.ts). The error
   * is a `RemoteError`: its message is the remote error's message, and
   * `remoteCode`/`remoteName` carry the remote error's `code` and `name`.
   */
  | 'ERR_REMOTE'
  /** The key-value store was closed by this process (lib/kv/store.ts). */
  | 'ERR_STORE_CLOSED'
  /** A typed get found a value written with another codec. */
  | 'ERR_VALUE_TYPE'
  /** A store file would pass the largest size its commit word can address (32 GiB). */
  | 'ERR_STORE_FULL'

export class ShmChannelError extends Error {
  readonly code: ErrorCode

  constructor (code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = 'ShmChannelError'
  }
}

/** Raised when an `AbortSignal` ends a wait; shaped like Node's own AbortError. */
export class AbortError extends Error {
  readonly code = 'ABORT_ERR'

  constructor (options?: { cause?: unknown }) {
    super('The operation was aborted', options)
    this.name = 'AbortError'
  }
}

/** `TypeError` naming the option, with Node's code for it. */
export function invalidType (name: string, expected: string, actual: unknown): TypeError {
  const err = new TypeError(`"${name}" must be ${expected}, got ${describe(actual)}`)
  return Object.assign(err, { code: 'ERR_INVALID_ARG_TYPE' })
}

/** `RangeError` naming the option, with Node's code for it. */
export function outOfRange (name: string, expected: string, actual: unknown): RangeError {
  const err = new RangeError(`"${name}" must be ${expected}, got ${describe(actual)}`)
  return Object.assign(err, { code: 'ERR_OUT_OF_RANGE' })
}

/** `TypeError` for a value of the right type but unacceptable content. */
export function invalidValue (name: string, reason: string): TypeError {
  const err = new TypeError(`"${name}" ${reason}`)
  return Object.assign(err, { code: 'ERR_INVALID_ARG_VALUE' })
}

/** `TypeError` for a function (a codec, say) that returned what the library cannot use. */
export function invalidReturn (what: string, expected: string, actual: unknown): TypeError {
  const err = new TypeError(`${what} must return ${expected}, got ${describe(actual)}`)
  return Object.assign(err, { code: 'ERR_INVALID_RETURN_VALUE' })
}

function describe (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value)
  if (value === null || value === undefined) return String(value)
  return typeof value === 'object' ? `an instance of ${value.constructor?.name ?? 'Object'}` : typeof value
}

/**
 * What a request's caller gets when the handler in the other process threw
 * or rejected: `code` is 'ERR_REMOTE', `message` the remote error's message,
 * `remoteCode` and `remoteName` the remote error's `code` (if it had one) and
 * `name`. The remote stack is not sent.
 */
export class RemoteError extends ShmChannelError {
  /** The `code` of the error thrown in the other process, if it had a string or number one. */
  readonly remoteCode: string | number | undefined
  /** The `name` of the error thrown in the other process ('Error', 'TypeError', ...). */
  readonly remoteName: string

  constructor (message: string, remote: { name?: string, code?: string | number }) {
    super('ERR_REMOTE', message)
    this.name = 'RemoteError'
    this.remoteName = remote.name ?? 'Error'
    this.remoteCode = remote.code
  }
}
