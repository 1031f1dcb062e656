// What every part of the lab does with processes and time: a PATH without the caller's, waiting for a
// condition with a deadline, ending a process group, walking a process tree.
import {spawnSync} from 'node:child_process'
import {readdirSync, readFileSync} from 'node:fs'
import {setTimeout as sleep} from 'node:timers/promises'

export {sleep}

/** The PATH everything the lab starts gets: the system's, never the caller's (no node_modules/.bin). */
export const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

/** Which of these commands the system PATH lacks (a skip reason names them). */
export function missingTools(tools: readonly string[]): string[] {
  return tools.filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`], {env: {PATH: SYSTEM_PATH}}).status !== 0)
}

/** Polls `check` every `everyMs` until it holds; throws naming `what` (and `detail()`) after `timeoutMs`. */
export async function waitFor(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean> | boolean,
  detail?: () => string,
  everyMs = 200,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? ` (${detail()})` : ''}`)
    await sleep(everyMs)
  }
}

/** Whether `pid` runs: it exists and is not a zombie (what exited but nobody reaped still has a pid). */
export function alive(pid: number): boolean {
  try {
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

/** Sends `signal` to the process group `pid` leads; nothing when it is gone already. */
export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal)
  } catch {
    // the group is gone already
  }
}

/** Sends `signal` to one process; nothing when it is gone already. */
export function killPid(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal)
  } catch {
    // gone already
  }
}

/** The parent of a process from its /proc stat line (the fields after the command name, which may itself hold spaces and parentheses). */
function parentOf(pid: number | string): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
}

/** `root` and every pid below it, given each pid's parent; each pid once, whatever loops the parents make. */
function descendants(parents: Iterable<[number, number]>, root: number): Set<number> {
  const children = new Map<number, number[]>()
  for (const [pid, ppid] of parents) {
    const list = children.get(ppid) ?? []
    list.push(pid)
    children.set(ppid, list)
  }
  const tree = new Set<number>()
  const stack = [root]
  while (stack.length > 0) {
    const p = stack.pop() as number
    if (tree.has(p)) continue
    tree.add(p)
    stack.push(...(children.get(p) ?? []))
  }
  return tree
}

/** `pid` and every process descended from it, as /proc shows them now. */
export function processTree(pid: number): number[] {
  const parents: [number, number][] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      parents.push([Number(entry), parentOf(entry)])
    } catch {
      // exited while we looked
    }
  }
  return [...descendants(parents, pid)]
}

/** One process's share of memoryKb. */
export interface ProcessMemory {
  pid: number
  /** The parent's pid. */
  ppid: number
  comm: string
  rss: number
  pss: number
}

/**
 * The parts that are `root` or descend from it through the parts' parents, and the others: in a container's
 * cgroup, its main process's tree and what the runtime started beside it (an exec probe's runc init and
 * the probe's processes, whose parent is the runtime's shim, outside the cgroup).
 */
export function splitByRoot(parts: ProcessMemory[], root: number): {tree: ProcessMemory[]; others: ProcessMemory[]} {
  const tree = descendants(
    parts.map((p): [number, number] => [p.pid, p.ppid]),
    root,
  )
  return {tree: parts.filter((p) => tree.has(p.pid)), others: parts.filter((p) => !tree.has(p.pid))}
}

/**
 * Memory (kB) of the given processes: the sum of RSS (shared pages counted once per process: an upper bound)
 * and of PSS (shared pages split among the processes that map them: what the node really spends), and each
 * process's part.
 */
export function memoryKb(pids: number[]): {rss: number; pss: number; processes: number; parts: ProcessMemory[]} {
  const parts: ProcessMemory[] = []
  for (const pid of pids) {
    try {
      const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8')
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
      parts.push({
        pid,
        ppid: parentOf(pid),
        comm,
        rss: Number(/^Rss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0),
        pss: Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0),
      })
    } catch {
      // exited while we looked (or a kernel thread: no smaps)
    }
  }
  return {rss: parts.reduce((n, p) => n + p.rss, 0), pss: parts.reduce((n, p) => n + p.pss, 0), processes: parts.length, parts}
}

/** RSS (kB) summed over the given processes. */
export function rssKb(pids: number[]): number {
  let total = 0
  for (const p of pids) {
    try {
      total += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0)
    } catch {
      // exited while we looked
    }
  }
  return total
}
