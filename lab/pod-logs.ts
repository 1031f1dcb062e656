// Keeps containers' logs beyond their pods. The kubelet deletes a pod's logs with the pod, so after a
// roll-out or a handover the lines that explain it (an old agent's last handover, a restart) are gone by the
// time a test could read them with kubectl. This copies what the kubelets write, every POLL_MS, and merges it
// in time order for a test to print when an assertion about the holders fails.
import {readdirSync, readFileSync, statSync} from 'node:fs'
import {join} from 'node:path'

const POLL_MS = 250

interface Kept {
  node: string
  pod: string
  size: number
  text: string
}

/** One line of a kept log: when the runtime wrote it, where, and what the container printed. */
export interface LogLine {
  t: number
  node: string
  pod: string
  line: string
}

export class PodLogKeeper {
  private readonly kept = new Map<string, Kept>()
  private readonly timer: NodeJS.Timeout

  /** `sources`: each node's kubelet podLogsDir; the pods of `namespaces` are kept. */
  constructor(
    private readonly sources: {node: string; dir: string}[],
    private readonly namespaces: (namespace: string) => boolean,
  ) {
    this.timer = setInterval(() => this.poll(), POLL_MS)
    this.timer.unref()
  }

  /** Copies what grew since the last poll. A directory the kubelet removes meanwhile is simply missed. */
  poll(): void {
    for (const {node, dir} of this.sources) {
      // <namespace>_<pod>_<uid>
      for (const podDir of entries(dir).filter((d) => this.namespaces(d.split('_')[0] ?? ''))) {
        const pod = podDir.split('_')[1] ?? podDir
        for (const container of entries(join(dir, podDir))) {
          for (const file of entries(join(dir, podDir, container)).filter((f) => f.endsWith('.log'))) {
            const path = join(dir, podDir, container, file)
            const before = this.kept.get(path)
            try {
              const {size} = statSync(path)
              if (before && size <= before.size) continue
              this.kept.set(path, {node, pod, size, text: readFileSync(path, 'utf8')})
            } catch {
              // removed between the listing and the read: what was kept stays
            }
          }
        }
      }
    }
  }

  /** Every kept line written at or after `since` (ms since the epoch), oldest first. */
  lines(since = 0): LogLine[] {
    this.poll()
    const all: LogLine[] = []
    for (const {node, pod, text} of this.kept.values()) {
      for (const raw of text.split('\n')) {
        // CRI log format: "<RFC 3339 time> <stdout|stderr> <P|F> <text>"
        const m = /^(\S+) \S+ \S+ (.*)$/.exec(raw)
        const t = m ? Date.parse(m[1] as string) : NaN
        if (m && t >= since) all.push({t, node, pod, line: m[2] as string})
      }
    }
    return all.sort((a, b) => a.t - b.t)
  }

  stop(): void {
    clearInterval(this.timer)
  }
}

/** `lines` as text, one per line: time of day, node, pod, the container's line. */
export function formatLogLines(lines: LogLine[]): string {
  return lines.map((l) => `${new Date(l.t).toISOString().slice(11, 23)} ${l.node} ${l.pod} ${l.line}`).join('\n')
}

function entries(dir: string): string[] {
  try {
    return readdirSync(dir)
  } catch {
    return []
  }
}
