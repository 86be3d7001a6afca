// Command-line options shared by the benches.
import { parseArgs } from 'node:util'

/**
 * Parses process.argv with node:util parseArgs; `--help` prints `usage` and exits.
 * @param {string} usage
 * @param {import('node:util').ParseArgsConfig['options']} options
 * @returns {{ values: Record<string, any>, positionals: string[] }}
 */
export function parseOptions (usage, options) {
  const { values, positionals } = parseArgs({
    options: { ...options, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true
  })
  if (values.help) {
    console.log(usage)
    process.exit(0)
  }
  return { values, positionals }
}

const UNITS = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30 }

/** Parses a byte size such as "1G", "256M", "64k" or "1048576" (binary units). */
export function parseSize (text) {
  const match = /^(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?$/i.exec(String(text).trim())
  if (match === null) throw new RangeError(`"--size" must be a size such as 1G or 256M, got ${JSON.stringify(text)}`)
  const bytes = Math.round(Number(match[1]) * UNITS[match[2].toLowerCase()])
  if (bytes < 2 ** 20) throw new RangeError(`"--size" must be at least 1M, got ${JSON.stringify(text)}`)
  return bytes
}

/** Formats a byte count in binary units: 1 GiB, 256 MiB. */
export function formatSize (bytes) {
  if (bytes >= 2 ** 30 && bytes % 2 ** 30 === 0) return `${bytes / 2 ** 30} GiB`
  if (bytes >= 2 ** 20) return `${+(bytes / 2 ** 20).toFixed(1)} MiB`
  return `${bytes} B`
}
