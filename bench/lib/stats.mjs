// Summaries of timing samples: percentiles (nearest rank), medians, best.

/** The `p`-th percentile (0..100) of an ascending array, by nearest rank. */
export function percentile (sorted, p) {
  if (sorted.length === 0) return NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]
}

/** Median of any array of numbers (not modified). */
export function median (values) {
  const sorted = Float64Array.from(values).sort()
  if (sorted.length === 0) return NaN
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/**
 * Latency summary of `samples` (any unit; the result is in the same unit).
 * Sorts a copy, so the caller's array keeps its order.
 */
export function latencySummary (samples) {
  const sorted = Float64Array.from(samples).sort()
  let sum = 0
  for (let i = 0; i < sorted.length; i++) sum += sorted[i]
  return {
    n: sorted.length,
    min: sorted[0],
    mean: sum / sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    max: sorted[sorted.length - 1]
  }
}

/** Best (largest) and median of throughput samples. */
export function throughputSummary (values) {
  return { n: values.length, best: Math.max(...values), median: median(values), worst: Math.min(...values) }
}
