// A containerd of the test's own (Debian's containerd 1.6 with runc), started inside a network namespace the
// test made, driven through CRI with crictl as a kubelet drives it. Each instance has its own config, root,
// state, runc root, socket and cgroup root under one directory, so several run side by side (one per lab
// node) and none touches a system containerd. Teardown ends exactly what the instance started: containerd
// by its pid, its shims by their -address argument, container processes by their cgroup; then it unmounts
// what is mounted under the directory and removes the cgroup directories bottom-up.
//
// Settings this kind of machine needs (see the notes on real nodes): restrict_oom_score_adj (no
// CAP_SYS_RESOURCE here: runc fails to raise oom_score_adj otherwise), cgroupfs (no systemd), runc (crun
// cannot do hybrid cgroups), and `nsenter --net` rather than `ip netns exec`, which remounts /sys and
// leaves containerd without /sys/fs/cgroup.
import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {execa} from 'execa'
import {resolveBinDir} from './binaries.js'
import {atTeardown} from './teardown.js'
import {alive, missingTools, SYSTEM_PATH} from './process.js'

/** The containerd namespace CRI works in (and `ctr -n` must name to be seen by CRI). */
export const CRI_NAMESPACE = 'k8s.io'
const TOOLS = ['containerd', 'containerd-shim-runc-v2', 'runc', 'ctr', 'nsenter', 'mount', 'umount', 'tar', 'gcc']
const CGROUP_FS = '/sys/fs/cgroup'

/** Why containerd cannot run here, or false. Under CI=true a missing prerequisite throws instead. */
export async function runtimeSkipReason(): Promise<string | false> {
  const missing: string[] = []
  if (process.getuid?.() !== 0) missing.push('root')
  missing.push(...missingTools(TOOLS))
  if (!readFileSync('/proc/filesystems', 'utf8').includes('\toverlay\n') && spawnSync('modprobe', ['overlay']).status !== 0)
    missing.push('overlayfs')
  if (
    !existsSync(join(CGROUP_FS, 'memory', 'memory.limit_in_bytes')) &&
    !readCgroupFile(CGROUP_FS, 'cgroup.controllers')?.split(' ').includes('memory')
  ) {
    missing.push('the cgroup memory controller')
  }
  if (missing.length === 0) {
    try {
      await crictlBinary()
    } catch (err) {
      missing.push(`crictl (${(err as Error).message})`)
    }
  }
  if (missing.length === 0) return false
  const reason = `containerd tests need ${missing.join(', ')} (bash scripts/setup.sh installs them)`
  if (process.env.CI === 'true') throw new Error(`CI=true and ${reason}`)
  return reason
}

/** crictl as lab/k8s/build.sh builds it (beside the control plane; built when missing). */
export async function crictlBinary(): Promise<string> {
  const fromSetup = process.env.KARP_TEST_BIN_DIR && join(process.env.KARP_TEST_BIN_DIR, 'crictl')
  if (fromSetup && existsSync(fromSetup)) return fromSetup
  return join(await resolveBinDir(), 'crictl')
}

export interface ContainerdOptions {
  /** Everything of this instance lives here; removed at teardown. Default: a new karp-containerd-* temp dir. */
  dir?: string
  /** Network namespace (a name under /run/netns) containerd, and so every host-network pod, runs in. */
  netns: string
  /** Fully qualified name of the sandbox (pause) image; import it before running a pod. */
  sandboxImage: string
  /** cgroupfs directory, the same in every hierarchy, under which the pods' cgroups must go; removed at teardown. */
  cgroupRoot: string
  crictl: string
  /**
   * A CNI network configuration list (JSON) for the CRI plugin's conf_dir: with one, the runtime (and so a
   * kubelet) reports NetworkReady. Only pods that are not hostNetwork would ever use it.
   */
  cniConflist?: string
  /**
   * Starts `argv` (containerd and its arguments) inside `netns` with output appended to `logFile`, exec'ing
   * it so that the pid returned is containerd's (e.g. Network.spawnIn). Default: `nsenter --net` here.
   */
  spawn?: (netns: string, argv: string[], logFile: string) => {pid: number; exited: Promise<unknown>}
}

/** A conflist that gives the runtime a valid network (loopback only) for nodes that run only hostNetwork pods. */
export const LOOPBACK_CONFLIST = JSON.stringify({cniVersion: '1.0.0', name: 'karp-lab-loopback', plugins: [{type: 'loopback'}]})

type Settings = ContainerdOptions & {dir: string}

export interface ExecResult {
  exitCode: number
  stdout: string
  stderr: string
}

function configToml(o: Settings): string {
  const q = JSON.stringify
  const cri = 'plugins."io.containerd.grpc.v1.cri"'
  return `version = 2
root = ${q(join(o.dir, 'root'))}
state = ${q(join(o.dir, 'state'))}
# opt would install into /opt/containerd; the others are snapshotters this test never uses.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = ${q(join(o.dir, 'containerd.sock'))}
[ttrpc]
  address = ${q(join(o.dir, 'containerd.sock.ttrpc'))}

[${cri}]
  sandbox_image = ${q(o.sandboxImage)}
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [${cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [${cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [${cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = ${q(join(o.dir, 'runc'))}
  [${cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = ${q(join(o.dir, 'cni'))}
`
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal)
  } catch {
    // gone already
  }
}

function processes(): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
  } catch {
    return []
  }
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
  } catch {
    return ''
  }
}

function inCgroup(pid: number, root: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cgroup`, 'utf8')
      .split('\n')
      .some((line) => line.split(':')[2]?.startsWith(`/${root}/`))
  } catch {
    return false
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** Unmounts everything mounted at or below dir, deepest first (lazily when a mount is still busy). */
export function unmountUnder(dir: string): string[] {
  const failed: string[] = []
  const points = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4]?.replace(/\\040/g, ' '))
    .filter((p): p is string => p !== undefined && (p === dir || p.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length)
  for (const point of points) {
    if (spawnSync('umount', [point]).status !== 0 && spawnSync('umount', ['-l', point]).status !== 0) failed.push(point)
  }
  return failed
}

function readCgroupFile(dir: string, file: string): string | undefined {
  try {
    return readFileSync(join(dir, file), 'utf8').trim()
  } catch {
    return undefined
  }
}

/** The mounted cgroup hierarchies: /sys/fs/cgroup itself when it is cgroup v2 only, else each one under it. */
function cgroupHierarchies(): string[] {
  if (existsSync(join(CGROUP_FS, 'cgroup.controllers'))) return [CGROUP_FS]
  return readdirSync(CGROUP_FS).map((h) => join(CGROUP_FS, h))
}

/** The memory limit of a cgroup (cgroupfs path as in the OCI spec), in bytes; undefined for none. */
export function memoryLimit(cgroupsPath: string): number | undefined {
  const v1 = readCgroupFile(join(CGROUP_FS, 'memory', cgroupsPath), 'memory.limit_in_bytes')
  const value = v1 ?? readCgroupFile(join(CGROUP_FS, cgroupsPath), 'memory.max')
  return value === undefined || value === 'max' ? undefined : Number(value)
}

/** Removes `root` and everything below it in every cgroup hierarchy, deepest first; what could not go. */
export function removeCgroupTree(root: string): string[] {
  const failed: string[] = []
  for (const hierarchy of cgroupHierarchies()) {
    const top = join(hierarchy, root)
    if (!existsSync(top)) continue
    const dirs = [
      top,
      ...readdirSync(top, {recursive: true, withFileTypes: true})
        .filter((d) => d.isDirectory())
        .map((d) => join(d.parentPath, d.name)),
    ]
    for (const dir of dirs.sort((a, b) => b.length - a.length)) {
      try {
        rmdirSync(dir)
      } catch {
        failed.push(dir)
      }
    }
  }
  return failed
}

/** What a later run needs to clean up after an instance whose test process was SIGKILLed. */
interface InstanceRecord {
  owner: number
  pid: number
  cgroupRoot: string
}
const INSTANCE_RECORD = 'instance.json'
const TEMP_PREFIX = 'karp-containerd-'

/** What the lab reads of `crictl inspect`. */
type CriInspect = {status: {state: string; exitCode?: number}; info: {pid: number; runtimeSpec: {linux: {cgroupsPath: string}}}}

export class Containerd {
  readonly socket: string
  readonly logFile: string
  private destroyed = false
  private untrack: () => void = () => {}
  private files = 0
  private exited = true

  private constructor(
    readonly options: Settings,
    private currentPid: number,
  ) {
    this.socket = join(options.dir, 'containerd.sock')
    this.logFile = join(options.dir, 'containerd.log')
  }

  /** containerd's pid (a new one after restart()). */
  get pid(): number {
    return this.currentPid
  }

  /** Starts containerd in the namespace and waits until CRI answers. */
  static async start(opts: ContainerdOptions): Promise<Containerd> {
    Containerd.sweepStale()
    const options = {...opts, dir: opts.dir ?? mkdtempSync(join(tmpdir(), TEMP_PREFIX))}
    mkdirSync(join(options.dir, 'cni'), {recursive: true, mode: 0o700})
    if (options.cniConflist) writeFileSync(join(options.dir, 'cni', '10-karp-lab.conflist'), options.cniConflist)
    writeFileSync(join(options.dir, 'config.toml'), configToml(options))
    const instance = new Containerd(options, 0)
    instance.untrack = atTeardown(() => {
      instance.destroySync()
    })
    await instance.launch()
    return instance
  }

  /** Starts the process again after kill(), with the same config, root (images, containers) and socket. */
  async restart(): Promise<void> {
    if (this.destroyed) throw new Error('containerd was destroyed')
    const left = this.pids()
    if (left.length > 0) throw new Error(`containerd still runs (pids ${left.join(', ')}): kill() it first`)
    await this.launch()
  }

  private async launch(): Promise<void> {
    const argv = ['containerd', '--config', join(this.dir, 'config.toml')]
    // nsenter with only --net execs containerd in place: the pid is containerd's.
    const child = this.options.spawn?.(this.options.netns, argv, this.logFile) ?? this.spawnHere(argv)
    this.currentPid = child.pid
    this.exited = false
    const record: InstanceRecord = {owner: process.pid, pid: child.pid, cgroupRoot: this.options.cgroupRoot}
    writeFileSync(join(this.dir, INSTANCE_RECORD), JSON.stringify(record))
    let exited = false
    void child.exited.then(() => {
      exited = true
      if (this.currentPid === child.pid) this.exited = true
    })
    const deadline = Date.now() + 30_000
    for (;;) {
      if (exited) {
        this.destroySync()
        throw new Error(`containerd exited at start:\n${this.logTail()}`)
      }
      if (existsSync(this.socket) && (await this.crictl(['version'], {reject: false})).exitCode === 0) return
      if (Date.now() > deadline) {
        this.destroySync()
        throw new Error(`containerd did not answer within 30 s:\n${this.logTail()}`)
      }
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  private spawnHere(argv: string[]): {pid: number; exited: Promise<unknown>} {
    const child = execa('nsenter', [`--net=/run/netns/${this.options.netns}`, ...argv], {
      env: {PATH: SYSTEM_PATH},
      extendEnv: false,
      detached: true,
      stdin: 'ignore',
      stdout: {file: this.logFile, append: true},
      stderr: {file: this.logFile, append: true},
      reject: false,
    })
    if (child.pid === undefined) throw new Error('could not start containerd')
    return {pid: child.pid, exited: child}
  }

  /** Cleans up after instances in temp dirs whose test process is gone (SIGKILLed: no hook ran). */
  static sweepStale(): void {
    for (const entry of readdirSync(tmpdir())) {
      if (entry.startsWith(TEMP_PREFIX)) Containerd.sweepDir(join(tmpdir(), entry))
    }
  }

  /** Cleans up after the instance whose directory is `dir` when the process that started it is gone. */
  static sweepDir(dir: string): string[] {
    let record: InstanceRecord
    try {
      record = JSON.parse(readFileSync(join(dir, INSTANCE_RECORD), 'utf8')) as InstanceRecord
    } catch {
      return []
    }
    if (alive(record.owner)) return []
    return new Containerd({dir, netns: '', sandboxImage: '', crictl: '', cgroupRoot: record.cgroupRoot}, record.pid).destroySync()
  }

  get dir(): string {
    return this.options.dir
  }

  /** The cgroup parent for a pod's sandbox config, inside this instance's cgroup root. */
  podCgroupParent(uid: string): string {
    return `/${this.options.cgroupRoot}/pod${uid}`
  }

  logTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
    } catch {
      return '(no containerd log)'
    }
  }

  /**
   * Runs crictl against this instance, inside its network namespace: exec and port-forward streams go
   * through the CRI stream server, which listens on that namespace's loopback.
   */
  async crictl(args: string[], opts: {reject?: boolean; timeoutMs?: number} = {}): Promise<ExecResult> {
    const endpoint = `unix://${this.socket}`
    const result = await execa(
      'nsenter',
      [
        `--net=/run/netns/${this.options.netns}`,
        this.options.crictl,
        '--config',
        '/dev/null',
        '-r',
        endpoint,
        '-i',
        endpoint,
        '-t',
        '60s',
        ...args,
      ],
      {
        env: {PATH: SYSTEM_PATH},
        extendEnv: false,
        reject: false,
        timeout: opts.timeoutMs ?? 120_000,
      },
    )
    const out = {exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr)}
    if (opts.reject !== false && out.exitCode !== 0)
      throw new Error(`crictl ${args.join(' ')} failed (exit ${out.exitCode}): ${out.stderr.trim()}`)
    return out
  }

  /** Imports an OCI image layout (index.json naming the image) as `name` (repository, no tag): tag and @digest. */
  async importImage(layout: string, name: string): Promise<void> {
    // ctr picks this machine's platform out of a multi-arch index and unpacks only that one.
    const tar = execa('tar', ['-C', layout, '-cf', '-', '.'], {encoding: 'buffer', maxBuffer: 1 << 30})
    const imported = execa('ctr', ['-a', this.socket, '-n', CRI_NAMESPACE, 'images', 'import', '--base-name', name, '--digests', '-'], {
      input: (await tar).stdout,
      reject: false,
    })
    const result = await imported
    if (result.exitCode !== 0) throw new Error(`ctr images import ${layout} failed: ${String(result.stderr).trim()}`)
  }

  private writeSpec(kind: string, spec: unknown): string {
    const file = join(this.dir, 'cri', `${++this.files}-${kind}.json`)
    mkdirSync(join(this.dir, 'cri'), {recursive: true})
    writeFileSync(file, JSON.stringify(spec, null, 2))
    return file
  }

  async runPodSandbox(sandbox: unknown): Promise<string> {
    return (await this.crictl(['runp', this.writeSpec('sandbox', sandbox)])).stdout.trim()
  }

  async createContainer(podId: string, config: unknown, sandbox: unknown): Promise<string> {
    return (await this.crictl(['create', podId, this.writeSpec('container', config), this.writeSpec('sandbox', sandbox)])).stdout.trim()
  }

  async startContainer(id: string): Promise<void> {
    await this.crictl(['start', id])
  }

  /** `crictl inspect`: {status: {state, exitCode, ...}, info: {pid, runtimeSpec, ...}}. */
  async inspect(id: string): Promise<CriInspect> {
    return JSON.parse((await this.crictl(['inspect', '-o', 'json', id])).stdout) as CriInspect
  }

  /**
   * A reader of the pids in the container's cgroup (its `cgroup.procs`, in the first hierarchy that has it):
   * a file read per call, for sampling many times a second, where processes() scans all of /proc.
   */
  async cgroupPids(id: string): Promise<() => number[]> {
    const path = (await this.inspect(id)).info.runtimeSpec.linux.cgroupsPath
    const file = cgroupHierarchies()
      .map((r) => join(r, path, 'cgroup.procs'))
      .find((f) => existsSync(f))
    if (!file) throw new Error(`no cgroup.procs for container ${id} (${path}) under ${CGROUP_FS}`)
    return () => {
      try {
        return readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number)
      } catch {
        return []
      }
    }
  }

  /** The host pids and names of every process in the container (its cgroup), entrypoint first. */
  async processes(id: string): Promise<Array<{pid: number; comm: string}>> {
    const {info} = await this.inspect(id)
    const path = info.runtimeSpec.linux.cgroupsPath
    const inContainer = (pid: number) => {
      try {
        return readFileSync(`/proc/${pid}/cgroup`, 'utf8')
          .split('\n')
          .some((line) => line.split(':').slice(2).join(':') === path)
      } catch {
        return false
      }
    }
    return processes()
      .filter((pid) => alive(pid) && inContainer(pid))
      .sort((a, b) => (a === info.pid ? -1 : b === info.pid ? 1 : a - b))
      .map((pid) => ({pid, comm: comm(pid)}))
  }

  /** Runs a command in the container as the kubelet runs an exec probe (CRI ExecSync). */
  async exec(id: string, command: string[], timeoutSeconds = 10): Promise<ExecResult> {
    return this.crictl(['exec', '--sync', '--timeout', String(timeoutSeconds), id, ...command], {reject: false})
  }

  /** SIGTERM, then SIGKILL after the grace period, as the kubelet stops a container. */
  async stopContainer(id: string, graceSeconds: number): Promise<void> {
    await this.crictl(['stop', '--timeout', String(graceSeconds), id], {timeoutMs: (graceSeconds + 60) * 1000})
  }

  /** Stops and removes every pod through CRI, stops containerd, then cleans up whatever is left. */
  async stop(): Promise<void> {
    if (this.destroyed) return
    if (!this.exited && alive(this.pid)) {
      const pods = await this.crictl(['pods', '-q'], {reject: false})
      for (const pod of pods.stdout.split('\n').filter(Boolean)) await this.crictl(['stopp', pod], {reject: false})
      await this.crictl(['rmp', '--all', '--force'], {reject: false})
      kill(this.pid, 'SIGTERM')
      for (let i = 0; i < 100 && alive(this.pid); i++) await new Promise((r) => setTimeout(r, 100))
    }
    const problems = this.destroySync()
    if (problems.length > 0) throw new Error(`containerd teardown left: ${problems.join(', ')}`)
  }

  /** containerd, its shims and every container process (by cgroup) of this instance, as /proc shows them now. */
  pids(): number[] {
    const config = join(this.dir, 'config.toml')
    const ours = (pid: number) => {
      const args = cmdline(pid)
      if (pid === this.pid) return args.includes(config)
      const address = args.indexOf('-address')
      return (address >= 0 && args[address + 1] === this.socket) || inCgroup(pid, this.options.cgroupRoot)
    }
    return processes().filter((pid) => pid !== process.pid && alive(pid) && ours(pid))
  }

  /**
   * Power loss: SIGKILLs containerd, its shims and every container process, then drops what a reboot
   * loses (mounts under the directory, the cgroups, the state and runc directories); root (images,
   * containers' records) stays for restart(). Returns what it could not do.
   */
  kill(): string[] {
    let left: number[] = []
    for (let round = 0; round < 50; round++) {
      left = this.pids()
      if (left.length === 0) break
      for (const pid of left) kill(pid, 'SIGKILL')
      sleepSync(100)
    }
    const problems = left.map((pid) => `process ${pid}`)
    // Shim sockets live under /run/containerd/s whatever the state dir; each bundle names its own.
    const tasks = join(this.dir, 'state', 'io.containerd.runtime.v2.task', CRI_NAMESPACE)
    if (existsSync(tasks)) {
      for (const id of readdirSync(tasks)) {
        try {
          const address = readFileSync(join(tasks, id, 'address'), 'utf8')
            .trim()
            .replace(/^unix:\/\//, '')
          if (address.startsWith('/run/containerd/s/')) rmSync(address, {force: true})
        } catch {
          // no shim address recorded
        }
      }
    }
    problems.push(...unmountUnder(this.dir).map((p) => `mount ${p}`))
    problems.push(...removeCgroupTree(this.options.cgroupRoot).map((d) => `cgroup ${d}`))
    if (problems.length === 0) for (const volatile of ['state', 'runc']) rmSync(join(this.dir, volatile), {recursive: true, force: true})
    return problems
  }

  /** Kills what this instance started, unmounts, removes its cgroups and directory; returns what it could not. */
  destroySync(): string[] {
    if (this.destroyed) return []
    this.destroyed = true
    this.untrack()
    const problems = this.kill()
    if (problems.length === 0 && !process.env.KARP_LAB_KEEP) rmSync(this.dir, {recursive: true, force: true})
    return problems
  }
}
