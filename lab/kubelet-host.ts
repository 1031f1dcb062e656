// What a kubelet changes on the host outside the directories the lab gives it, and putting it back:
// - six host-wide sysctls (no network namespace has its own copy), set when the kubelet starts; with
//   protectKernelDefaults it would refuse to start instead, as this host's values differ from its own;
// - /var/log/containers, where every kubelet links its containers' logs, and /var/lib/kubelet/device-plugins,
//   where every kubelet listens for device plugins (fixed paths, whatever its root dir).
// Several lab processes may run kubelets at the same time, and a kubelet that started after another sees
// the changed values, so what the host had before the first one is kept in one ledger file with the pids
// holding it: the last holder to leave puts it back; holders that died without leaving (SIGKILLed) are
// dropped by the next process that comes or goes. Synchronous throughout: exit hooks call it.
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import {dirname, join} from 'node:path'
import {alive} from './process.js'

/** What the kubelet's container manager sets (pkg/kubelet/cm setupKernelTunables): /proc/sys path -> value. */
export const KUBELET_SYSCTLS: Readonly<Record<string, string>> = {
  'vm/overcommit_memory': '1',
  'vm/panic_on_oom': '0',
  'kernel/panic': '10',
  'kernel/panic_on_oops': '1',
  'kernel/keys/root_maxkeys': '1000000',
  'kernel/keys/root_maxbytes': '25000000',
}

/**
 * What the lab itself raises, as a minimum, before its first kubelet: every kubelet, API server and
 * controller-manager holds several inotify instances (about 75 for a three-node lab), and the default
 * limit of 128 per user leaves no room for a second lab; a kubelet without one exits at start.
 */
export const LAB_SYSCTL_MINIMUMS: Readonly<Record<string, number>> = {
  'fs/inotify/max_user_instances': 1024,
}

/** Where every kubelet links its containers' log files (kubelet's ContainerLogsDir; not configurable). */
export const CONTAINER_LOG_LINKS = '/var/log/containers'
/** Host directories kubelets create whatever they are told: the log links and the device plugins' socket's. */
export const KUBELET_HOST_DIRS = [CONTAINER_LOG_LINKS, '/var/lib/kubelet'] as const

const LEDGER = '/run/karp-lab/kubelet-host.json'
const LOCK = `${LEDGER}.lock`

export interface Ledger {
  /** The sysctl values before the first holder's kubelet started. */
  sysctls: Record<string, string>
  /** Host directories that did not exist then (kubelets create them): removed with what kubelets left in them. */
  absentDirs: string[]
  holders: number[]
}

/** The current values of the kubelet's sysctls (keys: /proc/sys paths). */
export function readKubeletSysctls(): Record<string, string> {
  return readSysctls(Object.keys(KUBELET_SYSCTLS))
}

/** The current values of every host sysctl a lab changes: the kubelet's and the lab's own minimums. */
export function readHostSysctls(): Record<string, string> {
  return readSysctls([...Object.keys(KUBELET_SYSCTLS), ...Object.keys(LAB_SYSCTL_MINIMUMS)])
}

function readSysctls(keys: string[]): Record<string, string> {
  return Object.fromEntries(keys.map((key) => [key, readFileSync(`/proc/sys/${key}`, 'utf8').trim()]))
}

function raiseLabSysctls(): void {
  for (const [key, minimum] of Object.entries(LAB_SYSCTL_MINIMUMS)) {
    if (Number(readFileSync(`/proc/sys/${key}`, 'utf8')) < minimum) writeFileSync(`/proc/sys/${key}`, String(minimum))
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return ''
  }
}

/** Runs `fn` holding the ledger's lock file (taken over when its owner is dead or after 5 s). */
function locked<T>(fn: () => T): T {
  mkdirSync(dirname(LOCK), {recursive: true})
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(LOCK, 'wx')
      writeSync(fd, String(process.pid))
      closeSync(fd)
      break
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      // A node's teardown removes the empty directory now and then.
      if (code === 'ENOENT') {
        mkdirSync(dirname(LOCK), {recursive: true})
        continue
      }
      if (code !== 'EEXIST') throw err
      const owner = Number(readText(LOCK))
      if (!owner || !alive(owner) || attempt > 200) rmSync(LOCK, {force: true})
      else sleepSync(25)
    }
  }
  try {
    return fn()
  } finally {
    rmSync(LOCK, {force: true})
  }
}

function readLedger(): Ledger | undefined {
  try {
    return JSON.parse(readFileSync(LEDGER, 'utf8')) as Ledger
  } catch {
    return undefined
  }
}

/** Puts back what the ledger recorded; returns what it could not. */
function putBack(ledger: Ledger): string[] {
  const failed: string[] = []
  for (const [key, value] of Object.entries(ledger.sysctls)) {
    try {
      if (readFileSync(`/proc/sys/${key}`, 'utf8').trim() !== value) writeFileSync(`/proc/sys/${key}`, value)
    } catch {
      failed.push(`sysctl ${key.replaceAll('/', '.')}=${value}`)
    }
  }
  for (const dir of ledger.absentDirs) {
    try {
      rmSync(dir, {recursive: true, force: true})
    } catch {
      failed.push(`directory ${dir}`)
    }
  }
  return failed
}

/** Takes the ledger down to live holders; with none left, puts the host back and removes the ledger. */
function settle(ledger: Ledger): string[] {
  ledger.holders = ledger.holders.filter(alive)
  if (ledger.holders.length > 0) {
    writeFileSync(LEDGER, JSON.stringify(ledger))
    return []
  }
  const failed = putBack(ledger)
  if (failed.length === 0) rmSync(LEDGER, {force: true})
  return failed
}

let holds = 0

/**
 * Records what kubelets change on the host (unless a live or dead holder already did) and holds it for
 * this process: call before a kubelet starts. The returned function releases this hold (idempotent); the
 * last release of the last live process puts the host back and returns what it could not put back.
 */
export function holdKubeletHost(): () => string[] {
  if (holds++ === 0) {
    locked(() => {
      const ledger = readLedger() ?? {sysctls: readHostSysctls(), absentDirs: KUBELET_HOST_DIRS.filter((d) => !existsSync(d)), holders: []}
      ledger.holders = [...ledger.holders.filter((pid) => pid !== process.pid && alive(pid)), process.pid]
      writeFileSync(LEDGER, JSON.stringify(ledger))
      raiseLabSysctls()
    })
  }
  let released = false
  return () => {
    if (released) return []
    released = true
    if (--holds > 0) return []
    return locked(() => {
      const ledger = readLedger()
      if (!ledger) return []
      ledger.holders = ledger.holders.filter((pid) => pid !== process.pid)
      return settle(ledger)
    })
  }
}

/** Puts back what a SIGKILLed run left changed, when no live process holds the ledger. */
export function sweepKubeletHost(): string[] {
  if (holds > 0 || !existsSync(LEDGER)) return []
  return locked(() => {
    const ledger = readLedger()
    return ledger ? settle(ledger) : []
  })
}

/** What the host was like before lab kubelets ran and who holds it now (live holders only), or undefined when none does. */
export function kubeletHostLedger(): Ledger | undefined {
  const ledger = readLedger()
  return ledger && {...ledger, holders: ledger.holders.filter(alive)}
}

export interface HostState {
  sysctls: Record<string, string>
  absentDirs: string[]
}

/** What the host was like before any lab kubelet ran: the ledger's record while a lab holds it, else the host now. */
export function hostBeforeLabs(): HostState {
  const ledger = kubeletHostLedger()
  return ledger
    ? {sysctls: ledger.sysctls, absentDirs: ledger.absentDirs}
    : {sysctls: readHostSysctls(), absentDirs: KUBELET_HOST_DIRS.filter((d) => !existsSync(d))}
}

/**
 * To compare with hostBeforeLabs() once this process's kubelets are gone: the host itself, put back by the
 * last kubelet of the last lab; while another process's lab still runs, its ledger (which puts the host back
 * when that lab ends) and who holds it.
 */
export function hostAfterLabs(): HostState & {heldBy: number[]} {
  const ledger = kubeletHostLedger()
  if (ledger && ledger.holders.length > 0) return {sysctls: ledger.sysctls, absentDirs: ledger.absentDirs, heldBy: ledger.holders}
  return {sysctls: readHostSysctls(), absentDirs: KUBELET_HOST_DIRS.filter((d) => !existsSync(d)), heldBy: []}
}

/** Removes the links in /var/log/containers that point into `podLogsDir` (one kubelet's pod logs). */
export function removeLogLinks(podLogsDir: string): void {
  if (!existsSync(CONTAINER_LOG_LINKS)) return
  for (const entry of readdirSync(CONTAINER_LOG_LINKS)) {
    const link = join(CONTAINER_LOG_LINKS, entry)
    try {
      if (readlinkSync(link).startsWith(`${podLogsDir}/`)) rmSync(link, {force: true})
    } catch {
      // not a link, or gone already
    }
  }
}
