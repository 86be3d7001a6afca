// Raw results: every bench writes bench/results/<name>.json with the machine
// it ran on, its options and every sample summary, so docs/ can cite numbers
// that can be checked.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const resultsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'results')

/** What the numbers depend on: CPU, core count, memory, kernel, Node. */
export function machineInfo () {
  const cpus = os.cpus()
  return {
    node: process.version,
    v8: process.versions.v8,
    platform: process.platform,
    arch: process.arch,
    kernel: os.release(),
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    totalMemGiB: Math.round(os.totalmem() / 2 ** 30),
    loadavgAtStart: os.loadavg(),
    date: new Date().toISOString()
  }
}

/**
 * Writes `data` to bench/results/<name>.json, or <name>-<label>.json to keep
 * several runs side by side. The file is written under a
 * temporary name and renamed, so an interrupted run never leaves half a file
 * (bench/results/*.tmp is git-ignored). Returns the path.
 */
export function writeResults (name, data, label) {
  if (label !== undefined && !/^[\w.-]+$/.test(label)) throw new RangeError(`"--label" may hold only letters, digits, "_", "." and "-", got ${JSON.stringify(label)}`)
  fs.mkdirSync(resultsDir, { recursive: true })
  const file = path.join(resultsDir, label === undefined ? `${name}.json` : `${name}-${label}.json`)
  data = { ...data, loadavgAtEnd: os.loadavg() }
  const tmp = `${file}.${process.pid}.tmp`
  fs.writeFileSync(tmp, JSON.stringify(data, null, 2) + '\n')
  fs.renameSync(tmp, file)
  return file
}
