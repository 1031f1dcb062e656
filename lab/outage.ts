// Outages as a client saw them, from probe lines "<start ms> <result>" (lab/api-prober.ts: an HTTP status or
// "-"; lab/tcp-prober.ts: the answering node's name or "-").

export interface Probe {
  t: number
  ok: boolean
}

export interface Outage {
  /** Start of the last good probe before the failures. */
  from: number
  /** Start of the first good probe after them. */
  to: number
  ms: number
  failed: number
}

/** Parses probe lines; `isOk` decides what counts as an answer (default: 200 or any non-"-" result). */
export function parseProbes(
  text: string,
  isOk: (result: string) => boolean = (r) => r === '200' || (r !== '-' && !/^\d{3}$/.test(r)),
): Probe[] {
  return text
    .split('\n')
    .filter((line) => /^\d+ \S+$/.test(line))
    .map((line) => {
      const [t, result] = line.split(' ') as [string, string]
      return {t: Number(t), ok: isOk(result)}
    })
    .sort((a, b) => a.t - b.t)
}

/**
 * Every run of failed probes, from the good probe before it to the good probe after it. A run at the start
 * (no good probe before) counts from the first probe; one at the end is open and reported with `to` = the
 * last probe's start.
 */
export function outages(probes: Probe[]): Outage[] {
  const found: Outage[] = []
  let lastOk: number | undefined = probes[0]?.t
  let failed = 0
  for (const p of probes) {
    if (p.ok) {
      if (failed > 0 && lastOk !== undefined) found.push({from: lastOk, to: p.t, ms: p.t - lastOk, failed})
      failed = 0
      lastOk = p.t
    } else failed++
  }
  const last = probes.at(-1)
  if (failed > 0 && last && lastOk !== undefined) found.push({from: lastOk, to: last.t, ms: last.t - lastOk, failed})
  return found
}

/** The longest outage within [from, to] (ms since epoch), 0 when there was none. */
export function longestOutage(probes: Probe[], from = -Infinity, to = Infinity): number {
  return Math.max(0, ...outages(probes.filter((p) => p.t >= from && p.t <= to)).map((o) => o.ms))
}
