// The C reference (bench/c/ref.c): compiled with the system `cc -O2` into a
// temporary directory; it forks itself and prints one JSON line.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const source = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'c', 'ref.c')

/** Compiles ref.c; returns { binary, dir } or { error } when there is no compiler or it fails. */
export function compile () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shm-channel-compare-c-'))
  const binary = path.join(dir, 'ref')
  try {
    execFileSync(process.env.CC ?? 'cc', ['-O2', '-o', binary, source], { stdio: ['ignore', 'ignore', 'pipe'] })
    return { binary, dir }
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true })
    return { error: err.code === 'ENOENT' ? 'no C compiler (cc) found' : `cc failed: ${String(err.stderr ?? err.message).trim().split('\n')[0]}` }
  }
}

export async function a (spec) {
  const args = spec.kind === 'tput'
    ? ['tput', String(spec.size), String(spec.seconds)]
    : ['rtt', spec.variant, String(spec.size), String(spec.trips), String(spec.warmup)]
  const out = execFileSync(spec.binary, args, { encoding: 'utf8', timeout: 120_000 })
  const r = JSON.parse(out)
  if (spec.kind === 'tput') {
    return { ...r, msgPerSec: r.measured / r.seconds, mbPerSec: r.measured * spec.size / r.seconds / 1e6 }
  }
  return { n: r.n, bad: r.bad, summary: { p50: r.p50, p99: r.p99, p999: r.p999, max: r.max } }
}
