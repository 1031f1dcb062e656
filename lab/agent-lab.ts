// The agent's network-namespace lab: a bridge in a namespace of its own, N node namespaces and one client
// namespace, each attached to the bridge by a veth pair. Every address lives inside those namespaces
// (10.77.0.0/24); the root namespace gets none. Each node runs a stand-in API server (fixtures/
// node-service.ts) and the agent exactly as a DaemonSet pod would: agent/entrypoint.sh from this repo with
// the pod's environment, a password file, a service-account token and a writable state dir in temp dirs.
// The stand-in serves /readyz over TLS with a certificate the lab's CA signed for the name "kubernetes"
// only (as kubeadm's, no 127.0.0.1), and that CA is the pod's ca.crt, as the cluster CA is in a real pod.
//
// Names carry a per-run prefix (karpl-<pid>-<random>), so parallel runs never collide. Teardown kills every
// process group the lab started and deletes its namespaces: from destroy(), from a process 'exit' hook and
// from signal handlers; namespaces left by a run that was SIGKILLed are swept by the next run.
import {spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {execa} from 'execa'
import {makeCa, makeCertificate, testKey} from '../test/helpers/certs.js'
import {killGroup, missingTools, processTree, rssKb, sleep, SYSTEM_PATH, waitFor} from './process.js'
import {IP, Network, type Host, type Proc} from './network.js'
import {DEFAULT_API_PORT} from '../src/lib/constants.js'
import {atTeardown} from './teardown.js'

export {agentInstallDir, IP, killGroup, sleep, SYSTEM_PATH, waitFor, type Proc}
import {agentInstallDir, karpTls, karpTlsDir} from './karp-tls.js'

const here = dirname(fileURLToPath(import.meta.url))
export const repoRoot = resolve(here, '..')
export const agentDir = join(repoRoot, 'agent')
export const SUBNET = '10.77.0'
export const VIP = `${SUBNET}.10`
export const CLIENT_IP = `${SUBNET}.100`
export const HEALTH_PORT = 6444
export const HEALTH_URL = `https://127.0.0.1:${HEALTH_PORT}/readyz`
/** The names a real API server's serving certificate carries on every distribution. */
export const API_SERVER_NAMES = ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local']
export const VHID = '42'
const PREFIX = 'karpl'
// What the image gets from busybox; the lab can run the agent with these instead of Debian's tools.
const BUSYBOX_APPLETS = [
  'ip',
  'arping',
  'awk',
  'sed',
  'grep',
  'date',
  'head',
  'tr',
  'wc',
  'cat',
  'mv',
  'rm',
  'mkdir',
  'sleep',
  'mkfifo',
  'mktemp',
]

/** Why the lab cannot run here, or false. Under CI=true a missing prerequisite throws instead. */
export function labSkipReason(): string | false {
  const missing: string[] = []
  if (process.getuid?.() !== 0) missing.push('root (network namespaces)')
  missing.push(...missingTools(['ip', 'ucarp', 'arping', 'curl', 'socat', 'shellcheck', 'busybox']))
  const tls = karpTls()
  if ('error' in tls) missing.push(`karp-tls, the agent's TLS client (${tls.error})`)
  if (missing.length === 0) {
    const probe = `${PREFIX}-probe-${process.pid.toString(36)}`
    const add = spawnSync('ip', ['netns', 'add', probe], {encoding: 'utf8'})
    if (add.status !== 0) missing.push(`permission to create network namespaces (${add.stderr.trim()})`)
    else spawnSync('ip', ['netns', 'del', probe])
  }
  if (missing.length === 0) return false
  const reason = `the netns lab needs ${missing.join(', ')}`
  if (process.env.CI === 'true') throw new Error(`CI=true and ${reason}`)
  return reason
}

/** A certificate and its key, as PEM files. */
export interface TlsFiles {
  cert: string
  key: string
}

/** One /readyz request the node's stand-in API server saw (fixtures/node-service.ts). */
export interface HealthRequest {
  auth?: 'token' | 'other' | 'none'
  /** The lab's own readiness probe, not the agent. */
  lab?: boolean
  tlsError?: string
}

export interface LabNode extends Host {
  dir: string
  agent?: Proc
  service?: Proc
  /** How the running stand-in serves /readyz. */
  serviceScheme?: 'https' | 'http'
  extra: Proc[]
}

export interface ServiceOptions {
  /** The certificate /readyz is served with (default: the lab CA's, for "kubernetes"); false: plain HTTP. */
  tls?: TlsFiles | false
}

export interface AgentOptions {
  env?: Record<string, string>
  /** 'busybox' runs the entrypoint under busybox ash with busybox's ip, arping, awk, ... as in the image. */
  toolset?: 'host' | 'busybox'
  /** Gate on the node's stand-in API server (default true). */
  health?: boolean
}

export class Lab {
  readonly prefix: string
  readonly dir: string
  readonly brNs: string
  readonly clientNs: string
  readonly nodes: LabNode[] = []
  /** The lab's CA (the pod's ca.crt) and the stand-in API servers' certificate it signed. */
  readonly pki: {ca: string; server: TlsFiles}
  private destroyed = false
  private untrack: () => void = () => {}

  private constructor(readonly net: Network) {
    this.prefix = net.prefix
    this.dir = mkdtempSync(join(tmpdir(), `${net.prefix}-`))
    this.brNs = net.brNs
    this.clientNs = `${net.prefix}-client`
    const pki = join(this.dir, 'pki')
    this.pki = {ca: join(pki, 'ca.crt'), server: {cert: join(pki, 'apiserver.crt'), key: join(pki, 'apiserver.key')}}
  }

  /** A lab of `nodeCount` nodes, node1 at `${SUBNET}.${firstOctet}` and each next one at the next address. */
  static async create(nodeCount = 3, firstOctet = 11): Promise<Lab> {
    const lab = new Lab(await Network.create(PREFIX, SUBNET))
    lab.untrack = atTeardown(() => lab.destroySync())
    try {
      await lab.build(nodeCount, firstOctet)
    } catch (err) {
      lab.destroySync()
      throw err
    }
    return lab
  }

  private writePki(): void {
    mkdirSync(dirname(this.pki.ca), {recursive: true})
    const ca = makeCa('karp lab CA', {key: testKey('karp lab CA', 'ec')})
    const server = makeCertificate({
      commonName: 'kube-apiserver',
      key: testKey('karp lab apiserver', 'ec'),
      issuer: ca,
      dnsSans: API_SERVER_NAMES,
    })
    writeFileSync(this.pki.ca, ca.certPem)
    writeFileSync(this.pki.server.cert, server.certPem)
    writeFileSync(this.pki.server.key, server.key.privatePem, {mode: 0o600})
  }

  private async build(nodeCount: number, firstOctet: number): Promise<void> {
    this.writePki()
    await this.net.addHost('client', Number(CLIENT_IP.split('.')[3]))
    for (let i = 1; i <= nodeCount; i++) {
      const host = await this.net.addHost(`node${i}`, firstOctet + i - 1)
      const dir = join(this.dir, host.name)
      mkdirSync(join(dir, 'state'), {recursive: true})
      writeFileSync(join(dir, 'password'), 'lab-secret-42\n', {mode: 0o600})
      writeFileSync(join(dir, 'token'), `lab-token-${host.name}-${randomBytes(8).toString('hex')}\n`, {mode: 0o600})
      this.nodes.push({...host, dir, extra: []})
    }
  }

  /**
   * A second agent's place on the node: the same namespace, address and stand-in API server, its own
   * directory (state dir, log, password and token copies) under the node's, named `instance`. Not in
   * `nodes`: holders() still counts the node once. startAgent, stopAgent, agentLog, statePid and
   * probeResult take it as they take a node.
   */
  secondAgentPlace(node: LabNode, instance: string): LabNode {
    const dir = join(node.dir, instance)
    mkdirSync(join(dir, 'state'), {recursive: true})
    for (const file of ['password', 'token']) writeFileSync(join(dir, file), readFileSync(join(node.dir, file)), {mode: 0o600})
    return {...node, dir, agent: undefined, extra: []}
  }

  node(name: string): LabNode {
    const node = this.nodes.find((n) => n.name === name)
    if (!node) throw new Error(`no lab node ${name}`)
    return node
  }

  /** Starts a command inside a namespace in a process group of its own, output appended to logFile. */
  spawnIn(ns: string, command: string[], env: Record<string, string>, logFile: string): Proc {
    // The agent reads /sys/class/net/<iface>/carrier: it needs the namespace's sysfs, as a container has.
    return this.net.spawnIn(ns, command, {env, logFile, namespaceSysfs: true})
  }

  /**
   * Starts a command in this (the root) namespace, tracked and torn down like the others. Only for what
   * bridges a filesystem socket to loopback here: nothing started this way may get a lab address.
   */
  spawnHere(command: string[], logFile: string): Proc {
    return this.net.spawnHere(command, {logFile})
  }

  /** The stand-in API server listens where karp expects a real one by default. */
  startService(node: LabNode, opts: ServiceOptions = {}): Proc {
    const tls = opts.tls ?? this.pki.server
    const args = [node.name, String(DEFAULT_API_PORT), String(HEALTH_PORT), join(node.dir, 'token'), this.healthRequestLog(node)]
    if (tls) args.push(tls.cert, tls.key)
    node.service = this.spawnIn(
      node.ns,
      [process.execPath, '--no-warnings', join(here, 'node-service.ts'), ...args],
      {},
      join(node.dir, 'service.log'),
    )
    node.serviceScheme = tls ? 'https' : 'http'
    return node.service
  }

  async waitForService(node: LabNode, timeoutMs = 10_000): Promise<void> {
    const url = `${node.serviceScheme ?? 'https'}://127.0.0.1:${HEALTH_PORT}/readyz`
    await waitFor(`${node.name} service`, timeoutMs, async () => {
      const r = await execa(
        'ip',
        ['netns', 'exec', node.ns, 'curl', '-s', '-k', '-H', 'X-Karp-Lab: probe', '-o', '/dev/null', '-w', '%{http_code}', url],
        {reject: false},
      )
      return r.stdout === '401'
    })
  }

  private healthRequestLog(node: LabNode): string {
    return join(node.dir, 'health-requests.jsonl')
  }

  /** Every /readyz request (or failed TLS handshake) the node's stand-in API servers saw, oldest first. */
  healthRequests(node: LabNode): HealthRequest[] {
    try {
      return readFileSync(this.healthRequestLog(node), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as HealthRequest)
    } catch {
      return []
    }
  }

  /** A server in the node's namespace that accepts connections on host:port and never answers. */
  startSilentServer(node: LabNode, host: string, port: number): Proc {
    const proc = this.spawnIn(
      node.ns,
      [process.execPath, '--no-warnings', join(here, 'silent-server.ts'), host, String(port)],
      {},
      join(node.dir, 'silent.log'),
    )
    node.extra.push(proc)
    return proc
  }

  /**
   * The pod's service-account ca.crt: the lab CA, then any CA a test put in <node dir>/ca.crt (the
   * role-report test adds the control plane's, which signs the API server the reports go to).
   */
  private podCaFile(node: LabNode): string {
    const extra = join(node.dir, 'ca.crt')
    const bundle = join(node.dir, 'pod-ca.crt')
    writeFileSync(bundle, readFileSync(this.pki.ca, 'utf8') + (existsSync(extra) ? readFileSync(extra, 'utf8') : ''))
    return bundle
  }

  async killService(node: LabNode): Promise<void> {
    if (!node.service) return
    killGroup(node.service.pid, 'SIGKILL')
    await node.service.exited
    node.service = undefined
  }

  agentEnv(node: LabNode, opts: AgentOptions = {}): Record<string, string> {
    const env: Record<string, string> = {
      KARP_VIP: VIP,
      KARP_VHID: VHID,
      KARP_ADVBASE: '1',
      KARP_PREEMPT: 'false',
      KARP_PASSWORD_FILE: join(node.dir, 'password'),
      KARP_STATE_DIR: join(node.dir, 'state'),
      KARP_TOKEN_FILE: join(node.dir, 'token'),
      KARP_CA_FILE: this.podCaFile(node),
      NODE_NAME: node.name,
      POD_NAME: `karp-${node.name}`,
      POD_NAMESPACE: 'karp-system',
    }
    if (opts.health !== false) env.KARP_HEALTH_URL = HEALTH_URL
    Object.assign(env, opts.env)
    // karp-tls as the image has it (/usr/local/bin), built for this machine, before a PATH the test gave.
    env.PATH = `${opts.toolset === 'busybox' ? `${this.busyboxBin()}:` : ''}${karpTlsDir()}:${opts.env?.PATH ?? SYSTEM_PATH}`
    return env
  }

  startAgent(node: LabNode, opts: AgentOptions = {}): Proc {
    const entrypoint = join(agentInstallDir(), 'entrypoint.sh')
    const command = opts.toolset === 'busybox' ? ['busybox', 'sh', entrypoint] : [entrypoint]
    node.agent = this.spawnIn(node.ns, command, this.agentEnv(node, opts), join(node.dir, 'agent.log'))
    return node.agent
  }

  private busyboxBin(): string {
    const dir = join(this.dir, 'busybox-bin')
    if (!existsSync(dir)) {
      mkdirSync(dir)
      const busybox = spawnSync('sh', ['-c', 'command -v busybox'], {encoding: 'utf8', env: {PATH: SYSTEM_PATH}}).stdout.trim()
      for (const applet of BUSYBOX_APPLETS) symlinkSync(busybox, join(dir, applet))
    }
    return dir
  }

  /** SIGTERM to the entrypoint only, as the kubelet does; then whatever it left behind is killed. */
  async stopAgent(node: LabNode, timeoutMs = 30_000): Promise<number | null> {
    const agent = node.agent
    if (!agent) return null
    try {
      process.kill(agent.pid, 'SIGTERM')
    } catch {
      // already gone
    }
    const code = await Promise.race([agent.exited, sleep(timeoutMs).then(() => 'timeout' as const)])
    killGroup(agent.pid, 'SIGKILL')
    await agent.exited
    node.agent = undefined
    if (code === 'timeout') throw new Error(`${node.name} agent did not stop within ${timeoutMs} ms`)
    return code
  }

  /** SIGKILL to every process of the agent, as a crash: the VIP stays until its lease runs out (KARP_VIP_LIFETIME). */
  async killAgent(node: LabNode): Promise<void> {
    const agent = node.agent
    if (!agent) return
    killGroup(agent.pid, 'SIGKILL')
    await agent.exited
    node.agent = undefined
  }

  agentLog(node: LabNode): string {
    try {
      return readFileSync(join(node.dir, 'agent.log'), 'utf8')
    } catch {
      return ''
    }
  }

  statePid(node: LabNode, file: string): number | undefined {
    try {
      const pid = Number(readFileSync(join(node.dir, 'state', file), 'utf8').trim())
      return pid > 0 ? pid : undefined
    } catch {
      return undefined
    }
  }

  holdsVip(node: LabNode): Promise<boolean> {
    return this.net.hasAddress(node, VIP)
  }

  /**
   * The VIP's valid lifetime on the node's eth0 as `ip -o addr show` prints it: seconds left, 'forever'
   * (an address without a lease), or undefined when the node does not hold the VIP.
   */
  async vipLifetime(node: LabNode): Promise<number | 'forever' | undefined> {
    const {stdout} = await this.net.exec(node.ns, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0'])
    const line = stdout.split('\n').find((l) => l.includes(` inet ${VIP}/`))
    if (line === undefined) return undefined
    const lifetime = /valid_lft (forever|(\d+)sec)/.exec(line)
    if (!lifetime) throw new Error(`no valid_lft in: ${line}`)
    return lifetime[2] === undefined ? 'forever' : Number(lifetime[2])
  }

  async holders(): Promise<string[]> {
    const held = await Promise.all(this.nodes.map(async (n) => ((await this.holdsVip(n)) ? n.name : undefined)))
    return held.filter((n): n is string => n !== undefined)
  }

  /** Waits until the holder set satisfies the predicate and still does a moment later. */
  async waitForHolders(what: string, pred: (holders: string[]) => boolean, timeoutMs = 20_000, stableMs = 1500): Promise<string[]> {
    let holders: string[] = []
    await waitFor(
      what,
      timeoutMs,
      async () => {
        holders = await this.holders()
        if (!pred(holders)) return false
        await sleep(stableMs)
        holders = await this.holders()
        return pred(holders)
      },
      () => `holders: [${holders.join(', ')}]`,
    )
    return holders
  }

  async waitForOneHolder(timeoutMs = 20_000, except?: string): Promise<string> {
    const [holder] = await this.waitForHolders(
      except ? `exactly one VIP holder other than ${except}` : 'exactly one VIP holder',
      (h) => h.length === 1 && h[0] !== except,
      timeoutMs,
    )
    return holder as string
  }

  /** One TCP connection from the client to VIP:6443; the name the holder's service answered, or null. */
  async probe(): Promise<string | null> {
    const r = await execa(
      'ip',
      ['netns', 'exec', this.clientNs, 'socat', '-T', '1', '-u', `TCP:${VIP}:${DEFAULT_API_PORT},connect-timeout=1`, 'STDOUT'],
      {
        reject: false,
      },
    )
    return r.exitCode === 0 && r.stdout.trim() ? r.stdout.trim() : null
  }

  /** The MAC address the client's ARP cache holds for the VIP, as the lab node it belongs to. */
  async clientArpNode(): Promise<string | undefined> {
    const mac = await this.net.neighbour(this.clientNs, VIP)
    return this.nodes.find((n) => n.mac === mac)?.name ?? (mac ? `unknown ${mac}` : undefined)
  }

  cutLink(node: LabNode): Promise<void> {
    return this.net.cutLink(node)
  }

  restoreLink(node: LabNode): Promise<void> {
    return this.net.restoreLink(node)
  }

  /** Takes the node's port off the bridge: its link keeps carrier, but nobody hears it. */
  isolate(node: LabNode): Promise<void> {
    return this.net.isolate(node)
  }

  rejoin(node: LabNode): Promise<void> {
    return this.net.rejoin(node)
  }

  /** Runs agent/healthcheck.sh in the node's namespace as the kubelet's exec probe would: its exit code. */
  async healthcheck(node: LabNode, mode: 'live' | 'ready' = 'live'): Promise<number> {
    return (await this.probeResult(node, mode)).code
  }

  /** The same probe, with what it printed (stdout and stderr together, as the kubelet records it). */
  async probeResult(node: LabNode, mode: 'live' | 'ready'): Promise<{code: number; output: string}> {
    const r = await execa('ip', ['netns', 'exec', node.ns, join(agentDir, 'healthcheck.sh'), mode], {
      env: {PATH: SYSTEM_PATH, KARP_STATE_DIR: join(node.dir, 'state')},
      extendEnv: false,
      reject: false,
      all: true,
    })
    return {code: r.exitCode ?? -1, output: r.all ?? ''}
  }

  static processTree(pid: number): number[] {
    return processTree(pid)
  }

  static treeRssKb(pid: number): number {
    return rssKb(processTree(pid))
  }

  async destroy(): Promise<void> {
    await this.net.destroy()
    this.destroySync()
  }

  destroySync(): void {
    if (this.destroyed) return
    this.destroyed = true
    this.untrack()
    this.net.destroySync()
    if (process.env.KARP_LAB_KEEP) console.error(`lab files kept in ${this.dir}`)
    else rmSync(this.dir, {recursive: true, force: true})
  }
}
