/**
 * Reuse of end slots in kinds with a table of them (a fan-in's producers, a
 * topic's subscribers): a slot whose holder closed it, or died holding it,
 * goes back to FREE so that a newcomer's claimEnd can take it.
 */
import { endDead, readEnd, releaseEnd, END_CLOSED, END_FREE, END_OPEN, END_STATE } from './ends'
import { word } from './words'

/**
 * Frees the slot at `endOffset` if it is closed, or open with its holder
 * dead, and `settled` (the kind's own check, e.g. nothing in flight) agrees.
 * `clear` resets the kind's own words of the slot. Of several processes
 * freeing one slot, the compare-and-swap of the state to FREE picks one; it
 * clears the slot (releaseEnd), storing the pid 0 last, which is what claimEnd
 * takes: a newcomer never gets a half-cleared slot. Returns true if this
 * call freed it.
 */
export function freeUsedUpEnd (h: Int32Array, endOffset: number, settled: () => boolean = () => true, clear: () => void = () => {}): boolean {
  const end = readEnd(h, endOffset)
  if (end.state !== END_CLOSED && !(end.state === END_OPEN && endDead(end))) return false
  if (!settled()) return false
  const base = word(endOffset)
  if (Atomics.compareExchange(h, base + word(END_STATE), end.state, END_FREE) !== end.state) return false
  clear()
  releaseEnd(h, endOffset)
  return true
}
