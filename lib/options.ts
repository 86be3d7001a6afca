/**
 * Checks of option values that every capability takes. A bad value throws
 * at once, naming the option, with Node's own codes (lib/errors.ts).
 */
import { invalidType, outOfRange } from './errors'

/** Checks an integer option; `max` inclusive. */
export function checkInteger (name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidType(name, 'a number', value)
  if (!Number.isInteger(value) || value < min || value > max) {
    throw outOfRange(name, `an integer from ${min} to ${max}`, value)
  }
  return value
}

/** Checks a timeout in milliseconds: a non-negative number or Infinity. */
export function checkTimeout (name: string, value: unknown): number {
  if (value === undefined) return Infinity
  if (typeof value !== 'number') throw invalidType(name, 'a number of milliseconds', value)
  if (Number.isNaN(value) || value < 0) throw outOfRange(name, 'a non-negative number of milliseconds or Infinity', value)
  return value
}

/** Checks an optional boolean option. */
export function checkBoolean (name: string, value: unknown): boolean | undefined {
  if (value !== undefined && typeof value !== 'boolean') throw invalidType(name, 'a boolean', value)
  return value
}

/** Checks an optional AbortSignal option. */
export function checkSignal (name: string, value: unknown): AbortSignal | undefined {
  if (value !== undefined && !(value instanceof AbortSignal)) throw invalidType(name, 'an AbortSignal', value)
  return value
}
