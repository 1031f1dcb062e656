// One real Kubernetes node of the lab, inside a lab host's network namespace: its own containerd (+ runc)
// and a kubelet registered as that node, labelled and tainted as a kubeadm control-plane node. Everything
// it keeps lives under one directory (containerd's root and state, the kubelet's root, pod logs, static
// pod manifests, configuration and logs) and one cgroup root of its own, so several nodes run side by
// side. Both processes start through `nsenter --net` (Network.spawnIn), which keeps the host's
// /sys/fs/cgroup; hostNetwork pods then run in the node's namespace.
//
// kill() is a power loss: every process of the node dies at once, and what a reboot loses goes (mounts,
// cgroups, containerd's state and runc directories); restart() boots it again from what it kept (images,
// containers' records, the kubelet's root), like a machine coming back. Neither touches the namespace or
// its addresses.
//
// What the kubelet changes on the host outside its directories (sysctls, /var/log/containers) is held in
// a ledger (kubelet-host.ts) and put back when the last node of the last lab process goes.
import {createHash, randomBytes} from 'node:crypto'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {stringify} from 'yaml'
import {resolveBinDir} from './binaries.js'
import {Containerd, crictlBinary, LOOPBACK_CONFLIST, removeCgroupTree, runtimeSkipReason, unmountUnder} from './containerd.js'
import {agentImage, IMAGE_DIR, IMAGE_LAYOUT} from './image.js'
import {holdKubeletHost, removeLogLinks, sweepKubeletHost} from './kubelet-host.js'
import type {Host, Network, Proc} from './network.js'
import {buildPauseImage, PAUSE_IMAGE, PAUSE_SOURCE} from './pause.js'
import {killGroup, killPid, processTree, rssKb, sleep, waitFor} from './process.js'
import {atTeardown} from './teardown.js'

/** The label and taint kubeadm gives a control-plane node. */
export const CONTROL_PLANE_LABEL = 'node-role.kubernetes.io/control-plane'
export const CONTROL_PLANE_TAINT = {key: CONTROL_PLANE_LABEL, effect: 'NoSchedule'} as const

const CGROUP_FS = '/sys/fs/cgroup'
const REGISTRY = '/run/karp-lab/nodes'

/** An OCI image layout and the repository name (no tag) containerd imports it as, by tag and by digest. */
export interface NodeImage {
  layout: string
  name: string
}

export interface CommandResult {
  exitCode: number
  stdout: string
  stderr: string
}

/** kubectl with admin credentials, run wherever the API server can be reached (e.g. the lab's client namespace). */
export type Kubectl = (args: string[]) => Promise<CommandResult>

export interface NodeOptions {
  network: Network
  /** The lab host (network namespace and address) the node runs in. */
  host: Host
  /** The Node's name (default: the host's name); the kubelet's client certificate must be `system:node:<it>`. */
  name?: string
  /** The kubelet's kubeconfig: a client certificate CN=system:node:<name>, O=system:nodes, and the API server it can reach. */
  kubeconfig: string
  /** The cluster CA (PEM file): the kubelet accepts client certificates it signed (the API server's kubelet client). */
  caFile: string
  /**
   * Admin kubectl: labels the Node and reads its status. The kubelet cannot label itself a control-plane
   * node: it refuses node-role.kubernetes.io/* in --node-labels (and NodeRestriction would forbid it too).
   */
  kubectl: Kubectl
  /** Imported into containerd at the first start; the sandbox image must be one of them. Default: labImages(). */
  images?: NodeImage[]
  /** Fully qualified sandbox (pause) image; default PAUSE_IMAGE. */
  sandboxImage?: string
  /** 'control-plane' (default): the kubeadm label and NoSchedule taint; 'worker': neither. */
  role?: 'control-plane' | 'worker'
  /** Everything of the node lives here; removed by stop(). Default: a new karp-node-* temp dir. */
  dir?: string
  /** The kubelet's serving certificate and key (PEM files); default: the kubelet signs its own. */
  servingCert?: {certFile: string; keyFile: string}
  clusterDNS?: string[]
  clusterDomain?: string
  /** The kubelet's log verbosity (--v); default 1. */
  verbosity?: number
}

/** Why a node cannot run here (containerd's prerequisites, the kubelet binary), or false; throws under CI=true. */
export async function nodeSkipReason(): Promise<string | false> {
  const runtime = await runtimeSkipReason()
  if (runtime) return runtime
  try {
    if (existsSync(join(await resolveBinDir(), 'kubelet'))) return false
  } catch (err) {
    return noKubelet((err as Error).message)
  }
  return noKubelet('lab/k8s/build.sh built no kubelet')
}

function noKubelet(why: string): string {
  const reason = `a lab node needs the kubelet: ${why}`
  if (process.env.CI === 'true') throw new Error(`CI=true and ${reason}`)
  return reason
}

let pauseLayout: Promise<string> | undefined

/**
 * The pause image's OCI layout, built once into build/pause/<digest of pause.c> and reused after (lab
 * processes share it, read-only; a build goes to a temp dir renamed into place).
 */
async function pauseImageLayout(): Promise<string> {
  const key = createHash('sha256').update(readFileSync(PAUSE_SOURCE)).digest('hex').slice(0, 16)
  const dir = join(dirname(IMAGE_DIR), 'pause', key)
  const layout = join(dir, 'oci')
  if (existsSync(join(layout, 'index.json'))) return layout
  mkdirSync(dirname(dir), {recursive: true})
  const building = mkdtempSync(`${dir}.tmp-`)
  try {
    await buildPauseImage(building)
    renameSync(building, dir)
  } catch (err) {
    rmSync(building, {recursive: true, force: true})
    if (!existsSync(join(layout, 'index.json'))) throw err
  }
  return layout
}

/** The images every lab node gets: the pause image and the agent image. */
export async function labImages(): Promise<NodeImage[]> {
  pauseLayout ??= pauseImageLayout()
  const [pause, agent] = await Promise.all([pauseLayout, agentImage()])
  return [
    {layout: pause, name: PAUSE_IMAGE.replace(/:[^:/]+$/, '')},
    {layout: IMAGE_LAYOUT, name: agent.name},
  ]
}

/** What a later run needs to clean up after a node whose lab process was SIGKILLed (no exit hook ran). */
interface NodeRecord {
  owner: number
  dir: string
  cgroupRoot: string
}

/** Cleans up after nodes whose lab process is gone, and puts the host back when no kubelet of the lab is left. */
export function sweepStaleNodes(): void {
  if (existsSync(REGISTRY)) {
    for (const entry of readdirSync(REGISTRY)) {
      let record: NodeRecord
      try {
        record = JSON.parse(readFileSync(join(REGISTRY, entry), 'utf8')) as NodeRecord
      } catch {
        continue
      }
      if (existsSync(`/proc/${record.owner}`)) continue
      // The kubelet by its command line; containerd, shims and containers as Containerd finds them.
      for (const pid of kubeletPids(record.dir)) killPid(pid)
      const left = [...Containerd.sweepDir(join(record.dir, 'containerd')), ...cleanUp(record.dir, record.cgroupRoot)]
      if (left.length > 0) continue
      rmSync(record.dir, {recursive: true, force: true})
      rmSync(join(REGISTRY, entry), {force: true})
    }
  }
  sweepKubeletHost()
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
  } catch {
    return []
  }
}

/** Kubelets started with the configuration file under `dir`. */
function kubeletPids(dir: string): number[] {
  const flag = `--config=${join(dir, 'kubelet.yaml')}`
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((pid) => cmdline(pid).includes(flag) && !zombie(pid))
}

function zombie(pid: number): boolean {
  try {
    return /^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return true
  }
}

/** What a reboot (or teardown) drops: mounts under the node's directory, its cgroups, its log links. */
function cleanUp(dir: string, cgroupRoot: string): string[] {
  // The kubelet bind-mounts its root onto itself and mounts volumes under it: a second pass unmounts what
  // the first uncovered, and reports what is still there.
  unmountUnder(dir)
  const left = unmountUnder(dir)
  removeLogLinks(join(dir, 'pod-logs'))
  return [...left.map((p) => `mount ${p}`), ...removeCgroupTree(cgroupRoot).map((d) => `cgroup ${d}`)]
}

function removeIfEmpty(dir: string): void {
  try {
    rmdirSync(dir)
  } catch {
    // not empty (other nodes, the kubelet host ledger) or gone
  }
}

/** The cgroup root, in every hierarchy. A cpuset cgroup takes no process before its cpus and mems are set. */
function prepareCgroupRoot(root: string): void {
  const hierarchies = existsSync(join(CGROUP_FS, 'cgroup.controllers'))
    ? [CGROUP_FS]
    : readdirSync(CGROUP_FS).map((h) => join(CGROUP_FS, h))
  for (const hierarchy of hierarchies) mkdirSync(join(hierarchy, root), {recursive: true})
  const cpuset = join(CGROUP_FS, 'cpuset')
  if (existsSync(join(cpuset, 'cpuset.cpus'))) {
    for (const file of ['cpuset.cpus', 'cpuset.mems'])
      writeFileSync(join(cpuset, root, file), readFileSync(join(cpuset, file), 'utf8').trim())
  }
}

interface NodeCondition {
  type: string
  status: string
  lastHeartbeatTime?: string
  reason?: string
  message?: string
}

interface NodeObject {
  metadata: {labels?: Record<string, string>}
  spec: {taints?: Array<{key: string; effect: string; value?: string}>}
  status?: {conditions?: NodeCondition[]}
}

/** Where every kubelet of the host listens for device plugins, whatever its root dir. */
const DEVICE_PLUGIN_SOCKET = '/var/lib/kubelet/device-plugins/kubelet.sock'
/** The last kubelet start of this process: the next one waits for it (startKubelet). */
let kubeletStarts: Promise<void> = Promise.resolve()

export class KubeNode {
  readonly name: string
  readonly host: Host
  readonly dir: string
  readonly cgroupRoot: string
  readonly kubeletLog: string
  /** Where the kubelet writes its containers' logs (`<namespace>_<pod>_<uid>/<container>/N.log`). */
  get podLogsDir(): string {
    return join(this.dir, 'pod-logs')
  }
  private containerd?: Containerd
  private kubelet?: Proc
  private kubeletStartedAt = 0
  private releaseHost: () => string[] = () => []
  private untrack: () => void = () => {}
  private stopped = false
  private readonly options: NodeOptions

  constructor(options: NodeOptions) {
    this.options = options
    this.host = options.host
    this.name = options.name ?? options.host.name
    this.cgroupRoot = `karp-node-${process.pid.toString(36)}-${randomBytes(3).toString('hex')}`
    // Made by start(): a node that never starts leaves nothing.
    this.dir = options.dir ?? join(tmpdir(), this.cgroupRoot)
    this.kubeletLog = join(this.dir, 'kubelet.log')
  }

  /** The kubelet's staticPodPath: pod manifests written here run as static pods of this node. */
  get manifestsDir(): string {
    return join(this.dir, 'manifests')
  }

  get containerdSocket(): string {
    return join(this.dir, 'containerd', 'containerd.sock')
  }

  /**
   * Starts containerd (importing the images), then the kubelet; returns once the Node is registered and
   * labelled. With `register: false` it returns once the kubelet runs (its static pods start; nothing needs an
   * API server yet), and registered() waits for the rest: a node whose API server does not exist yet.
   */
  async start(opts: {register?: boolean} = {}): Promise<void> {
    if (this.containerd) throw new Error(`node ${this.name} was started already`)
    sweepStaleNodes()
    this.untrack = atTeardown(() => {
      this.stopSync()
    })
    const record: NodeRecord = {owner: process.pid, dir: this.dir, cgroupRoot: this.cgroupRoot}
    for (let attempt = 0; ; attempt++) {
      mkdirSync(REGISTRY, {recursive: true})
      try {
        writeFileSync(join(REGISTRY, `${this.cgroupRoot}.json`), JSON.stringify(record))
        break
      } catch (err) {
        // Another node's teardown removed the registry when it was empty.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt > 3) throw err
      }
    }
    mkdirSync(this.dir, {recursive: true, mode: 0o700})
    for (const sub of ['kubelet', 'pod-logs', 'manifests', 'volume-plugins']) mkdirSync(join(this.dir, sub), {recursive: true})
    writeFileSync(join(this.dir, 'kubelet.yaml'), this.kubeletConfig())
    this.releaseHost = holdKubeletHost()
    prepareCgroupRoot(this.cgroupRoot)
    const images = this.options.images ?? (await labImages())
    const {network} = this.options
    this.containerd = await Containerd.start({
      dir: join(this.dir, 'containerd'),
      netns: this.options.host.ns,
      sandboxImage: this.options.sandboxImage ?? PAUSE_IMAGE,
      cgroupRoot: this.cgroupRoot,
      crictl: await crictlBinary(),
      cniConflist: LOOPBACK_CONFLIST,
      spawn: (netns, argv, logFile) => network.spawnIn(netns, argv, {logFile}),
    })
    for (const image of images) await this.containerd.importImage(image.layout, image.name)
    await this.startKubelet()
    if (opts.register !== false) await this.registered()
  }

  /** Boots the node again after kill(): containerd and the kubelet on what they kept; eth0 as it is. */
  async restart(): Promise<void> {
    if (!this.containerd || this.stopped) throw new Error(`node ${this.name} is not started`)
    if (kubeletPids(this.dir).length > 0) throw new Error(`node ${this.name} still runs (kill() it first)`)
    await this.kubelet?.exited
    prepareCgroupRoot(this.cgroupRoot)
    await this.containerd.restart()
    await this.startKubelet()
    await this.registered()
  }

  private async startKubelet(): Promise<void> {
    // Every kubelet of the host listens for device plugins on one fixed path: it removes the file there, then
    // binds it. Two kubelets starting together can remove, remove, bind, bind, and the second bind fails
    // with EADDRINUSE, which stops that kubelet ("Failed to start ContainerManager"; seen in CI). So this
    // process starts one kubelet at a time, each once the one before has bound its socket.
    const previous = kubeletStarts
    let started!: () => void
    kubeletStarts = new Promise<void>((resolve) => (started = resolve))
    await previous
    try {
      await this.spawnKubelet()
    } finally {
      started()
    }
  }

  /** Throws, with the end of its log, once this node's kubelet has exited. */
  private assertKubeletRunning(): void {
    if (this.kubelet && !this.kubelet.running) throw new Error(`the kubelet of ${this.name} exited:\n${this.kubeletLogTail()}`)
  }

  private async spawnKubelet(): Promise<void> {
    const binDir = await resolveBinDir()
    const {host, network} = this.options
    const args = [
      join(binDir, 'kubelet'),
      `--config=${join(this.dir, 'kubelet.yaml')}`,
      `--kubeconfig=${this.options.kubeconfig}`,
      `--root-dir=${join(this.dir, 'kubelet')}`,
      // Not derived from the root dir: the default is /var/lib/kubelet/pki, shared by every node of the host.
      `--cert-dir=${join(this.dir, 'kubelet', 'pki')}`,
      `--hostname-override=${this.name}`,
      `--node-ip=${host.ip}`,
      `--v=${this.options.verbosity ?? 1}`,
    ]
    this.kubeletStartedAt = Date.now()
    this.kubelet = network.spawnIn(host.ns, args, {logFile: this.kubeletLog})
    const startedAt = this.kubeletStartedAt
    await waitFor(`the kubelet of ${this.name} listening for device plugins (${DEVICE_PLUGIN_SOCKET})`, 30_000, () => {
      this.assertKubeletRunning()
      try {
        return statSync(DEVICE_PLUGIN_SOCKET).mtimeMs >= startedAt
      } catch {
        return false
      }
    })
  }

  /** Waits for the kubelet to register its Node, and labels a control-plane node as kubeadm does. */
  async registered(timeoutMs = 60_000): Promise<void> {
    await waitFor(
      `node ${this.name} to register`,
      timeoutMs,
      async () => {
        this.assertKubeletRunning()
        return (await this.options.kubectl(['get', 'node', this.name, '-o', 'name'])).exitCode === 0
      },
      () => this.kubeletLogTail(),
    )
    if (this.role === 'control-plane') {
      const label = await this.options.kubectl(['label', 'node', this.name, `${CONTROL_PLANE_LABEL}=`, '--overwrite'])
      if (label.exitCode !== 0) throw new Error(`labelling node ${this.name}: ${label.stderr.trim()}`)
    }
  }

  private get role(): 'control-plane' | 'worker' {
    return this.options.role ?? 'control-plane'
  }

  private kubeletConfig(): string {
    const {servingCert} = this.options
    return stringify({
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      cgroupDriver: 'cgroupfs',
      cgroupRoot: `/${this.cgroupRoot}`,
      // This host mounts cgroup v1 controllers (hybrid layout); the kubelet refuses v1 unless told not to.
      failCgroupV1: false,
      failSwapOn: false,
      containerRuntimeEndpoint: `unix://${this.containerdSocket}`,
      // One per node: a kubelet's log GC removes files in its podLogsDir it does not know.
      podLogsDir: this.podLogsDir,
      staticPodPath: this.manifestsDir,
      // Its default is under /usr/libexec, which the kubelet would create.
      volumePluginDir: join(this.dir, 'volume-plugins'),
      authentication: {
        anonymous: {enabled: false},
        webhook: {enabled: true},
        x509: {clientCAFile: this.options.caFile},
      },
      authorization: {mode: 'Webhook'},
      registerNode: true,
      registerWithTaints: this.role === 'control-plane' ? [CONTROL_PLANE_TAINT] : [],
      ...(servingCert ? {tlsCertFile: servingCert.certFile, tlsPrivateKeyFile: servingCert.keyFile} : {}),
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      clusterDNS: this.options.clusterDNS ?? ['10.96.0.10'],
      clusterDomain: this.options.clusterDomain ?? 'cluster.local',
      // The lab's nodes share one disk and one memory: the defaults would evict pods or delete the imported
      // images (there is no registry to pull them back from).
      evictionHard: {
        'memory.available': '1Mi',
        'nodefs.available': '1%',
        'nodefs.inodesFree': '1%',
        'imagefs.available': '1%',
        'imagefs.inodesFree': '1%',
      },
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      // Tightening these only changes the host's defaults it checks; the lab puts the sysctls back instead.
      protectKernelDefaults: false,
    })
  }

  /** Waits for the Node Ready as this kubelet (since its last start) reported it through the API. */
  async waitReady(timeoutMs: number): Promise<void> {
    let last = ''
    // A Node stays Ready in the API for a while after its kubelet died: only a heartbeat from now counts.
    const since = Math.floor(this.kubeletStartedAt / 1000) * 1000
    await waitFor(
      `node ${this.name} Ready`,
      timeoutMs,
      async () => {
        this.assertKubeletRunning()
        const ready = (await this.node())?.status?.conditions?.find((c) => c.type === 'Ready')
        last = ready ? `${ready.status} ${ready.reason ?? ''} ${ready.message ?? ''} at ${ready.lastHeartbeatTime}` : 'no Ready condition'
        return ready?.status === 'True' && Date.parse(ready.lastHeartbeatTime ?? '') >= since
      },
      () => `last: ${last}\n${this.kubeletLogTail()}`,
    )
  }

  /** The Node object as the API has it, or undefined. */
  async node(): Promise<NodeObject | undefined> {
    const got = await this.options.kubectl(['get', 'node', this.name, '-o', 'json'])
    return got.exitCode === 0 ? (JSON.parse(got.stdout) as NodeObject) : undefined
  }

  /** Every process of this node now: the kubelet (and what it runs), containerd, shims, container processes. */
  pids(): number[] {
    const kubelet = kubeletPids(this.dir).flatMap((pid) => processTree(pid).filter((p) => !zombie(p)))
    return [...new Set([...kubelet, ...(this.containerd?.pids() ?? [])])]
  }

  rssKb(): number {
    return rssKb(this.pids())
  }

  /** The kubelet's pid, while it runs. */
  get kubeletPid(): number | undefined {
    return this.kubelet && kubeletPids(this.dir).includes(this.kubelet.pid) ? this.kubelet.pid : undefined
  }

  get containerdPid(): number | undefined {
    return this.containerd?.pids().includes(this.containerd.pid) ? this.containerd.pid : undefined
  }

  /** The node's containerd, e.g. for crictl. */
  get runtime(): Containerd {
    if (!this.containerd) throw new Error(`node ${this.name} is not started`)
    return this.containerd
  }

  /**
   * Power loss: SIGKILLs the kubelet, containerd, the shims and every container process at once, then drops
   * what a reboot loses (mounts, cgroups, runtime state). The network namespace and its addresses stay.
   */
  kill(): void {
    if (this.kubelet) killGroup(this.kubelet.pid, 'SIGKILL')
    const problems = [...(this.containerd?.kill() ?? []), ...this.killKubelets(), ...cleanUp(this.dir, this.cgroupRoot)]
    if (problems.length > 0) throw new Error(`killing node ${this.name} left: ${problems.join(', ')}`)
  }

  private killKubelets(): string[] {
    let left: number[] = []
    for (let round = 0; round < 50; round++) {
      left = kubeletPids(this.dir)
      if (left.length === 0) return []
      for (const pid of left) killPid(pid)
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100)
    }
    return left.map((pid) => `kubelet ${pid}`)
  }

  /** Stops the kubelet (SIGTERM), the pods through CRI and containerd, then removes everything of the node. */
  async stop(): Promise<void> {
    if (this.stopped) return
    const kubelet = this.kubelet
    if (kubelet?.running) {
      killGroup(kubelet.pid, 'SIGTERM')
      await Promise.race([kubelet.exited, sleep(10_000)])
    }
    const containerdStopped = this.containerd?.stop().then(
      () => undefined,
      (err: unknown) => err as Error,
    )
    const failure = await containerdStopped
    const problems = [...(failure ? [failure.message] : []), ...this.stopSync()]
    if (problems.length > 0) throw new Error(`node ${this.name} teardown left: ${problems.join(', ')}`)
  }

  /** SIGKILLs what is left of the node, unmounts, removes its cgroups and directory, puts the host back. */
  stopSync(): string[] {
    if (this.stopped) return []
    this.stopped = true
    this.untrack()
    if (this.kubelet) killGroup(this.kubelet.pid, 'SIGKILL')
    const problems = [...(this.containerd?.destroySync() ?? []), ...this.killKubelets(), ...cleanUp(this.dir, this.cgroupRoot)]
    problems.push(...this.releaseHost())
    if (problems.length === 0) {
      if (!process.env.KARP_LAB_KEEP) rmSync(this.dir, {recursive: true, force: true})
      rmSync(join(REGISTRY, `${this.cgroupRoot}.json`), {force: true})
      removeIfEmpty(REGISTRY)
      removeIfEmpty(dirname(REGISTRY))
    }
    return problems
  }

  kubeletLogTail(lines = 30): string {
    try {
      return readFileSync(this.kubeletLog, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
    } catch {
      return '(no kubelet log)'
    }
  }
}
