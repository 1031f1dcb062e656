// Which lab nodes hold the VIP, sampled over a stretch of time: how long two held it at once, whether two
// backups promoted together, how often the VIP moved. Shared by the journey and bench/failover/real-nodes.
import {sleep} from './process.js'

export interface HoldersSeen {
  samples: string[][]
  /** The longest time two or more nodes held the VIP at once (a make-before-break handover overlaps briefly). */
  doubleMs: number
  /** Samples with two or more holders. */
  doubleSamples: number
  /** Samples with no holder after the first one that had one. */
  zeroAfterFirst: number
  /**
   * Samples where two or more nodes held the VIP that did not hold it at the last sample with one holder: two
   * backups promoted together (what the agents' ranks prevent), as opposed to a handover's old and new holder.
   */
  promotedTogether: string[][]
  /** How often the single holder changed from one node to another. */
  moves: number
}

/** Summarizes samples of the holder set taken in time order. */
export function holdersSeen(samples: {t: number; holders: string[]}[]): HoldersSeen {
  let doubleMs = 0
  let since: number | undefined
  for (const s of samples) {
    if (s.holders.length > 1) since ??= s.t
    else if (since !== undefined) {
      doubleMs = Math.max(doubleMs, s.t - since)
      since = undefined
    }
  }
  const last = samples.at(-1)
  if (since !== undefined && last) doubleMs = Math.max(doubleMs, last.t - since)
  const firstHeld = samples.findIndex((s) => s.holders.length > 0)
  const zeroAfterFirst = firstHeld < 0 ? 0 : samples.slice(firstHeld).filter((s) => s.holders.length === 0).length
  const promotedTogether: string[][] = []
  let single: string[] = []
  let moves = 0
  for (const {holders} of samples) {
    if (holders.length === 1) {
      if (single.length === 1 && single[0] !== holders[0]) moves++
      single = holders
    } else if (holders.filter((h) => !single.includes(h)).length > 1) promotedTogether.push(holders)
  }
  return {
    samples: samples.map((s) => s.holders),
    doubleMs,
    doubleSamples: samples.filter((s) => s.holders.length > 1).length,
    zeroAfterFirst,
    promotedTogether,
    moves,
  }
}

/** Samples `holders()` every `everyMs` until stopped. */
export function watchHolders(holders: () => Promise<string[]>, everyMs = 100): {stop: () => Promise<HoldersSeen>} {
  const samples: {t: number; holders: string[]}[] = []
  let running = true
  const loop = (async () => {
    while (running) {
      try {
        samples.push({t: Date.now(), holders: await holders()})
      } catch {
        // The lab went (a failed step's teardown): nothing more to sample.
        break
      }
      await sleep(everyMs)
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      return holdersSeen(samples)
    },
  }
}
