// The lab's network: one bridge in a namespace of its own and hosts (network namespaces) attached to it by
// veth pairs. Every lab address lives inside those namespaces; the root namespace gets none. Processes
// started here run in a host's namespace through `nsenter --net` (which, unlike `ip netns exec`, keeps the
// caller's /sys and so the cgroup hierarchies a kubelet or containerd needs), each in a process group of its
// own, and are tracked: teardown kills every group, then whatever still runs in a namespace, then deletes
// the namespaces. Names carry a per-run prefix (<kind>-<pid base 36>-<random>), so parallel runs never
// collide and the next run sweeps what a SIGKILLed one left.
import {spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {existsSync} from 'node:fs'
import {execa} from 'execa'
import {killGroup, killPid, SYSTEM_PATH} from './process.js'

// By absolute path: a command whose PATH puts busybox's tools first would find an `ip` that knows no netns.
export const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => existsSync(p)) ?? 'ip'

export interface Proc {
  pid: number
  /** Exit code, or null when a signal ended it. */
  exited: Promise<number | null>
  running: boolean
}

export interface Host {
  name: string
  ns: string
  ip: string
  /** The veth end on the bridge. */
  port: string
  mac: string
}

export interface SpawnOptions {
  env?: Record<string, string>
  /** Output is appended here. */
  logFile: string
  cwd?: string
  /**
   * Through `ip netns exec`, which also mounts a sysfs of the namespace (what /sys/class/net shows), for a
   * process that reads its interfaces there, as a container's own /sys would show them. It hides the cgroup
   * hierarchies, so never for a kubelet or containerd.
   */
  namespaceSysfs?: boolean
}

/** Runs a command to completion (PATH: the system's) and returns its stdout; throws with its stderr on failure. */
export async function run(file: string, args: string[]): Promise<string> {
  const result = await execa(file, args, {env: {PATH: SYSTEM_PATH}, extendEnv: false, stdin: 'ignore'})
  return result.stdout
}

/** Kills what runs in the namespace and deletes it. */
function deleteNamespace(ns: string): void {
  const pids = spawnSync('ip', ['netns', 'pids', ns], {encoding: 'utf8'}).stdout ?? ''
  for (const p of pids.split('\n').filter(Boolean)) killPid(Number(p))
  spawnSync('ip', ['netns', 'del', ns])
}

/** Namespaces of earlier runs (named `<kind>-<pid>-<hex4>-...`) whose process is gone. */
export function sweepStale(kind: string): void {
  const list = spawnSync('ip', ['netns', 'list'], {encoding: 'utf8'}).stdout ?? ''
  const pattern = new RegExp(`^${kind}-([0-9a-z]+)-[0-9a-f]{4}-`)
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? ''
    const pid = pattern.exec(name)?.[1]
    if (pid && !existsSync(`/proc/${parseInt(pid, 36)}`)) deleteNamespace(name)
  }
}

export class Network {
  readonly prefix: string
  readonly brNs: string
  readonly hosts: Host[] = []
  private readonly procs = new Set<Proc>()
  private readonly namespaces: string[] = []
  private destroyed = false

  private constructor(
    kind: string,
    readonly subnet: string,
  ) {
    this.prefix = `${kind}-${process.pid.toString(36)}-${randomBytes(2).toString('hex')}`
    this.brNs = `${this.prefix}-br`
  }

  /** A bridge (in its own namespace) for `subnet`.0/24; `kind` starts every namespace name. */
  static async create(kind: string, subnet: string): Promise<Network> {
    sweepStale(kind)
    const net = new Network(kind, subnet)
    try {
      await net.addNamespace(net.brNs)
      // CARP advertisements go to 224.0.0.18; snooping would only add a way for them to get lost.
      await run('ip', ['-n', net.brNs, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0'])
      await run('ip', ['-n', net.brNs, 'link', 'set', 'br0', 'up'])
    } catch (err) {
      net.destroySync()
      throw err
    }
    return net
  }

  private async addNamespace(name: string): Promise<void> {
    await run('ip', ['netns', 'add', name])
    this.namespaces.push(name)
    await run('ip', ['-n', name, 'link', 'set', 'lo', 'up'])
  }

  /** A new namespace `<prefix>-<name>` on the bridge with `<subnet>.<lastOctet>/24` on its eth0. */
  async addHost(name: string, lastOctet: number): Promise<Host> {
    const ns = `${this.prefix}-${name}`
    const ip = `${this.subnet}.${lastOctet}`
    const port = `v-${name}`
    await this.addNamespace(ns)
    await run('ip', ['-n', this.brNs, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
    await run('ip', ['-n', this.brNs, 'link', 'set', port, 'master', 'br0', 'up'])
    await run('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0'])
    await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up'])
    const link = await run('ip', ['-n', ns, '-o', 'link', 'show', 'eth0'])
    const mac = /link\/ether ([0-9a-f:]{17})/.exec(link)?.[1]
    if (!mac) throw new Error(`no MAC address on eth0 in ${ns}: ${link}`)
    const host = {name, ns, ip, port, mac}
    this.hosts.push(host)
    return host
  }

  /** A route on the host's eth0 for `cidr` (no gateway: the bridge is the only way out of a namespace). */
  async addRoute(host: Host, cidr: string): Promise<void> {
    await run('ip', ['-n', host.ns, 'route', 'add', cidr, 'dev', 'eth0', 'src', host.ip])
  }

  host(name: string): Host {
    const host = this.hosts.find((h) => h.name === name)
    if (!host) throw new Error(`no lab host ${name}`)
    return host
  }

  /** Starts a command in the host's network namespace, in a process group of its own, tracked for teardown. */
  spawnIn(ns: string, command: string[], opts: SpawnOptions): Proc {
    const enter = opts.namespaceSysfs ? [IP, 'netns', 'exec', ns] : ['nsenter', `--net=/run/netns/${ns}`, '--']
    return this.spawn([...enter, ...command], opts)
  }

  /**
   * Starts a command in this (the root) namespace, tracked like the others. Only for what bridges a
   * filesystem socket: nothing started this way may get or reach a lab address.
   */
  spawnHere(command: string[], opts: SpawnOptions): Proc {
    return this.spawn(command, opts)
  }

  private spawn(command: string[], opts: SpawnOptions): Proc {
    const [file, ...args] = command as [string, ...string[]]
    const sub = execa(file, args, {
      env: {PATH: SYSTEM_PATH, ...opts.env},
      extendEnv: false,
      cwd: opts.cwd,
      detached: true,
      stdin: 'ignore',
      stdout: {file: opts.logFile, append: true},
      stderr: {file: opts.logFile, append: true},
      reject: false,
    })
    if (sub.pid === undefined) throw new Error(`could not start ${command.join(' ')}`)
    const proc: Proc = {
      pid: sub.pid,
      running: true,
      exited: sub.then((r) => {
        proc.running = false
        this.procs.delete(proc)
        return r.exitCode ?? null
      }),
    }
    this.procs.add(proc)
    return proc
  }

  /** Runs a command in the host's namespace to completion. */
  async exec(ns: string, command: string[], opts: {env?: Record<string, string>; timeoutMs?: number} = {}) {
    const result = await execa('nsenter', [`--net=/run/netns/${ns}`, '--', ...command], {
      env: {PATH: SYSTEM_PATH, ...opts.env},
      extendEnv: false,
      stdin: 'ignore',
      reject: false,
      timeout: opts.timeoutMs ?? 30_000,
    })
    return {exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr}
  }

  /** Every process (pid) inside the namespace now, whoever started it. */
  pidsIn(ns: string): number[] {
    const out = spawnSync('ip', ['netns', 'pids', ns], {encoding: 'utf8'}).stdout ?? ''
    return out.split('\n').filter(Boolean).map(Number)
  }

  /** Link down on the bridge side: the host hears nothing and is heard by nobody. */
  async cutLink(host: Host): Promise<void> {
    await run('ip', ['-n', this.brNs, 'link', 'set', host.port, 'down'])
  }

  async restoreLink(host: Host): Promise<void> {
    await run('ip', ['-n', this.brNs, 'link', 'set', host.port, 'up'])
  }

  /** Takes the host's port off the bridge: its link keeps carrier, but nobody hears it. */
  async isolate(host: Host): Promise<void> {
    await run('ip', ['-n', this.brNs, 'link', 'set', host.port, 'nomaster'])
  }

  async rejoin(host: Host): Promise<void> {
    await run('ip', ['-n', this.brNs, 'link', 'set', host.port, 'master', 'br0'])
  }

  /** Whether `address` is on the host's eth0. */
  async hasAddress(host: Host, address: string): Promise<boolean> {
    const out = await run('ip', ['-n', host.ns, '-4', 'addr', 'show', 'dev', 'eth0'])
    return out.includes(` inet ${address}/`)
  }

  /** The MAC address `ns`'s neighbour table holds for `address`, if any. */
  async neighbour(ns: string, address: string): Promise<string | undefined> {
    const out = await run('ip', ['-n', ns, 'neigh', 'show', address])
    return /lladdr ([0-9a-f:]{17})/.exec(out)?.[1]
  }

  async destroy(): Promise<void> {
    const running = [...this.procs]
    for (const proc of running) killGroup(proc.pid, 'SIGKILL')
    await Promise.all(running.map((p) => p.exited))
    this.destroySync()
  }

  /** What must go even when this process is on its way out (exit hook): no awaits. */
  destroySync(): void {
    if (this.destroyed) return
    this.destroyed = true
    for (const proc of this.procs) killGroup(proc.pid, 'SIGKILL')
    // Children that left their process group would keep a namespace alive.
    for (const ns of this.namespaces) deleteNamespace(ns)
  }
}
