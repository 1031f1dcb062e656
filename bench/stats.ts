/** Summary figures for a list of measurements, printed by every benchmark the same way. */
export interface Summary {
  n: number
  min: number
  median: number
  max: number
}

export function summarize(values: number[]): Summary {
  if (values.length === 0) throw new Error('no measurements')
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  const median = sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
  return {n: sorted.length, min: sorted[0] as number, median, max: sorted[sorted.length - 1] as number}
}

export const formatSummary = (s: Summary, unit = 'ms', digits = 0) =>
  `median ${s.median.toFixed(digits)} ${unit}  (min ${s.min.toFixed(digits)}, max ${s.max.toFixed(digits)}, n=${s.n})`
