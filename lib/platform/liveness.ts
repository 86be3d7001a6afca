/**
 * Whether a process still lives. A pid alone is not enough: pids are
 * reused, so a holder is named by its pid and its process start time
 * (/proc/<pid>/stat field 22), and a pid whose start time differs is a
 * different, newer process. The end slots of segments (lib/segment/ends.ts)
 * record both.
 */
import fs from 'node:fs'

/**
 * The stat line of a process's main thread. The same kernel values as
 * /proc/<pid>/stat, read where user-mode emulators leave them alone: qemu-user
 * fakes /proc/self/stat and /proc/<own pid>/stat for the program it runs
 * (another start time), but not the task directory.
 */
function statPath (pid: number): string {
  return `/proc/${pid}/task/${pid}/stat`
}

/** Start time of a process in clock ticks since boot; 0 where /proc is not available; -1 if no such process. */
export function processStartTime (pid: number): number {
  let stat: string
  try {
    stat = fs.readFileSync(statPath(pid), 'latin1')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return code === 'ENOENT' || code === 'ESRCH' ? -1 : 0
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const start = Number(rest[22 - 3])
  return Number.isFinite(start) ? start : 0
}

export const ownStartTime = processStartTime(process.pid)

/** True while a process with this pid exists (whatever its start time): for a holder whose start time is not written yet. */
export function isRunning (pid: number): boolean {
  return pid > 0 && pidAlive(pid) && !isZombie(pid)
}

function pidAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** True when the process with this pid and start time (0: unknown) is running. */
export function isAlive (pid: number, startTime: number): boolean {
  if (pid <= 0) return false
  if (!pidAlive(pid)) return false
  if (startTime === 0) return true
  const now = processStartTime(pid)
  if (now === -1) return false
  // A zombie keeps its /proc entry; it has exited all the same.
  return now === 0 || (now === startTime && !isZombie(pid))
}

function isZombie (pid: number): boolean {
  try {
    const stat = fs.readFileSync(statPath(pid), 'latin1')
    return stat.charAt(stat.lastIndexOf(')') + 2) === 'Z'
  } catch {
    return true
  }
}
