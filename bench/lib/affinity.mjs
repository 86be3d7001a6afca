// CPU placement of bench processes, through taskset(1) from util-linux. Where
// two processes run decides what a wake-up costs: on one CPU it is a context
// switch; across CPUs the sleeper's CPU may be idle and must be interrupted.
import { execFileSync } from 'node:child_process'

/** Expands a CPU list such as "0-2,5" into [0, 1, 2, 5]. */
function parseCpuList (text) {
  const cpus = []
  for (const part of text.trim().split(',')) {
    const [first, last = first] = part.split('-').map(Number)
    for (let cpu = first; cpu <= last; cpu++) cpus.push(cpu)
  }
  return cpus
}

/** CPUs `pid` may run on, or undefined when taskset is not available. */
export function allowedCpus (pid = process.pid) {
  try {
    const out = execFileSync('taskset', ['-c', '-p', String(pid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    return parseCpuList(out.slice(out.lastIndexOf(':') + 1))
  } catch {
    return undefined
  }
}

/** Restricts every thread of `pid` to `cpus`. */
export function pinProcess (cpus, pid = process.pid) {
  execFileSync('taskset', ['-a', '-c', '-p', cpus.join(','), String(pid)], { stdio: 'ignore' })
}

/**
 * The command and arguments that run `argv` restricted to `cpus`, for
 * child_process.spawn; the threads the program starts inherit the mask.
 * @param {number[]} cpus
 * @param {string[]} argv
 * @returns {[string, string[]]}
 */
export function pinnedCommand (cpus, argv) {
  return ['taskset', ['-c', cpus.join(','), ...argv]]
}
