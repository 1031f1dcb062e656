// The failover benchmarks' result table: one row per figure, one column per configuration (the karp agent
// beside plain ucarp, measured in the same run), printed as Markdown.
import {summarize} from '../../stats.js'

export const seconds = (ms: number) => (ms / 1000).toFixed(2)

/**
 * A wait of 0-1.2 s before each failure, drawn anew every trial. How long a failover takes depends, by up
 * to a second, on where in the holder's advertisement period (1 s + skew) the failure lands; the benches'
 * fixed waits would otherwise pin that point, and every trial of a run would land in the same place.
 */
export const randomPhaseMs = () => Math.random() * 1200

/** "median s (min-max)" of the trials that have the figure, with how many did when not all. */
export function cell(values: number[], of: number): string {
  if (values.length === 0) return 'n/a'
  const s = summarize(values)
  return `${seconds(s.median)} s (${seconds(s.min)}-${seconds(s.max)})${values.length < of ? `, ${values.length}/${of} trials` : ''}`
}

export class SideBySide<C extends string> {
  /** Row label -> column -> cell, rows in the order first put. */
  private readonly cells = new Map<string, Map<C, string>>()

  constructor(
    private readonly columns: readonly C[],
    private readonly titles: Record<C, string>,
  ) {}

  put(label: string, column: C, text: string): void {
    const row = this.cells.get(label) ?? new Map<C, string>()
    row.set(column, text)
    this.cells.set(label, row)
  }

  markdown(): string {
    const lines = [`| ${['', ...this.columns.map((c) => this.titles[c])].join(' | ')} |`, `|${' --- |'.repeat(this.columns.length + 1)}`]
    for (const [label, row] of this.cells) lines.push(`| ${[label, ...this.columns.map((c) => row.get(c) ?? '-')].join(' | ')} |`)
    return lines.join('\n')
  }
}

export const CONFIG_TITLES = {agent: 'karp agent', plain: 'plain ucarp'} as const
