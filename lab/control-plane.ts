// The lab's Kubernetes control plane, stacked like kubeadm's: every control-plane node (a network namespace
// of lab/network.ts) runs an etcd member of one cluster, a kube-apiserver on 0.0.0.0:6443 that talks to its
// local member, and a kube-controller-manager and kube-scheduler (leader-elected) that talk to the local API
// server. One PKI as kubeadm lays it out: a cluster CA, an etcd CA, a front-proxy CA and a service-account
// key pair shared by all nodes; per node the certificates of its components.
//
// Every component runs through `Network.spawnIn` (nsenter --net) in a UTS namespace of its own named after
// the node, so leader-election identities and the API servers' identity leases tell the nodes apart (they
// are derived from the hostname). The wrappers exec, so each recorded pid is the component's own.
//
// Layout under `dir`:
//   pki/            ca, etcd-ca, front-proxy-ca, sa.key/sa.pub, admin (system:masters)
//   <node>/pki/     apiserver (serving), apiserver-etcd-client, apiserver-kubelet-client, front-proxy-client,
//                   etcd-server, etcd-peer, kubelet-client (system:node:<node>)
//   <node>/         controller-manager.conf, scheduler.conf, kubelet.conf, admin.conf, <component>.log
//   <node>/etcd/    the member's data, kept across killNode/startNode
import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {stringify} from 'yaml'
import {resolveBinDir} from './binaries.js'
import type {Host, Network, Proc} from './network.js'
import {createCa, issueClientCert, issueServingCert, rsaKeyPem, writeKeyPair, type CertificateAuthority, type KeyPair} from './pki.js'
import {killGroup, missingTools, processTree, rssKb, waitFor} from './process.js'
import {atTeardown} from './teardown.js'
import {DEFAULT_API_PORT} from '../src/lib/constants.js'

export type Component = 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler'
export const COMPONENTS: readonly Component[] = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler']

export const ETCD_CLIENT_PORT = 2379
export const ETCD_PEER_PORT = 2380
/** etcd's plain-HTTP /health and /metrics, on each node's loopback only (as kubeadm's liveness probe uses). */
const ETCD_METRICS = 'http://127.0.0.1:2381'
export const SERVICE_CIDR = '10.96.0.0/12'
/** The `kubernetes` Service's cluster IP: the first address of SERVICE_CIDR. */
export const SERVICE_IP = '10.96.0.1'
const API_SERVER_NAMES = ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local']
const SA_ISSUER = 'https://kubernetes.default.svc.cluster.local'
/** The leases kube-controller-manager and kube-scheduler elect their leader with (namespace kube-system). */
export const LEADER_LEASES = ['kube-controller-manager', 'kube-scheduler'] as const

export interface ControlPlaneOptions {
  network: Network
  /** The control-plane nodes (hosts of `network`); each runs all four components. */
  hosts: Host[]
  /** The floating address: a SAN of every API server's serving certificate, except on `certWithoutVip`. */
  vip: string
  /** Names of nodes whose serving certificate lacks the VIP (so a check of it fails for real). */
  certWithoutVip?: string[]
  /** Everything goes here (layout above). Default: a new temp dir, removed by stop(); a given dir is left to the caller. */
  dir?: string
  /** The Kubernetes binaries; default: resolveBinDir(). */
  binDir?: string
  /** Hang guard for start(); default 240 s. */
  timeoutMs?: number
  /**
   * kubeadm's controlPlaneEndpoint, e.g. https://<vip>:6443: the kubelets' kubeconfigs point there instead of
   * at their own node's API server. Default: their own node's.
   */
  endpoint?: string
}

/** What a kubelet of a control-plane node needs from the control plane. */
export interface KubeletCredentials {
  /** Kubeconfig as `system:node:<name>` (group system:nodes) with the server https://<node ip>:6443. */
  kubeconfig: string
  /** The cluster CA: verifies the API server, and is the kubelet's client CA (--client-ca-file). */
  caFile: string
  /** The same client certificate and key as files. */
  certFile: string
  keyFile: string
  server: string
}

/** TLS files a client of a node's etcd member presents (that node's apiserver-etcd-client certificate). */
export interface EtcdClientTls {
  caFile: string
  certFile: string
  keyFile: string
}

/** Seconds each start phase took. */
export interface StartupTimes {
  pki: number
  /** From spawning the three members to all reporting healthy (quorum). */
  etcd: number
  /** From spawning the API servers to every /readyz ok. */
  apiServers: number
  /** From spawning the controller-managers and schedulers to both leases held. */
  controllers: number
  total: number
}

interface NodeState {
  host: Host
  dir: string
  argv: Record<Component, string[]>
  procs: Partial<Record<Component, Proc>>
  /** Components killed on purpose: their exit is no failure. */
  killed: Set<Component>
}

export class ControlPlane {
  /** The cluster CA certificate (PEM file). */
  readonly caFile: string
  readonly caPem: string
  readonly binDir: string
  readonly dir: string
  /** Every pid this control plane ever started, in order. */
  readonly startedPids: number[] = []
  /** "<node> <component> exited with …" for each component that ended without being killed. */
  readonly unexpectedExits: string[] = []
  startup: StartupTimes = {pki: 0, etcd: 0, apiServers: 0, controllers: 0, total: 0}

  private readonly nodes = new Map<string, NodeState>()
  /** The etcd members a staged control plane (create()) has started, in order. */
  private readonly members: string[] = []
  private readonly ca: CertificateAuthority
  private readonly admin: KeyPair
  private readonly ownsDir: boolean
  private untrack: () => void = () => {}
  private stopped = false

  private constructor(
    private readonly opts: ControlPlaneOptions,
    binDir: string,
  ) {
    this.binDir = binDir
    this.ownsDir = opts.dir === undefined
    this.dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'karp-control-plane-'))
    const began = performance.now()
    const pki = this.writePki()
    this.caFile = pki.caFile
    this.caPem = pki.ca.certPem
    this.ca = pki.ca
    this.admin = pki.admin
    this.startup.pki = seconds(began)
  }

  /**
   * Writes the PKI and brings the whole control plane up: every etcd member at once (they wait for each
   * other), then the API servers, then the controller-managers and schedulers; resolves when every API
   * server's /readyz is ok and both leader leases are held. Registers stopSync() with atTeardown.
   */
  static async start(opts: ControlPlaneOptions): Promise<ControlPlane> {
    const binDir = opts.binDir ?? (await resolveBinDir())
    const began = performance.now()
    const cp = new ControlPlane(opts, binDir)
    cp.untrack = atTeardown(() => cp.stopSync())
    const timeoutMs = opts.timeoutMs ?? 240_000
    const deadline = Date.now() + timeoutMs
    const left = () => Math.max(1000, deadline - Date.now())
    try {
      const names = [...cp.nodes.keys()]
      let phase = performance.now()
      for (const name of names) cp.spawn(name, 'etcd')
      await Promise.all(names.map((name) => cp.waitEtcdHealthy(name, left())))
      cp.startup.etcd = seconds(phase)

      phase = performance.now()
      for (const name of names) cp.spawn(name, 'kube-apiserver')
      await Promise.all(names.map((name) => cp.waitReady(name, left())))
      cp.startup.apiServers = seconds(phase)

      phase = performance.now()
      for (const name of names) {
        cp.spawn(name, 'kube-controller-manager')
        cp.spawn(name, 'kube-scheduler')
      }
      const first = names[0] as string
      await waitFor(
        'both leader leases held',
        left(),
        async () => {
          cp.throwOnCrash(first)
          return Object.values(await cp.leaseHolders(first)).every(Boolean)
        },
        undefined,
        500,
      )
      cp.startup.controllers = seconds(phase)
      cp.startup.total = seconds(began)
      return cp
    } catch (err) {
      await cp.stop()
      throw err
    }
  }

  /**
   * Writes the PKI and starts nothing: a cluster that grows node by node, as kubeadm builds one. firstNode()
   * brings up the first node's control plane on an etcd cluster of one member, join() each further node's,
   * its member added to the running cluster first. Registers stopSync() with atTeardown.
   */
  static async create(opts: ControlPlaneOptions): Promise<ControlPlane> {
    const cp = new ControlPlane(opts, opts.binDir ?? (await resolveBinDir()))
    cp.untrack = atTeardown(() => cp.stopSync())
    return cp
  }

  /** `kubeadm init`: the node's etcd as a cluster of one, then its API server (ready), controller-manager and scheduler. */
  async firstNode(name: string, timeoutMs = 120_000): Promise<void> {
    if (this.members.length > 0) throw new Error(`the control plane has members already: ${this.members.join(', ')}`)
    await this.bringUp(name, 'new', timeoutMs)
  }

  /**
   * `kubeadm join --control-plane`: adds the node's etcd member through a running member as a learner (as
   * kubeadm does: a voting member added to a cluster of one would cost it quorum until the new member has
   * caught up, and with it every API server's readiness), starts it with the cluster's members, promotes it
   * once it is in sync, then starts the node's API server (ready), controller-manager and scheduler.
   */
  async join(name: string, timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    const via = this.members.find((m) => this.node(m).procs.etcd?.running)
    if (!via) throw new Error(`no running etcd member to join ${name} through (members: ${this.members.join(', ') || 'none'})`)
    const {host} = this.node(name)
    const added = await this.etcdApi(via, 'member/add', {peerURLs: [`https://${host.ip}:${ETCD_PEER_PORT}`], isLearner: true})
    const id = (JSON.parse(added) as {member?: {ID?: string}}).member?.ID
    if (!id) throw new Error(`etcd member add ${name} via ${via}: no member ID in ${added}`)
    await this.bringUp(name, 'existing', Math.max(1000, deadline - Date.now()), async () => {
      let last = ''
      await waitFor(
        `${name}'s etcd member promoted from learner`,
        Math.max(1000, deadline - Date.now()),
        async () => {
          try {
            await this.etcdApi(via, 'member/promote', {ID: id})
            return true
          } catch (err) {
            last = (err as Error).message
            return false
          }
        },
        () => last,
        500,
      )
    })
  }

  /** POSTs to etcd's v3 cluster API (JSON gateway) from inside member `via`'s namespace; the answer's body. */
  async etcdApi(via: string, path: string, body: object): Promise<string> {
    const tls = this.etcdClientTls(via)
    const command = [
      'curl',
      '-sS',
      '--fail-with-body',
      '--max-time',
      '10',
      '--cacert',
      tls.caFile,
      '--cert',
      tls.certFile,
      '--key',
      tls.keyFile,
    ]
    command.push('-X', 'POST', `https://127.0.0.1:${ETCD_CLIENT_PORT}/v3/cluster/${path}`, '-d', JSON.stringify(body))
    const r = await this.opts.network.exec(this.node(via).host.ns, command, {timeoutMs: 15_000})
    if (r.exitCode !== 0) throw new Error(`etcd ${path} via ${via}: ${(r.stdout + r.stderr).trim()}`)
    return r.stdout
  }

  private async bringUp(name: string, clusterState: 'new' | 'existing', timeoutMs: number, promote?: () => Promise<void>): Promise<void> {
    const deadline = Date.now() + timeoutMs
    const left = () => Math.max(1000, deadline - Date.now())
    this.members.push(name)
    const initialCluster = this.members.map((m) => `${m}=https://${this.node(m).host.ip}:${ETCD_PEER_PORT}`).join(',')
    const node = this.node(name)
    node.argv.etcd = node.argv.etcd.map((arg) =>
      arg.startsWith('--initial-cluster=')
        ? `--initial-cluster=${initialCluster}`
        : arg.startsWith('--initial-cluster-state=')
          ? `--initial-cluster-state=${clusterState}`
          : arg,
    )
    this.spawn(name, 'etcd')
    await this.waitEtcdHealthy(name, left())
    await promote?.()
    this.spawn(name, 'kube-apiserver')
    await this.waitReady(name, left())
    this.spawn(name, 'kube-controller-manager')
    this.spawn(name, 'kube-scheduler')
  }

  /** Node names, in the order of `hosts`. */
  get nodeNames(): string[] {
    return [...this.nodes.keys()]
  }

  /** https://<node ip>:6443 */
  server(name: string): string {
    return `https://${this.node(name).host.ip}:${DEFAULT_API_PORT}`
  }

  /** A kubeconfig file as an admin (group system:masters) for `server`, e.g. https://<vip>:6443; written once per server. */
  adminKubeconfig(server: string): string {
    const url = new URL(server)
    const file = join(this.dir, `admin@${url.hostname}_${url.port || '443'}.conf`)
    writeKubeconfig(file, server, this.caPem, 'kubernetes-admin', this.admin)
    return file
  }

  /**
   * A kubeconfig file for `user` in `groups` (a client certificate the cluster CA signs now) with `server`,
   * e.g. system:kube-proxy; written once per user and server.
   */
  clientKubeconfig(user: string, groups: string[], server: string): string {
    const url = new URL(server)
    const file = join(this.dir, `${user.replaceAll(':', '-')}@${url.hostname}_${url.port || '443'}.conf`)
    if (!existsSync(file)) writeKubeconfig(file, server, this.caPem, user, issueClientCert(this.ca, user, groups))
    return file
  }

  /**
   * Gives the node's API server a new serving certificate carrying the VIP, as a user does after `karp
   * check-cert` (kubeadm: certSANs, then a new apiserver certificate). kube-apiserver reloads it from disk.
   */
  reissueServingCert(name: string): void {
    const node = this.node(name)
    writeKeyPair(join(node.dir, 'pki', 'apiserver'), apiServerCert(this.ca, node.host, this.opts.vip))
  }

  /** The kubelet's credentials on control-plane node `name` (its own API server, as kubeadm's control-plane kubelets use). */
  kubeletCredentials(name: string): KubeletCredentials {
    const dir = this.node(name).dir
    return {
      kubeconfig: join(dir, 'kubelet.conf'),
      caFile: this.caFile,
      certFile: join(dir, 'pki', 'kubelet-client.crt'),
      keyFile: join(dir, 'pki', 'kubelet-client.key'),
      server: this.opts.endpoint ?? this.server(name),
    }
  }

  etcdClientTls(name: string): EtcdClientTls {
    const pki = join(this.node(name).dir, 'pki')
    return {
      caFile: join(this.dir, 'pki', 'etcd-ca.crt'),
      certFile: join(pki, 'apiserver-etcd-client.crt'),
      keyFile: join(pki, 'apiserver-etcd-client.key'),
    }
  }

  logFile(name: string, component: Component): string {
    return join(this.node(name).dir, `${component}.log`)
  }

  /** The pids of the node's components that run now. */
  pids(name: string): Partial<Record<Component, number>> {
    const pids: Partial<Record<Component, number>> = {}
    for (const [component, proc] of Object.entries(this.node(name).procs)) if (proc.running) pids[component as Component] = proc.pid
    return pids
  }

  /** RSS (kB) of each running component of the node. */
  memoryKb(name: string): Partial<Record<Component, number>> {
    const rss: Partial<Record<Component, number>> = {}
    for (const [component, pid] of Object.entries(this.pids(name))) rss[component as Component] = rssKb(processTree(pid))
    return rss
  }

  /** Runs kubectl in the node's namespace, by default as admin against that node's own API server. */
  async kubectl(name: string, args: string[], opts: {kubeconfig?: string; timeoutMs?: number} = {}) {
    const node = this.node(name)
    const kubeconfig = opts.kubeconfig ?? join(node.dir, 'admin.conf')
    return this.opts.network.exec(
      node.host.ns,
      [join(this.binDir, 'kubectl'), `--kubeconfig=${kubeconfig}`, `--cache-dir=${join(node.dir, 'kubectl-cache')}`, ...args],
      {timeoutMs: opts.timeoutMs ?? 15_000},
    )
  }

  /** holderIdentity ("<node>_<uuid>") of each leader lease, '' when unheld; asked through node `via`'s API server. */
  async leaseHolders(via: string): Promise<Record<(typeof LEADER_LEASES)[number], string>> {
    const holders = {'kube-controller-manager': '', 'kube-scheduler': ''}
    const result = await this.kubectl(via, ['-n', 'kube-system', 'get', 'lease', ...LEADER_LEASES, '--ignore-not-found', '-o', 'json'])
    if (result.exitCode !== 0) return holders
    const list = JSON.parse(result.stdout || '{"items":[]}') as {items: {metadata: {name: string}; spec?: {holderIdentity?: string}}[]}
    for (const lease of list.items) {
      if (lease.metadata.name in holders) holders[lease.metadata.name as keyof typeof holders] = lease.spec?.holderIdentity ?? ''
    }
    return holders
  }

  /** Polls GET /readyz on the node's API server from inside its namespace until it answers ok. */
  async waitReady(name: string, timeoutMs: number): Promise<void> {
    let last = ''
    await waitFor(
      `${name}'s kube-apiserver /readyz`,
      timeoutMs,
      async () => {
        this.throwOnCrash(name, ['etcd', 'kube-apiserver'])
        const result = await this.kubectl(name, ['get', '--raw', '/readyz'], {timeoutMs: 10_000})
        last = (result.stdout + result.stderr).trim().split('\n').slice(-3).join(' | ')
        return result.exitCode === 0 && result.stdout.trim() === 'ok'
      },
      () => last,
      500,
    )
  }

  /** SIGKILLs every component of the node (its etcd data stays). */
  async killNode(name: string): Promise<void> {
    await Promise.all(COMPONENTS.map((component) => this.kill(name, component)))
  }

  /**
   * Brings the node's components back: its etcd member rejoins from its data dir (the node's link must be
   * up: this waits for the member to be healthy), then the API server, controller-manager and scheduler.
   * Does not wait for the API server: waitReady() does.
   */
  async startNode(name: string, etcdTimeoutMs = 60_000): Promise<void> {
    this.spawn(name, 'etcd')
    await this.waitEtcdHealthy(name, etcdTimeoutMs)
    for (const component of COMPONENTS.slice(1)) this.spawn(name, component)
  }

  async killApiServer(name: string): Promise<void> {
    await this.kill(name, 'kube-apiserver')
  }

  /** Starts the node's API server again (waitReady() waits for it). */
  startApiServer(name: string): void {
    this.spawn(name, 'kube-apiserver')
  }

  /** SIGKILLs one component of the node and waits for it to be gone; nothing when it does not run. */
  async kill(name: string, component: Component): Promise<void> {
    const node = this.node(name)
    const proc = node.procs[component]
    if (!proc?.running) return
    node.killed.add(component)
    killGroup(proc.pid, 'SIGKILL')
    await proc.exited
  }

  /** Starts one component of the node with the flags it was first started with; nothing when it runs. */
  spawn(name: string, component: Component): Proc {
    const node = this.node(name)
    const running = node.procs[component]
    if (running?.running) return running
    node.killed.delete(component)
    // A UTS namespace named after the node; `exec` keeps the pid the component's own.
    const command = [
      'unshare',
      '--uts',
      '--',
      'sh',
      '-c',
      'hostname "$0" && exec "$@"',
      name,
      join(this.binDir, component),
      ...node.argv[component],
    ]
    const proc = this.opts.network.spawnIn(node.host.ns, command, {logFile: this.logFile(name, component)})
    node.procs[component] = proc
    this.startedPids.push(proc.pid)
    void proc.exited.then((code) => {
      if (!node.killed.has(component) && !this.stopped)
        this.unexpectedExits.push(`${name} ${component} (pid ${proc.pid}) exited with ${code ?? 'a signal'}`)
    })
    return proc
  }

  /** SIGKILLs every component and waits for them; removes the directory if this control plane made it. */
  async stop(): Promise<void> {
    const procs = this.allProcs()
    this.stopSync()
    await Promise.all(procs.map((p) => p.exited))
  }

  /** stop() without waiting, for exit hooks. */
  stopSync(): void {
    if (this.stopped) return
    this.stopped = true
    this.untrack()
    for (const proc of this.allProcs()) killGroup(proc.pid, 'SIGKILL')
    if (this.ownsDir) rmSync(this.dir, {recursive: true, force: true})
  }

  private allProcs(): Proc[] {
    return [...this.nodes.values()].flatMap((node) => Object.values(node.procs).filter((p) => p.running))
  }

  private node(name: string): NodeState {
    const node = this.nodes.get(name)
    if (!node) throw new Error(`no control-plane node ${name}`)
    return node
  }

  /** Throws with its log's tail when one of `components` of the node ended without being killed. */
  private throwOnCrash(name: string, components: readonly Component[] = COMPONENTS): void {
    const node = this.node(name)
    for (const component of components) {
      const proc = node.procs[component]
      if (proc && !proc.running && !node.killed.has(component)) {
        throw new Error(
          `${name}'s ${component} exited; last lines of ${this.logFile(name, component)}:\n${logTail(this.logFile(name, component))}`,
        )
      }
    }
  }

  /** The member answers /health: it runs and its cluster has a leader (quorum). */
  private async waitEtcdHealthy(name: string, timeoutMs: number): Promise<void> {
    const ns = this.node(name).host.ns
    let last = ''
    await waitFor(
      `${name}'s etcd member healthy`,
      timeoutMs,
      async () => {
        this.throwOnCrash(name, ['etcd'])
        const result = await this.opts.network.exec(ns, ['curl', '-sS', '--max-time', '3', `${ETCD_METRICS}/health`], {timeoutMs: 5000})
        last = (result.stdout + result.stderr).trim()
        return result.exitCode === 0 && (JSON.parse(result.stdout) as {health?: string}).health === 'true'
      },
      () => last,
      300,
    )
  }

  private writePki(): {ca: CertificateAuthority; caFile: string; admin: KeyPair} {
    const {hosts, vip} = this.opts
    const pkiDir = join(this.dir, 'pki')
    mkdirSync(pkiDir, {recursive: true})
    const ca = createCa('kubernetes')
    const etcdCa = createCa('etcd-ca')
    const frontProxyCa = createCa('front-proxy-ca')
    const caFile = writeKeyPair(join(pkiDir, 'ca'), ca).certFile
    const etcdCaFile = writeKeyPair(join(pkiDir, 'etcd-ca'), etcdCa).certFile
    const frontProxyCaFile = writeKeyPair(join(pkiDir, 'front-proxy-ca'), frontProxyCa).certFile
    const caKeyFile = join(pkiDir, 'ca.key')
    const sa = rsaKeyPem()
    const saKey = join(pkiDir, 'sa.key')
    const saPub = join(pkiDir, 'sa.pub')
    writeFileSync(saKey, sa.privatePem, {mode: 0o600})
    writeFileSync(saPub, sa.publicPem)
    const admin = issueClientCert(ca, 'kubernetes-admin', ['system:masters'])
    writeKeyPair(join(pkiDir, 'admin'), admin)

    const initialCluster = hosts.map((h) => `${h.name}=https://${h.ip}:${ETCD_PEER_PORT}`).join(',')
    const withoutVip = new Set(this.opts.certWithoutVip ?? [])
    for (const unknown of withoutVip) if (!hosts.some((h) => h.name === unknown)) throw new Error(`certWithoutVip: no node ${unknown}`)

    for (const host of hosts) {
      const dir = join(this.dir, host.name)
      const pki = join(dir, 'pki')
      mkdirSync(pki, {recursive: true})
      const server = `https://${host.ip}:${DEFAULT_API_PORT}`
      const issue = (file: string, pair: KeyPair) => writeKeyPair(join(pki, file), pair)

      const memberNames = [host.name, 'localhost', host.ip, '127.0.0.1']
      const etcdServer = issue('etcd-server', issueServingCert(etcdCa, host.name, memberNames, {clientAuth: true}))
      const etcdPeer = issue('etcd-peer', issueServingCert(etcdCa, host.name, memberNames, {clientAuth: true}))
      const etcdClient = issue('apiserver-etcd-client', issueClientCert(etcdCa, 'kube-apiserver-etcd-client'))
      const serving = issue('apiserver', apiServerCert(ca, host, withoutVip.has(host.name) ? undefined : vip))
      const kubeletClient = issue('apiserver-kubelet-client', issueClientCert(ca, 'kube-apiserver-kubelet-client', ['system:masters']))
      const frontProxyClient = issue('front-proxy-client', issueClientCert(frontProxyCa, 'front-proxy-client'))
      const kubelet = issueClientCert(ca, `system:node:${host.name}`, ['system:nodes'])
      issue('kubelet-client', kubelet)

      writeKubeconfig(join(dir, 'kubelet.conf'), this.opts.endpoint ?? server, ca.certPem, `system:node:${host.name}`, kubelet)
      writeKubeconfig(join(dir, 'admin.conf'), server, ca.certPem, 'kubernetes-admin', admin)
      const cmConf = join(dir, 'controller-manager.conf')
      writeKubeconfig(cmConf, server, ca.certPem, 'system:kube-controller-manager', issueClientCert(ca, 'system:kube-controller-manager'))
      const schedulerConf = join(dir, 'scheduler.conf')
      writeKubeconfig(schedulerConf, server, ca.certPem, 'system:kube-scheduler', issueClientCert(ca, 'system:kube-scheduler'))

      const delegatedAuth = (conf: string) => [
        `--kubeconfig=${conf}`,
        `--authentication-kubeconfig=${conf}`,
        `--authorization-kubeconfig=${conf}`,
        '--bind-address=127.0.0.1',
        '--leader-elect=true',
      ]
      const argv: Record<Component, string[]> = {
        etcd: [
          `--name=${host.name}`,
          `--data-dir=${join(dir, 'etcd')}`,
          `--listen-client-urls=https://127.0.0.1:${ETCD_CLIENT_PORT},https://${host.ip}:${ETCD_CLIENT_PORT}`,
          `--advertise-client-urls=https://${host.ip}:${ETCD_CLIENT_PORT}`,
          `--listen-peer-urls=https://${host.ip}:${ETCD_PEER_PORT}`,
          `--initial-advertise-peer-urls=https://${host.ip}:${ETCD_PEER_PORT}`,
          `--initial-cluster=${initialCluster}`,
          // Ignored once the data dir holds a member: a restart rejoins with the same flags.
          '--initial-cluster-state=new',
          `--initial-cluster-token=${this.opts.network.prefix}`,
          `--listen-metrics-urls=${ETCD_METRICS}`,
          `--cert-file=${etcdServer.certFile}`,
          `--key-file=${etcdServer.keyFile}`,
          `--trusted-ca-file=${etcdCaFile}`,
          '--client-cert-auth=true',
          `--peer-cert-file=${etcdPeer.certFile}`,
          `--peer-key-file=${etcdPeer.keyFile}`,
          `--peer-trusted-ca-file=${etcdCaFile}`,
          '--peer-client-cert-auth=true',
          // Node death here is SIGKILL, not power loss: writes already in the page cache survive it, and
          // three members fsyncing on a shared 2-core machine only slow every write down.
          '--unsafe-no-fsync',
        ],
        'kube-apiserver': [
          '--bind-address=0.0.0.0',
          // karp's default port: the suites install without --api-port.
          `--secure-port=${DEFAULT_API_PORT}`,
          `--advertise-address=${host.ip}`,
          `--etcd-servers=https://127.0.0.1:${ETCD_CLIENT_PORT}`,
          `--etcd-cafile=${etcdCaFile}`,
          `--etcd-certfile=${etcdClient.certFile}`,
          `--etcd-keyfile=${etcdClient.keyFile}`,
          `--tls-cert-file=${serving.certFile}`,
          `--tls-private-key-file=${serving.keyFile}`,
          `--cert-dir=${join(dir, 'apiserver-certs')}`,
          `--client-ca-file=${caFile}`,
          `--kubelet-client-certificate=${kubeletClient.certFile}`,
          `--kubelet-client-key=${kubeletClient.keyFile}`,
          '--kubelet-preferred-address-types=InternalIP',
          `--requestheader-client-ca-file=${frontProxyCaFile}`,
          '--requestheader-allowed-names=front-proxy-client',
          '--requestheader-username-headers=X-Remote-User',
          '--requestheader-group-headers=X-Remote-Group',
          '--requestheader-extra-headers-prefix=X-Remote-Extra-',
          `--proxy-client-cert-file=${frontProxyClient.certFile}`,
          `--proxy-client-key-file=${frontProxyClient.keyFile}`,
          '--authorization-mode=Node,RBAC',
          '--enable-admission-plugins=NodeRestriction',
          '--allow-privileged=true',
          `--service-cluster-ip-range=${SERVICE_CIDR}`,
          `--service-account-issuer=${SA_ISSUER}`,
          `--service-account-key-file=${saPub}`,
          `--service-account-signing-key-file=${saKey}`,
          '--endpoint-reconciler-type=lease',
          '--profiling=false',
        ],
        'kube-controller-manager': [
          ...delegatedAuth(cmConf),
          `--client-ca-file=${caFile}`,
          `--requestheader-client-ca-file=${frontProxyCaFile}`,
          '--use-service-account-credentials=true',
          `--service-account-private-key-file=${saKey}`,
          `--root-ca-file=${caFile}`,
          `--cluster-signing-cert-file=${caFile}`,
          `--cluster-signing-key-file=${caKeyFile}`,
          `--service-cluster-ip-range=${SERVICE_CIDR}`,
          `--cert-dir=${join(dir, 'controller-manager-certs')}`,
        ],
        'kube-scheduler': [...delegatedAuth(schedulerConf), `--cert-dir=${join(dir, 'scheduler-certs')}`],
      }
      this.nodes.set(host.name, {host, dir, argv, procs: {}, killed: new Set()})
    }
    return {ca, caFile, admin}
  }
}

/** Writes a kubeconfig (0600) that authenticates `user` with a client certificate, everything inline. */
/** The API server's serving certificate as kubeadm issues it, with the VIP when one is given. */
function apiServerCert(ca: CertificateAuthority, host: Host, vip: string | undefined): KeyPair {
  return issueServingCert(ca, 'kube-apiserver', [host.ip, '127.0.0.1', SERVICE_IP, ...API_SERVER_NAMES, ...(vip ? [vip] : [])])
}

export function writeKubeconfig(file: string, server: string, caPem: string, user: string, pair: KeyPair): void {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{name: 'kubernetes', cluster: {server, 'certificate-authority-data': base64(caPem)}}],
    users: [{name: user, user: {'client-certificate-data': base64(pair.certPem), 'client-key-data': base64(pair.keyPem)}}],
    contexts: [{name: `${user}@kubernetes`, context: {cluster: 'kubernetes', user}}],
    'current-context': `${user}@kubernetes`,
  }
  writeFileSync(file, stringify(config), {mode: 0o600})
}

/** Why this control plane cannot run here, or false. Under CI=true a missing prerequisite throws instead. */
export function controlPlaneSkipReason(): string | false {
  const missing: string[] = []
  if (process.getuid?.() !== 0) missing.push('root (network namespaces)')
  missing.push(...missingTools(['ip', 'nsenter', 'unshare', 'hostname', 'curl', 'openssl']))
  if (missing.length === 0) {
    const probe = `karpcp-probe-${process.pid.toString(36)}`
    const add = spawnSync('ip', ['netns', 'add', probe], {encoding: 'utf8'})
    if (add.status !== 0) missing.push(`permission to create network namespaces (${add.stderr.trim()})`)
    else spawnSync('ip', ['netns', 'del', probe])
  }
  if (missing.length === 0) return false
  const reason = `the lab's control plane needs ${missing.join(', ')}`
  if (process.env.CI === 'true') throw new Error(`CI=true and ${reason}`)
  return reason
}

function base64(text: string): string {
  return Buffer.from(text).toString('base64')
}

function seconds(since: number): number {
  return Math.round((performance.now() - since) / 100) / 10
}

function logTail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log)'
  }
}
