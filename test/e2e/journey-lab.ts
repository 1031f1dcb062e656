// The whole product in network namespaces: a real control plane, the netns lab (lab.ts) with three
// control-plane nodes and a client, and a stand-in kubelet that runs the karp agent for every pod the
// DaemonSet puts on a lab node. Shared by test/e2e/journey.test.ts and `npm run lab` (scripts/lab.ts).
//
//   root namespace        127.0.0.1:<port>  etcd, kube-apiserver, controller-manager, scheduler, kwok; this
//                         process (the kubelet) talks to the API server here. No lab address.
//        │ Unix socket <lab dir>/api.sock (socat; sockets are files, not addresses)
//   <prefix>-api          10.77.0.5:6443 on the lab bridge: where pods find the API server
//                         (KUBERNETES_SERVICE_HOST/PORT, as kube-proxy would route the kubernetes Service)
//   <prefix>-node1..3     10.77.0.11-13: :6443 forwards to 10.77.0.5:6443, standing in for each node's own
//                         API server; the agent from agent/ with the pod's env, Secret and token
//   <prefix>-client       10.77.0.100: the CLI under test and kubectl run here
//
// The API server's certificate carries the VIP, the nodes' addresses and 10.77.0.5. The kubeconfig the
// client starts with points at node1, as a kubeconfig copied from a control-plane node would.
import {spawnSync} from 'node:child_process'
import {chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {basename, dirname, join} from 'node:path'
import {CoreV1Api, KubeConfig, type V1Container, type V1Pod} from '@kubernetes/client-node'
import {execa} from 'execa'
import {parse, stringify} from 'yaml'
import {resolveBinDir, startControlPlane, type ControlPlane} from '../cluster/control-plane.js'
import {controlPlaneNode, createFakeNodes} from '../cluster/nodes.js'
import {jsonOutput, karpBin, type KarpRun} from '../helpers/karp.js'
import {atTeardown} from '../../lab/teardown.js'
import {agentDir, killGroup, Lab, sleep, SUBNET, VIP, waitFor, type LabNode, type Proc} from '../../lab/agent-lab.js'

export {VIP}
export const API_IP = `${SUBNET}.5`
export const API_PORT = 6443
/** Where the image installs agent/ (agent/Dockerfile); the container's command names a file there. */
const IMAGE_AGENT_DIR = '/usr/local/lib/karp/'
const SA_MOUNT = '/var/run/secrets/kubernetes.io/serviceaccount'
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
/** A crashed container is started again after this long (the kubelet's first crash back-off is 10 s). */
const RESTART_BACKOFF_MS = 10_000

export interface JourneyLabOptions {
  nodes?: number
  /** Progress lines (default: none). */
  log?: (line: string) => void
  /** Runs the agent under busybox ash with busybox's tools, as in the image (default true). */
  busybox?: boolean
}

export interface CommandResult {
  exitCode: number
  stdout: string
  stderr: string
}

export class JourneyLab {
  readonly vip = VIP
  readonly apiNs: string
  /** The client's kubeconfig (admin), pointing at node1 until `karp kubeconfig rewrite` changes it. */
  readonly kubeconfig: string
  readonly kubelet: LabKubelet
  /** Process groups started in the root namespace (the API server's socket bridge). */
  readonly rootPids: number[] = []
  private stopped = false
  private untrack: () => void = () => {}

  private constructor(
    readonly lab: Lab,
    readonly cp: ControlPlane,
    readonly api: CoreV1Api,
    readonly log: (line: string) => void,
    busybox: boolean,
  ) {
    this.apiNs = `${lab.prefix}-api`
    this.kubeconfig = join(lab.dir, 'kubeconfig')
    this.kubelet = new LabKubelet(lab, api, log, busybox)
  }

  static async start(opts: JourneyLabOptions = {}): Promise<JourneyLab> {
    const log = opts.log ?? (() => {})
    const nodeCount = opts.nodes ?? 3
    const nodeIps = Array.from({length: nodeCount}, (_, i) => `${SUBNET}.${11 + i}`)
    const binDir = process.env.KARP_TEST_BIN_DIR || (await resolveBinDir())
    log('starting the control plane and the netns lab')
    const [cpResult, labResult] = await Promise.allSettled([
      startControlPlane({binDir, extraSans: [VIP, API_IP, ...nodeIps]}),
      Lab.create(nodeCount),
    ])
    if (cpResult.status === 'rejected' || labResult.status === 'rejected') {
      if (cpResult.status === 'fulfilled') await cpResult.value.stop()
      if (labResult.status === 'fulfilled') await labResult.value.destroy()
      throw cpResult.status === 'rejected' ? cpResult.reason : (labResult as PromiseRejectedResult).reason
    }
    const cp = cpResult.value
    const lab = labResult.value
    const kc = new KubeConfig()
    kc.loadFromFile(cp.adminKubeconfig)
    const jl = new JourneyLab(lab, cp, kc.makeApiClient(CoreV1Api), log, opts.busybox ?? true)
    // lab.ts and control-plane.ts clean up after themselves; the api namespace is ours.
    jl.untrack = atTeardown(() => jl.stopSync())
    try {
      await jl.build()
    } catch (err) {
      await jl.stop()
      throw err
    }
    return jl
  }

  private async build(): Promise<void> {
    const {lab, cp} = this
    this.log(`control plane up in ${cp.startupSeconds} s at ${cp.server}; lab ${lab.prefix}`)
    // The API server's lab address, in a namespace of its own on the bridge.
    await ip(['netns', 'add', this.apiNs])
    await ip(['-n', this.apiNs, 'link', 'set', 'lo', 'up'])
    await ip(['-n', lab.brNs, 'link', 'add', 'v-api', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.apiNs])
    await ip(['-n', lab.brNs, 'link', 'set', 'v-api', 'master', 'br0', 'up'])
    await ip(['-n', this.apiNs, 'addr', 'add', `${API_IP}/24`, 'dev', 'eth0'])
    await ip(['-n', this.apiNs, 'link', 'set', 'eth0', 'up'])
    const socket = join(lab.dir, 'api.sock')
    const server = new URL(cp.server)
    const bridge = lab.spawnHere(['socat', `UNIX-LISTEN:${socket},fork,unlink-early,backlog=256`, `TCP:${server.hostname}:${server.port}`], join(lab.dir, 'api-socket.log'))
    this.rootPids.push(bridge.pid)
    lab.spawnIn(this.apiNs, ['socat', `TCP-LISTEN:${API_PORT},bind=${API_IP},fork,reuseaddr,backlog=256`, `UNIX-CONNECT:${socket}`], {}, join(lab.dir, 'api-forward.log'))
    // Each node's "own API server" on :6443 (all addresses: its own, 127.0.0.1 for the health check, the VIP).
    for (const n of lab.nodes) {
      lab.spawnIn(n.ns, ['socat', `TCP-LISTEN:${API_PORT},fork,reuseaddr,backlog=256`, `TCP:${API_IP}:${API_PORT}`], {}, join(n.dir, 'api-forward.log'))
    }
    const first = lab.nodes[0] as LabNode
    const config = parse(readFileSync(cp.adminKubeconfig, 'utf8')) as {clusters: {cluster: {server: string}}[]}
    for (const c of config.clusters) c.cluster.server = `https://${first.ip}:${API_PORT}`
    writeFileSync(this.kubeconfig, stringify(config), {mode: 0o600})
    await waitFor('the API server through every node', 20_000, async () => {
      const results = await Promise.all(lab.nodes.map((n) => this.kubectl(['--server', `https://${n.ip}:${API_PORT}`, 'get', '--raw', '/readyz'])))
      return results.every((r) => r.exitCode === 0 && r.stdout === 'ok')
    })
    this.log('registering the lab nodes as control-plane nodes')
    await createFakeNodes(
      cp.adminKubeconfig,
      lab.nodes.map((n) => controlPlaneNode(n.name, n.ip)),
    )
    this.kubelet.start()
  }

  /** The CLI under test, as a user runs it, inside the client namespace. */
  async karp(args: string[], opts: {timeoutMs?: number} = {}): Promise<KarpRun> {
    const r = await this.inClient([process.execPath, karpBin, ...args], opts.timeoutMs ?? 180_000)
    return {...r, json: jsonOutput(args, r.stdout)}
  }

  /** kubectl of the control plane's version, inside the client namespace, with the client's kubeconfig. */
  kubectl(args: string[], timeoutMs = 30_000): Promise<CommandResult> {
    return this.inClient([join(this.cp.binDir, 'kubectl'), '--kubeconfig', this.kubeconfig, ...args], timeoutMs)
  }

  private async inClient(command: string[], timeoutMs: number): Promise<CommandResult> {
    const r = await execa('ip', ['netns', 'exec', this.lab.clientNs, ...command], {
      reject: false,
      stdin: 'ignore',
      env: {PATH: SYSTEM_PATH, HOME: this.lab.dir, KUBECONFIG: this.kubeconfig, NO_COLOR: '1'},
      extendEnv: false,
      timeout: timeoutMs,
    })
    return {exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr}
  }

  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.untrack()
    await this.kubelet.stop()
    await this.lab.destroy()
    this.stopSync()
    await this.cp.stop()
  }

  /** What must go even when this process is on its way out (exit hook): no awaits. */
  stopSync(): void {
    this.kubelet.stopSync()
    this.lab.destroySync()
    const pids = spawnSync('ip', ['netns', 'pids', this.apiNs], {encoding: 'utf8'}).stdout ?? ''
    for (const p of pids.split('\n').filter(Boolean)) killPid(Number(p))
    spawnSync('ip', ['netns', 'del', this.apiNs], {stdio: 'ignore'})
  }
}

async function ip(args: string[]): Promise<void> {
  await execa('ip', args, {env: {PATH: SYSTEM_PATH}, extendEnv: false})
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    // gone already
  }
}

interface RunningPod {
  uid: string
  namespace: string
  name: string
  node: LabNode
  dir: string
  proc?: Proc
  /** Set once the pod is being deleted: the agent is told to stop and not restarted. */
  stopping?: Promise<void>
  restarts: number
  restartAt?: number
  graceSeconds?: number
}

/**
 * The kubelet of every lab node, for the pods that run agent/ (the karp container's command lies in the
 * image's agent directory): starts the container's command in the node's namespace with the env the pod
 * spec resolves to and its volumes as files (Secret items with their mode, emptyDir, and the projected
 * service-account volume: a token from the TokenRequest API bound to the pod, the cluster CA, the namespace); restarts it after a crash; on deletion sends SIGTERM
 * and SIGKILL after the grace period. One container per node at a time: a replacement pod's starts only
 * once its predecessor's has exited, as the DaemonSet controller ensures on a real cluster (kwok deletes a
 * pod at once instead of waiting for the kubelet).
 */
export class LabKubelet {
  private readonly pods = new Map<string, RunningPod>()
  private timer?: NodeJS.Timeout
  private syncing = false
  private closed = false
  /** Errors of the sync loop (a pod whose spec the lab cannot run); the test asserts there are none. */
  readonly errors: string[] = []

  constructor(
    private readonly lab: Lab,
    private readonly api: CoreV1Api,
    private readonly log: (line: string) => void,
    private readonly busybox: boolean,
  ) {}

  start(): void {
    const tick = async () => {
      if (this.closed) return
      if (!this.syncing) {
        this.syncing = true
        await this.sync().catch((err: Error) => this.log(`kubelet: sync failed: ${err.message}`))
        this.syncing = false
      }
      if (!this.closed) this.timer = setTimeout(() => void tick(), 250)
    }
    void tick()
  }

  /** The agent process of the pod on a node, if one runs. */
  agentOn(nodeName: string): Proc | undefined {
    return [...this.pods.values()].find((p) => p.node.name === nodeName && p.proc?.running)?.proc
  }

  /** Pods the kubelet runs or is stopping. */
  podNames(): string[] {
    return [...this.pods.values()].map((p) => p.name)
  }

  /** SIGKILL to every process of the node's agent, as when the container crashes. */
  async killAgent(nodeName: string): Promise<void> {
    const pod = [...this.pods.values()].find((p) => p.node.name === nodeName && p.proc?.running)
    if (!pod?.proc) throw new Error(`no agent runs on ${nodeName}`)
    killGroup(pod.proc.pid, 'SIGKILL')
    await pod.proc.exited
  }

  private async sync(): Promise<void> {
    const nodes = new Map(this.lab.nodes.map((n) => [n.name, n]))
    const list = await this.api.listPodForAllNamespaces()
    const seen = new Set<string>()
    for (const pod of list.items) {
      const uid = pod.metadata?.uid
      const node = nodes.get(pod.spec?.nodeName ?? '')
      const container = pod.spec?.containers[0]
      if (!uid || !node || !container?.command?.[0]?.startsWith(IMAGE_AGENT_DIR)) continue
      seen.add(uid)
      let running = this.pods.get(uid)
      if (pod.metadata?.deletionTimestamp) {
        if (running) this.terminate(running, graceSeconds(pod))
        continue
      }
      if (!running) {
        running = {uid, namespace: pod.metadata!.namespace!, name: pod.metadata!.name!, node, dir: join(this.lab.dir, 'pods', uid), restarts: 0}
        this.pods.set(uid, running)
      }
      if (running.stopping || running.proc?.running) continue
      if (pod.status?.phase !== 'Running') continue
      // One agent per node: wait for the one of a deleted predecessor to exit.
      const busy = [...this.pods.values()].some((p) => p !== running && p.node === node && p.proc?.running)
      if (busy) continue
      if (running.restartAt && Date.now() < running.restartAt) continue
      if (running.proc && !running.restartAt) {
        const code = await running.proc.exited
        this.log(`kubelet: ${running.name} on ${node.name}: agent exited (${code ?? 'killed by a signal'}); restarting in ${RESTART_BACKOFF_MS / 1000} s`)
        running.restartAt = Date.now() + RESTART_BACKOFF_MS
        await this.reportContainer(running, 'crashed', code).catch((err: Error) => this.log(`kubelet: ${running.name}: status update failed: ${err.message}`))
        continue
      }
      try {
        await this.run(running, pod, container)
      } catch (err) {
        const message = `kubelet: cannot run ${running.name} on ${node.name}: ${(err as Error).message}`
        if (!this.errors.includes(message)) {
          this.errors.push(message)
          this.log(message)
        }
      }
    }
    // Gone from the API without our seeing a deletion timestamp (kwok deletes at once): stop with the spec's grace.
    for (const running of this.pods.values()) if (!seen.has(running.uid)) this.terminate(running, running.graceSeconds ?? 30)
  }

  private async run(running: RunningPod, pod: V1Pod, container: V1Container): Promise<void> {
    const restart = running.proc !== undefined
    running.graceSeconds = graceSeconds(pod)
    rmSync(running.dir, {recursive: true, force: true})
    mkdirSync(running.dir, {recursive: true})
    const mounts = await this.volumes(running, pod, container)
    const env = resolveEnv(pod, container, mounts)
    // The kubelet's service links for the kubernetes Service: here the API server's lab address.
    env.KUBERNETES_SERVICE_HOST = API_IP
    env.KUBERNETES_SERVICE_PORT = String(API_PORT)
    const command = [...(container.command ?? []), ...(container.args ?? [])].map((arg) =>
      arg.startsWith(IMAGE_AGENT_DIR) ? join(agentDir, arg.slice(IMAGE_AGENT_DIR.length)) : arg,
    )
    if (!existsSync(command[0] as string)) throw new Error(`no ${basename(command[0] as string)} in agent/`)
    const argv = this.busybox ? ['busybox', 'sh', ...command] : command
    // The agent's PATH as the lab gives it (karp-tls, and busybox's tools in busybox mode).
    env.PATH = this.lab.agentEnv(running.node, {toolset: this.busybox ? 'busybox' : 'host'}).PATH as string
    running.proc = this.lab.spawnIn(running.node.ns, argv, env, join(running.node.dir, 'agent.log'))
    running.node.agent = running.proc
    running.restartAt = undefined
    if (restart) {
      running.restarts++
      await this.reportContainer(running, 'restarted').catch((err: Error) => this.log(`kubelet: ${running.name}: status update failed: ${err.message}`))
    }
    this.log(`kubelet: ${restart ? 'restarted' : 'started'} the agent of ${running.namespace}/${running.name} on ${running.node.name} (pid ${running.proc.pid})`)
  }

  /** Files for the container's volume mounts and the service account; returns mountPath -> host dir. */
  private async volumes(running: RunningPod, pod: V1Pod, container: V1Container): Promise<Map<string, string>> {
    const mounts = new Map<string, string>()
    const namespace = running.namespace
    for (const mount of container.volumeMounts ?? []) {
      const volume = pod.spec?.volumes?.find((v) => v.name === mount.name)
      if (!volume) throw new Error(`volume mount ${mount.name} names no volume`)
      const dir = join(running.dir, 'volumes', mount.name)
      mkdirSync(dir, {recursive: true})
      if (volume.emptyDir) {
        // nothing to fill
      } else if (volume.secret) {
        const secret = await this.api.readNamespacedSecret({name: volume.secret.secretName!, namespace})
        const data = secret.data ?? {}
        const items = volume.secret.items ?? Object.keys(data).map((key) => ({key, path: key, mode: undefined}))
        for (const item of items) {
          const value = data[item.key]
          if (value === undefined) throw new Error(`secret ${volume.secret.secretName} has no key ${item.key}`)
          writeFile(join(dir, item.path), Buffer.from(value, 'base64'), item.mode ?? volume.secret.defaultMode ?? 0o644)
        }
      } else if (volume.projected) {
        // What the ServiceAccount admission plugin adds (kube-api-access-*): a bound token, the cluster CA
        // from the kube-root-ca.crt ConfigMap and the namespace.
        const mode = volume.projected.defaultMode ?? 0o644
        for (const source of volume.projected.sources ?? []) {
          if (source.serviceAccountToken) {
            const t = source.serviceAccountToken
            const request = await this.api.createNamespacedServiceAccountToken({
              name: pod.spec?.serviceAccountName ?? 'default',
              namespace,
              body: {
                spec: {
                  audiences: t.audience ? [t.audience] : [],
                  expirationSeconds: t.expirationSeconds ?? 3600,
                  boundObjectRef: {apiVersion: 'v1', kind: 'Pod', name: running.name, uid: running.uid},
                },
              },
            })
            writeFile(join(dir, t.path), request.status?.token ?? '', mode)
          } else if (source.configMap) {
            const cm = await this.api.readNamespacedConfigMap({name: source.configMap.name!, namespace})
            for (const item of source.configMap.items ?? Object.keys(cm.data ?? {}).map((key) => ({key, path: key, mode: undefined}))) {
              const value = cm.data?.[item.key]
              if (value === undefined) throw new Error(`configmap ${source.configMap.name} has no key ${item.key}`)
              writeFile(join(dir, item.path), value, item.mode ?? mode)
            }
          } else if (source.downwardAPI) {
            for (const item of source.downwardAPI.items ?? []) {
              if (!item.fieldRef) throw new Error(`volume ${mount.name}: only fieldRef items are supported in the lab`)
              writeFile(join(dir, item.path), fieldValue(pod, item.fieldRef.fieldPath), item.mode ?? mode)
            }
          } else {
            throw new Error(`volume ${mount.name}: a projected source the lab does not support`)
          }
        }
      } else {
        throw new Error(`volume ${mount.name}: only emptyDir, secret and projected volumes are supported in the lab`)
      }
      mounts.set(mount.mountPath, dir)
    }
    return mounts
  }

  /**
   * Container status as the kubelet reports it: after a crash, waiting in CrashLoopBackOff (not ready) with
   * the exit in lastState; after the restart, running since now with one more restart.
   */
  private async reportContainer(running: RunningPod, now: 'crashed' | 'restarted', exitCode?: number | null): Promise<void> {
    const pod = await this.api.readNamespacedPodStatus({name: running.name, namespace: running.namespace})
    const status = pod.status?.containerStatuses?.[0]
    if (!pod.status || !status) return
    const at = new Date()
    if (now === 'crashed') {
      status.lastState = {terminated: {exitCode: exitCode ?? 137, reason: 'Error', finishedAt: at}}
      status.state = {waiting: {reason: 'CrashLoopBackOff', message: `back-off ${RESTART_BACKOFF_MS / 1000}s restarting failed container`}}
      status.ready = false
      status.started = false
    } else {
      status.state = {running: {startedAt: at}}
      status.ready = true
      status.started = true
      status.restartCount = running.restarts
    }
    const ready = now === 'restarted' ? 'True' : 'False'
    for (const c of pod.status.conditions ?? []) if (c.type === 'Ready' || c.type === 'ContainersReady') if (c.status !== ready) Object.assign(c, {status: ready, lastTransitionTime: at})
    await this.api.replaceNamespacedPodStatus({name: running.name, namespace: running.namespace, body: pod})
  }

  /** SIGTERM to the container's main process; SIGKILL to all of it after the grace period. */
  private terminate(running: RunningPod, grace: number): void {
    if (running.stopping) return
    const proc = running.proc
    running.stopping = (async () => {
      if (proc?.running) {
        this.log(`kubelet: ${running.name} on ${running.node.name} is being deleted: SIGTERM, ${grace} s grace period`)
        try {
          process.kill(proc.pid, 'SIGTERM')
        } catch {
          // gone already
        }
        const code = await Promise.race([proc.exited, sleep(grace * 1000).then(() => 'grace period over' as const)])
        killGroup(proc.pid, 'SIGKILL')
        await proc.exited
        this.log(`kubelet: ${running.name} on ${running.node.name}: agent ${code === 'grace period over' ? 'killed after the grace period' : `exited (${code ?? 'signal'})`}`)
      }
      if (running.node.agent === proc) running.node.agent = undefined
      rmSync(running.dir, {recursive: true, force: true})
      this.pods.delete(running.uid)
    })()
  }

  async stop(): Promise<void> {
    this.closed = true
    clearTimeout(this.timer)
    while (this.syncing) await sleep(50)
    this.stopSync()
  }

  stopSync(): void {
    this.closed = true
    clearTimeout(this.timer)
    for (const p of this.pods.values()) if (p.proc?.running) killGroup(p.proc.pid, 'SIGKILL')
  }
}

function writeFile(file: string, data: string | Buffer, mode: number): void {
  mkdirSync(dirname(file), {recursive: true})
  writeFileSync(file, data)
  chmodSync(file, mode)
}

// kwok force-deletes (grace 0) a pod as soon as it sees it terminating; a poll that comes after that sees 0
// instead of the grace period the deletion started with, which a real kubelet would already be honouring.
function graceSeconds(pod: V1Pod): number {
  const requested = pod.metadata?.deletionGracePeriodSeconds
  return requested || (pod.spec?.terminationGracePeriodSeconds ?? 30)
}

/**
 * The container's environment as the kubelet resolves it: values (with $(VAR) references to earlier
 * variables), downward-API fieldRefs; a path inside a volume mount becomes the host directory holding that
 * volume (the lab cannot mount). The service account's files are found through KARP_TOKEN_FILE and
 * KARP_CA_FILE, the agent's own settings for where its default mount path lies.
 */
export function resolveEnv(pod: V1Pod, container: V1Container, mounts: Map<string, string>): Record<string, string> {
  const env: Record<string, string> = {}
  const hostPath = (value: string): string => {
    for (const [mountPath, dir] of mounts) {
      if (value === mountPath) return dir
      if (value.startsWith(`${mountPath}/`)) return join(dir, value.slice(mountPath.length + 1))
    }
    return value
  }
  for (const e of container.env ?? []) {
    let value: string
    if (e.valueFrom) {
      const path = e.valueFrom.fieldRef?.fieldPath
      if (!path) throw new Error(`env ${e.name}: only fieldRef is supported in the lab`)
      value = fieldValue(pod, path)
    } else {
      value = (e.value ?? '').replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string | undefined) =>
        m === '$$' ? '$' : name !== undefined && name in env ? (env[name] as string) : m,
      )
    }
    env[e.name] = hostPath(value)
  }
  const sa = mounts.get(SA_MOUNT)
  if (sa) {
    env.KARP_TOKEN_FILE ??= join(sa, 'token')
    env.KARP_CA_FILE ??= join(sa, 'ca.crt')
  }
  return env
}

function fieldValue(pod: V1Pod, path: string): string {
  const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path)
  if (m) return pod.metadata?.[m[1] as 'labels' | 'annotations']?.[m[2] as string] ?? ''
  const fields: Record<string, string | undefined> = {
    'metadata.name': pod.metadata?.name,
    'metadata.namespace': pod.metadata?.namespace,
    'metadata.uid': pod.metadata?.uid,
    'spec.nodeName': pod.spec?.nodeName,
    'spec.serviceAccountName': pod.spec?.serviceAccountName,
    'status.hostIP': pod.status?.hostIP,
    'status.podIP': pod.status?.podIP,
  }
  if (!(path in fields)) throw new Error(`fieldRef ${path} is not supported in the lab`)
  return fields[path] ?? ''
}

/**
 * Client requests to https://VIP:port/version from the client namespace, one new connection every
 * intervalMs (a process of its own there), until stop(); then the longest run of failures, measured
 * from the last success before it to the first success after it.
 */
export function startProbe(jl: JourneyLab, intervalMs = 50): {stop: () => Promise<ProbeResult>} {
  const file = join(jl.lab.dir, `probe-${Date.now()}.log`)
  const script = `
    import {request} from 'node:https'
    import {appendFileSync, readFileSync} from 'node:fs'
    const [url, caFile, out, interval] = process.argv.slice(1)
    const ca = readFileSync(caFile, 'utf8')
    let stop = false
    process.on('SIGTERM', () => { stop = true })
    while (!stop) {
      const t = Date.now()
      const ok = await new Promise((resolve) => {
        const req = request(url, {ca, agent: false, timeout: 500}, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode === 200)) })
        req.on('timeout', () => req.destroy(new Error('timeout')))
        req.on('error', () => resolve(false))
        req.end()
      })
      appendFileSync(out, t + ' ' + (ok ? 1 : 0) + '\\n')
      await new Promise((r) => setTimeout(r, Math.max(0, Number(interval) - (Date.now() - t))))
    }
    process.exit(0)
  `
  const proc = jl.lab.spawnIn(
    jl.lab.clientNs,
    [process.execPath, '--input-type=module', '-e', script, `https://${VIP}:${API_PORT}/version`, jl.cp.caFile, file, String(intervalMs)],
    {},
    join(jl.lab.dir, 'probe.err'),
  )
  return {
    stop: async () => {
      try {
        process.kill(proc.pid, 'SIGTERM')
      } catch {
        // gone already
      }
      await Promise.race([proc.exited, sleep(3000)])
      killGroup(proc.pid, 'SIGKILL')
      return probeResult(existsSync(file) ? readFileSync(file, 'utf8') : '')
    },
  }
}

export interface ProbeResult {
  requests: number
  failures: number
  /** Longest time without a successful request, from the success before a failure to the next, in s. */
  outageSeconds: number
  /** The last request succeeded. */
  endsOk: boolean
}

export function probeResult(text: string): ProbeResult {
  const samples = text
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ').map(Number) as [number, number])
  let lastOk: number | undefined
  let failing = false
  let outage = 0
  for (const [t, ok] of samples) {
    if (ok) {
      if (failing && lastOk !== undefined) outage = Math.max(outage, (t - lastOk) / 1000)
      failing = false
      lastOk = t
    } else failing = true
  }
  return {
    requests: samples.length,
    failures: samples.filter(([, ok]) => !ok).length,
    outageSeconds: outage,
    endsOk: samples.at(-1)?.[1] === 1,
  }
}
