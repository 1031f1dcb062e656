// The real-node lab: a stacked HA Kubernetes cluster in network namespaces, as kubeadm builds one, on which
// karp is installed and failed over for real. Shared by test/e2e/journey.test.ts, bench/failover and
// `npm run lab` (lab/cli.ts).
//
//   <prefix>-br        the bridge (10.78.0.0/24), in a namespace of its own
//   <prefix>-node1..3  10.78.0.11-13, each a control-plane node: an etcd member (one 3-member cluster),
//                      kube-apiserver, kube-controller-manager, kube-scheduler (lab/control-plane.ts),
//                      containerd + runc and a kubelet registered as that node (lab/node.ts), kube-proxy
//                      (lab/kube-proxy.ts); the karp agent runs there as the DaemonSet's pod
//   <prefix>-worker1.. 10.78.0.21-: worker nodes, when asked for (kubelet, containerd, kube-proxy; no control
//                      plane, no label or taint of one), joined through node1's API server
//   <prefix>-client    10.78.0.100: the CLI under test, kubectl and the outage prober run here
//
// The VIP is 10.78.0.10. Nothing runs in the root namespace and nothing there connects to a lab address:
// this process drives the lab by starting processes inside the namespaces and reading files.
import {mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {resolveBinDir} from './binaries.js'
import {ControlPlane, controlPlaneSkipReason, SERVICE_CIDR} from './control-plane.js'
import {KubeProxy} from './kube-proxy.js'
import {KubeNode, nodeSkipReason, type CommandResult} from './node.js'
import {Network, type Host, type Proc} from './network.js'
import {parseProbes, type Probe} from './outage.js'
import {formatLogLines, PodLogKeeper} from './pod-logs.js'
import {killGroup, killPid, missingTools, processTree, rssKb, sleep, waitFor} from './process.js'
import {atTeardown} from './teardown.js'
import {DEFAULT_API_PORT} from '../src/lib/constants.js'

export const SUBNET = '10.78.0'
export const VIP = `${SUBNET}.10`
export const CLIENT_IP = `${SUBNET}.100`
const here = dirname(fileURLToPath(import.meta.url))
const repoRoot = resolve(here, '..')
const karpBin = join(repoRoot, 'bin', 'run.js')

/** Why the real-node lab cannot run here, or false. Under CI=true a missing prerequisite throws instead. */
export async function clusterSkipReason(): Promise<string | false> {
  const reason = controlPlaneSkipReason() || (await nodeSkipReason())
  if (reason) return reason
  if (missingTools(['iptables-restore']).length === 0) return false
  const missing = "the lab's kube-proxy needs iptables (bash scripts/setup.sh installs it)"
  if (process.env.CI === 'true') throw new Error(`CI=true and ${missing}`)
  return missing
}

export interface ClusterOptions {
  /** Control-plane nodes (default 3). */
  nodes?: number
  /** Worker nodes (default 0): the agent's DaemonSet must leave them alone. */
  workers?: number
  /** Nodes whose API server certificate lacks the VIP. */
  certWithoutVip?: string[]
  /**
   * A cluster bootstrapped on the VIP, as `karp bootstrap` sets one up: the VIP is every kubelet's API server
   * (kubeadm's controlPlaneEndpoint) and the client's. Before each node's kubelet starts, `staticPods` writes
   * that node's static pod manifests (the agent's); node1's control plane starts only once a node holds the
   * VIP, then nodes 2.. join it one by one (etcd member added, then their control plane). No workers.
   */
  bootstrap?: {staticPods: (cluster: Cluster, node: ClusterNode) => Promise<void>}
  /** Where everything goes; default a new temp dir, removed by stop(). */
  dir?: string
  log?: (line: string) => void
}

export interface ClusterNode {
  name: string
  host: Host
  kube: KubeNode
  proxy: KubeProxy
  /** Powered off by powerOff() and not on again yet. */
  down: boolean
}

export interface StartupSeconds {
  network: number
  controlPlane: number
  nodes: number
  total: number
}

/** CARP is IP protocol 112. */
const CARP_PROTOCOL = 112

export class Cluster {
  readonly vip = VIP
  /** The control-plane nodes. */
  readonly nodes: ClusterNode[] = []
  readonly workers: ClusterNode[] = []

  /** Control-plane nodes, then workers. */
  get allNodes(): ClusterNode[] {
    return [...this.nodes, ...this.workers]
  }

  isWorker(name: string): boolean {
    return this.workers.some((w) => w.name === name)
  }

  /** The client's kubeconfig (admin); it points at node1, as one copied from a control-plane node does. */
  readonly kubeconfig: string
  readonly clientNs: string
  startup: StartupSeconds = {network: 0, controlPlane: 0, nodes: 0, total: 0}
  /** A bootstrapped cluster (ClusterOptions.bootstrap): when node1's etcd, the first component of any control plane, started (ms since the epoch). */
  controlPlaneStartedAt?: number
  private cp?: ControlPlane
  private podLogs?: PodLogKeeper
  private stopped = false
  private untrack: () => void = () => {}
  private readonly ownsDir: boolean

  private constructor(
    readonly net: Network,
    readonly client: Host,
    readonly dir: string,
    readonly binDir: string,
    ownsDir: boolean,
    readonly log: (line: string) => void,
  ) {
    this.kubeconfig = join(dir, 'kubeconfig')
    this.clientNs = client.ns
    this.ownsDir = ownsDir
  }

  get controlPlane(): ControlPlane {
    if (!this.cp) throw new Error('the control plane is not up')
    return this.cp
  }

  static async start(opts: ClusterOptions = {}): Promise<Cluster> {
    const began = performance.now()
    const log = opts.log ?? (() => {})
    const binDir = await resolveBinDir()
    const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'karp-cluster-'))
    mkdirSync(dir, {recursive: true})
    const net = await Network.create('karpc', SUBNET)
    let cluster: Cluster | undefined
    const untrack = atTeardown(() => {
      if (cluster) cluster.stopSync()
      else net.destroySync()
    })
    try {
      const client = await net.addHost('client', 100)
      cluster = new Cluster(net, client, dir, binDir, opts.dir === undefined, log)
      cluster.untrack = untrack
      await cluster.build(opts, began)
      return cluster
    } catch (err) {
      if (cluster) await cluster.stop()
      else {
        untrack()
        await net.destroy()
      }
      throw err
    }
  }

  private async build(opts: ClusterOptions, began: number): Promise<void> {
    if (opts.bootstrap) return this.buildOnVip(opts, opts.bootstrap, began)
    const count = opts.nodes ?? 3
    const hosts: Host[] = []
    const workerHosts: Host[] = []
    for (let i = 1; i <= count + (opts.workers ?? 0); i++) {
      const worker = i > count
      const host = worker ? await this.net.addHost(`worker${i - count}`, 20 + i - count) : await this.net.addHost(`node${i}`, 10 + i)
      // A node's way to Service addresses, which kube-proxy then rewrites (a real node has its default route).
      await this.net.addRoute(host, SERVICE_CIDR)
      ;(worker ? workerHosts : hosts).push(host)
    }
    this.startup.network = seconds(began)
    this.log(`network up: ${[...hosts, ...workerHosts].map((h) => `${h.name} ${h.ip}`).join(', ')}, client ${this.client.ip}`)

    let phase = performance.now()
    this.cp = await ControlPlane.start({
      network: this.net,
      hosts,
      vip: this.vip,
      certWithoutVip: opts.certWithoutVip,
      dir: join(this.dir, 'control-plane'),
      binDir: this.binDir,
    })
    this.startup.controlPlane = seconds(phase)
    this.log(`control plane up in ${this.startup.controlPlane.toFixed(1)} s (etcd ${this.cp.startup.etcd.toFixed(1)} s)`)
    const first = hosts[0] as Host
    writeFileSync(this.kubeconfig, readFileSync(this.cp.adminKubeconfig(`https://${first.ip}:${DEFAULT_API_PORT}`)), {mode: 0o600})

    phase = performance.now()
    const proxyConfig = this.cp.clientKubeconfig('system:kube-proxy', [], `https://127.0.0.1:${DEFAULT_API_PORT}`)
    for (const host of hosts) {
      this.addControlPlaneNode(host, proxyConfig)
    }
    // A worker has no API server of its own: its kubelet and kube-proxy use node1's, as after a kubeadm join.
    const joinServer = `https://${first.ip}:${DEFAULT_API_PORT}`
    for (const host of workerHosts) {
      const kube = new KubeNode({
        network: this.net,
        host,
        kubeconfig: this.cp.clientKubeconfig(`system:node:${host.name}`, ['system:nodes'], joinServer),
        caFile: this.cp.caFile,
        kubectl: (args) => this.kubectl(args),
        dir: join(this.dir, host.name),
        role: 'worker',
      })
      const kubeconfig = this.cp.clientKubeconfig('system:kube-proxy', [], joinServer)
      const proxy = new KubeProxy({net: this.net, host, binDir: this.binDir, dir: join(this.dir, 'kube-proxy', host.name), kubeconfig})
      this.workers.push({name: host.name, host, kube, proxy, down: false})
    }
    await Promise.all(
      this.allNodes.map(async (n) => {
        await n.kube.start()
        n.proxy.start()
      }),
    )
    await Promise.all(this.allNodes.map((n) => n.kube.waitReady(60_000)))
    this.podLogs = new PodLogKeeper(
      this.allNodes.map((n) => ({node: n.name, dir: n.kube.podLogsDir})),
      (ns) => ns !== 'kube-system',
    )
    await this.markAsKubeadm()
    this.startup.nodes = seconds(phase)
    this.startup.total = seconds(began)
    this.log(`nodes Ready in ${this.startup.nodes.toFixed(1)} s; lab up in ${this.startup.total.toFixed(1)} s`)
  }

  /** ClusterOptions.bootstrap: the VIP first, then node1's control plane behind it, then the others join. */
  private async buildOnVip(opts: ClusterOptions, bootstrap: NonNullable<ClusterOptions['bootstrap']>, began: number): Promise<void> {
    if (opts.workers) throw new Error('a bootstrapped lab has no workers')
    const hosts: Host[] = []
    for (let i = 1; i <= (opts.nodes ?? 3); i++) {
      const host = await this.net.addHost(`node${i}`, 10 + i)
      await this.net.addRoute(host, SERVICE_CIDR)
      hosts.push(host)
    }
    this.startup.network = seconds(began)
    const endpoint = `https://${this.vip}:${DEFAULT_API_PORT}`
    const cp = await ControlPlane.create({
      network: this.net,
      hosts,
      vip: this.vip,
      endpoint,
      certWithoutVip: opts.certWithoutVip,
      dir: join(this.dir, 'control-plane'),
      binDir: this.binDir,
    })
    this.cp = cp
    writeFileSync(this.kubeconfig, readFileSync(cp.adminKubeconfig(endpoint)), {mode: 0o600})
    const proxyConfig = cp.clientKubeconfig('system:kube-proxy', [], `https://127.0.0.1:${DEFAULT_API_PORT}`)
    for (const host of hosts) {
      this.addControlPlaneNode(host, proxyConfig)
    }

    const phase = performance.now()
    const [first, ...others] = this.nodes as [ClusterNode, ...ClusterNode[]]
    await this.writeStaticPods(bootstrap, first)
    await first.kube.start({register: false})
    // What makes a bootstrapped cluster: the VIP is there before any API server (its kubelet registers through it).
    await waitFor('a node to hold the VIP before any API server runs', 60_000, async () => (await this.holders()).length > 0)
    this.controlPlaneStartedAt = Date.now()
    await cp.firstNode(first.name)
    await first.kube.registered()
    first.proxy.start()
    this.log(`${first.name}: VIP, control plane and registration through the VIP in ${seconds(phase).toFixed(1)} s`)
    for (const node of others) {
      await this.writeStaticPods(bootstrap, node)
      await node.kube.start({register: false})
      await cp.join(node.name)
      await node.kube.registered()
      node.proxy.start()
      this.log(`${node.name} joined through the VIP`)
    }
    await waitFor('both leader leases held', 60_000, async () => Object.values(await cp.leaseHolders(first.name)).every(Boolean))
    this.startup.controlPlane = seconds(phase)
    await Promise.all(this.nodes.map((n) => n.kube.waitReady(60_000)))
    this.podLogs = new PodLogKeeper(
      this.nodes.map((n) => ({node: n.name, dir: n.kube.podLogsDir})),
      () => true,
    )
    await this.markAsKubeadm()
    this.startup.nodes = seconds(phase)
    this.startup.total = seconds(began)
    this.log(`bootstrapped on the VIP: nodes Ready in ${this.startup.nodes.toFixed(1)} s; lab up in ${this.startup.total.toFixed(1)} s`)
  }

  /** A control-plane node (not started): its kubelet with the control plane's credentials for it, its kube-proxy. */
  private addControlPlaneNode(host: Host, proxyConfig: string): void {
    const credentials = this.controlPlane.kubeletCredentials(host.name)
    const kube = new KubeNode({
      network: this.net,
      host,
      kubeconfig: credentials.kubeconfig,
      caFile: credentials.caFile,
      kubectl: (args) => this.kubectl(args),
      dir: join(this.dir, host.name),
    })
    const proxy = new KubeProxy({
      net: this.net,
      host,
      binDir: this.binDir,
      dir: join(this.dir, 'kube-proxy', host.name),
      kubeconfig: proxyConfig,
    })
    this.nodes.push({name: host.name, host, kube, proxy, down: false})
  }

  private async writeStaticPods(bootstrap: NonNullable<ClusterOptions['bootstrap']>, node: ClusterNode): Promise<void> {
    mkdirSync(node.kube.manifestsDir, {recursive: true, mode: 0o700})
    await bootstrap.staticPods(this, node)
  }

  /** What kubeadm puts on the control-plane nodes it sets up (and how `karp check-cert` recognises kubeadm). */
  private async markAsKubeadm(): Promise<void> {
    const names = this.nodes.map((n) => n.name)
    for (const args of [
      ['label', 'node', ...names, 'node.kubernetes.io/exclude-from-external-load-balancers=', '--overwrite'],
      ['annotate', 'node', ...names, 'kubeadm.alpha.kubernetes.io/cri-socket=unix:///var/run/containerd/containerd.sock', '--overwrite'],
    ]) {
      const r = await this.kubectl(args)
      if (r.exitCode !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr.trim()}`)
    }
  }

  /** A control-plane or worker node by name. */
  node(name: string): ClusterNode {
    const node = this.allNodes.find((n) => n.name === name)
    if (!node) throw new Error(`no lab node ${name} (nodes: ${this.allNodes.map((n) => n.name).join(', ')})`)
    return node
  }

  /** The CLI under test, as a user runs it, inside the client namespace. */
  karp(args: string[], timeoutMs = 180_000): Promise<CommandResult> {
    return this.inClient([process.execPath, karpBin, ...args], timeoutMs)
  }

  /** The CLI under test run on a node, as root there runs it (karp bootstrap writes the node's files). */
  karpOnNode(name: string, args: string[], timeoutMs = 60_000): Promise<CommandResult> {
    const home = join(this.dir, `${name}-home`)
    mkdirSync(home, {recursive: true})
    return this.net.exec(this.node(name).host.ns, [process.execPath, karpBin, ...args], {env: {HOME: home, NO_COLOR: '1'}, timeoutMs})
  }

  /**
   * The CLI under test left running in the client namespace (e.g. status --watch): what it printed so far
   * (stdout and stderr), and stop, which interrupts it as Ctrl-C does and returns everything it printed.
   */
  startKarp(args: string[]): {output: () => string; stop: () => Promise<string>} {
    const out = join(this.dir, `karp-${Date.now()}.log`)
    writeFileSync(out, '')
    const proc = this.net.spawnIn(this.clientNs, [process.execPath, karpBin, ...args], {logFile: out, env: this.clientEnv()})
    const output = () => readFileSync(out, 'utf8')
    return {
      output,
      stop: async () => {
        await interrupt(proc, 'SIGINT', 5000)
        return output()
      },
    }
  }

  /** kubectl of the cluster's version in the client namespace, with the client's kubeconfig. */
  kubectl(args: string[], timeoutMs = 30_000): Promise<CommandResult> {
    return this.inClient([join(this.binDir, 'kubectl'), '--kubeconfig', this.kubeconfig, ...args], timeoutMs)
  }

  /** Runs a command in the client namespace, with the client's kubeconfig and a home of its own. */
  inClient(command: string[], timeoutMs: number): Promise<CommandResult> {
    return this.net.exec(this.clientNs, command, {env: this.clientEnv(), timeoutMs})
  }

  /** What a user's shell on the client machine has: the client's kubeconfig, a home of its own, no colour. */
  clientEnv(): Record<string, string> {
    const home = join(this.dir, 'client-home')
    mkdirSync(home, {recursive: true})
    return {HOME: home, KUBECONFIG: this.kubeconfig, NO_COLOR: '1'}
  }

  /**
   * Nodes that hold the VIP now: powered and with the VIP on eth0. (A node powered off keeps it on its eth0,
   * unheard; it counts again as soon as its link is back.)
   */
  async holders(): Promise<string[]> {
    const held = await Promise.all(
      this.nodes.map(async (n) => (!n.down && (await this.net.hasAddress(n.host, this.vip)) ? n.name : undefined)),
    )
    return held.filter((n): n is string => n !== undefined)
  }

  /**
   * Drops CARP advertisements to and from the node where its cable meets the switch (the lab's bridge): it
   * hears no master and sends unheard, while everything else (its kubelet, API server, etcd, role reports)
   * goes on. ucarp captures and sends on a packet socket, which the node's own iptables would not see.
   * `false` lets them through again (the partition heals).
   */
  async carpCut(name: string, cut: boolean): Promise<void> {
    const port = this.node(name).host.port
    for (const direction of ['-i', '-o']) {
      const rule = ['FORWARD', direction, port, '-p', 'IPv4', '--ip-proto', String(CARP_PROTOCOL), '-j', 'DROP']
      const run = await this.net.exec(this.net.brNs, ['ebtables', cut ? '-A' : '-D', ...rule])
      if (run.exitCode !== 0) throw new Error(`ebtables ${rule.join(' ')}: exit ${run.exitCode}: ${run.stderr.trim()}`)
    }
  }

  /** The node whose MAC address the client's neighbour table holds for the VIP. */
  async clientArpNode(): Promise<string | undefined> {
    const mac = await this.net.neighbour(this.clientNs, this.vip)
    return this.nodes.find((n) => n.host.mac === mac)?.name ?? (mac ? `unknown ${mac}` : undefined)
  }

  /**
   * Power loss: every process of the node dies at once (etcd member, API server, controller-manager,
   * scheduler, kubelet, containerd, its containers, kube-proxy) and its link goes down. The lab leaves eth0
   * as it was: a VIP it held stays until its lease (the agent's address lifetime) runs out.
   */
  async powerOff(name: string): Promise<void> {
    const n = this.node(name)
    n.down = true
    await this.net.cutLink(n.host)
    n.kube.kill()
    await Promise.all([this.nodes.includes(n) ? this.controlPlane.killNode(name) : undefined, n.proxy.kill()])
    for (const pid of this.net.pidsIn(n.host.ns)) killGroup(pid, 'SIGKILL')
  }

  /**
   * The node comes back: link up, then its control plane (the etcd member rejoins from its data), containerd,
   * kubelet and kube-proxy start again on their state, and the kubelet restarts its pods. eth0 keeps what
   * it had: a VIP whose lease has not run out yet comes back with it, until the agent removes it.
   */
  async powerOn(name: string): Promise<void> {
    const n = this.node(name)
    await this.net.restoreLink(n.host)
    n.down = false
    if (this.nodes.includes(n)) await this.controlPlane.startNode(name)
    await n.kube.restart()
    n.proxy.start()
  }

  /**
   * An agent crash: SIGKILL, from the host, to every process of the node's running karp agent container
   * (from inside the container the entrypoint is its PID namespace's init, which ignores SIGKILL).
   */
  async killAgent(name: string): Promise<number> {
    const runtime = this.node(name).kube.runtime
    const ids = (await runtime.crictl(['ps', '--name', '^agent$', '--state', 'running', '-q'])).stdout.split('\n').filter(Boolean)
    if (ids.length !== 1) throw new Error(`${name} runs ${ids.length} agent containers, not one`)
    const processes = await runtime.processes(ids[0] as string)
    for (const p of processes) killPid(p.pid, 'SIGKILL')
    return processes.length
  }

  /** SIGKILL to the node's kube-apiserver only. */
  killApiServer(name: string): Promise<void> {
    return this.controlPlane.killApiServer(name)
  }

  async startApiServer(name: string, timeoutMs = 60_000): Promise<void> {
    this.controlPlane.startApiServer(name)
    await this.controlPlane.waitReady(name, timeoutMs)
  }

  /**
   * Starts lab/api-prober.ts in the client namespace: GET /readyz through `server` (default: the VIP) with
   * the client kubeconfig's credentials every `intervalMs`. stop() ends it and returns every probe.
   */
  startProbe(opts: {server?: string; intervalMs?: number} = {}): {stop: () => Promise<Probe[]>} {
    const out = join(this.dir, `probe-${Date.now()}.log`)
    writeFileSync(out, '')
    const proc: Proc = this.net.spawnIn(
      this.clientNs,
      [
        process.execPath,
        '--no-warnings',
        join(here, 'api-prober.ts'),
        this.kubeconfig,
        opts.server ?? `https://${this.vip}:${DEFAULT_API_PORT}`,
        String(opts.intervalMs ?? 50),
        '1000',
      ],
      {logFile: out, cwd: repoRoot},
    )
    return {
      stop: async () => {
        await interrupt(proc, 'SIGTERM', 3000)
        return parseProbes(readFileSync(out, 'utf8'))
      },
    }
  }

  /** RSS (kB) of every process in the node's namespace (control plane, kubelet, containerd, pods). */
  nodeRssKb(name: string): number {
    const n = this.node(name)
    return rssKb(
      this.net
        .pidsIn(n.host.ns)
        .flatMap((pid) => processTree(pid))
        .filter((p, i, all) => all.indexOf(p) === i),
    )
  }

  /**
   * What the pods (outside kube-system) printed since `since` (ms since the epoch), in time order, one line
   * each with the node and pod: kept even for pods deleted since (a roll-out, a drain).
   */
  podLogsSince(since: number): string {
    return formatLogLines(this.podLogs?.lines(since) ?? [])
  }

  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.podLogs?.stop()
    this.untrack()
    for (const n of this.allNodes) await n.proxy.kill()
    for (const n of this.allNodes) await n.kube.stop()
    await this.cp?.stop()
    await this.net.destroy()
    if (this.ownsDir && !process.env.KARP_LAB_KEEP) rmSync(this.dir, {recursive: true, force: true})
  }

  /** What must go even when this process is on its way out (exit hook): no awaits. */
  stopSync(): void {
    if (this.stopped) return
    this.stopped = true
    this.podLogs?.stop()
    for (const n of this.allNodes) n.kube.stopSync()
    this.cp?.stopSync()
    this.net.destroySync()
    if (this.ownsDir && !process.env.KARP_LAB_KEEP) rmSync(this.dir, {recursive: true, force: true})
  }
}

/** Asks a process to end with `signal`; whatever of its group is left after `graceMs` is killed. */
async function interrupt(proc: Proc, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  killPid(proc.pid, signal)
  await Promise.race([proc.exited, sleep(graceMs)])
  killGroup(proc.pid, 'SIGKILL')
}

function seconds(since: number): number {
  return (performance.now() - since) / 1000
}
