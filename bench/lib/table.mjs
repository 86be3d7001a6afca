// Markdown tables for bench output: the same text goes to the terminal and,
// pasted, into docs/.

/**
 * Renders `rows` (arrays of cells) under `headers` as a Markdown table with
 * padded columns. `align` holds 'l' or 'r' per column (default: first column
 * left, the rest right, as numbers read best).
 */
export function markdownTable (headers, rows, align = headers.map((_, i) => (i === 0 ? 'l' : 'r'))) {
  const cells = [headers, ...rows].map((row) => row.map((cell) => String(cell)))
  const widths = headers.map((_, col) => Math.max(3, ...cells.map((row) => row[col].length)))
  const line = (row) => '| ' + row.map((cell, col) => (align[col] === 'r' ? cell.padStart(widths[col]) : cell.padEnd(widths[col]))).join(' | ') + ' |'
  const rule = '|' + widths.map((w, col) => (align[col] === 'r' ? '-'.repeat(w + 1) + ':' : ':' + '-'.repeat(w + 1))).join('|') + '|'
  return [line(cells[0]), rule, ...cells.slice(1).map(line)].join('\n')
}

/** Formats a number with `digits` decimals, or an em dash for missing values. */
export function fixed (value, digits = 1) {
  return value === undefined || value === null || Number.isNaN(value) ? '—' : value.toFixed(digits)
}
