/**
 * AbortSignal plumbing for waits that two parties may end: the user (a
 * `signal` option) and the object waiting (closed while a wait is pending).
 */

/**
 * A signal that aborts when `closer` or `user` does, and a function that
 * detaches it from both once the wait is over. AbortSignal.any would do,
 * but in Node 20 each call leaves an entry on its source signals for as long
 * as they live (nodejs/node#55351), and `closer` lives as long as its owner:
 * a producer waiting for room once per send grew without bound.
 */
export function linkSignals (closer: AbortSignal, user: AbortSignal): { signal: AbortSignal, unlink: () => void } {
  const controller = new AbortController()
  const onCloser = (): void => { controller.abort(closer.reason) }
  const onUser = (): void => { controller.abort(user.reason) }
  if (closer.aborted || user.aborted) {
    controller.abort(closer.aborted ? closer.reason : user.reason)
  } else {
    closer.addEventListener('abort', onCloser, { once: true })
    user.addEventListener('abort', onUser, { once: true })
  }
  return {
    signal: controller.signal,
    unlink () {
      closer.removeEventListener('abort', onCloser)
      user.removeEventListener('abort', onUser)
    }
  }
}
