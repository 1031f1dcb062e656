// Failover figures on real nodes: the real-node lab (lab/cluster.ts: three control-plane nodes, each with an
// etcd member, kube-apiserver, controller-manager, scheduler, containerd, kubelet and kube-proxy, in network
// namespaces), the karp agent installed with the CLI against plain ucarp run as a DaemonSet from the same
// image (plain-ucarp.yaml), each config on a cluster of its own.
//
//   npm run bench -- failover/real-nodes
//   node --import tsx bench/failover/real-nodes.ts [--trials 5] [--configs agent,plain]
//        [--scenarios power,apiserver,delete,heal,upgrade,drain,soak,memory] [--soak-minutes 10]
//        [--memory-seconds 60]   (after npm run build)
//
// Outage = the longest client outage the lab's API prober saw (GET /readyz through the VIP every 50 ms with
// the client's credentials, lab/api-prober.ts). Scenarios, each trial on the current holder:
//   power      power loss of the holder; then power on: the longest time two nodes held the VIP (sampled
//              every 100 ms) and the time until its VIP pod is Ready again
//   apiserver  the holder's kube-apiserver SIGKILLed (plain ucarp has no health gate: "never" moves, and the
//              outage is the whole window); then started again and eligible
//   delete     kubectl delete pod of the holder's VIP pod; the replacement Ready
//   upgrade    a new password rolled over all pods (karp install --password-file; plain: Secret + template);
//              the longest time two nodes held the VIP
//   drain      kubectl drain --ignore-daemonsets of the holder, then (agent: once another node holds the
//              VIP; plain: 3 s later) power loss; back on and uncordoned afterwards
//   heal       CARP dropped at the holder's bridge port until another node holds the VIP too, 2 s more, then
//              let through: time until exactly one node holds it, and whether the client's ARP cache ends there
//   soak       one trial of --soak-minutes (10) with stress-ng loading every core: VIP moves, samples with
//              two holders, the longest outage (all must be zero)
//   memory     steady state for --memory-seconds (60): every process of each node's VIP pod (its cgroup)
//              sampled every 10 ms, the sum of RSS and of PSS (lab/process.ts memoryKb), median and peak, of
//              the agent's processes (the container's main process and its descendants), and the peak with
//              the kubelet's exec probes (runc's init, healthcheck.sh and its children)
// For power, apiserver and delete: trials in which two nodes that did not hold the VIP took it together
// (holders sampled every 100 ms), what the agents' ranks prevent.
// Also lab up time, RSS of each node (every process in its namespace) and of the VIP pod's processes.
// Per-trial lines go to stderr; the table (Markdown) to stdout.
import {randomBytes} from 'node:crypto'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {parseArgs} from 'node:util'
import {execa} from 'execa'
import {parseAllDocuments, stringify} from 'yaml'
import {Cluster, clusterSkipReason, VIP} from '../../lab/cluster.js'
import {agentImage} from '../../lab/image.js'
import type {CommandResult} from '../../lab/node.js'
import {watchHolders, type HoldersSeen} from '../../lab/holders.js'
import {longestOutage, type Probe} from '../../lab/outage.js'
import {memoryKb, rssKb, sleep, splitByRoot, waitFor} from '../../lab/process.js'
import {DEFAULTS} from '../../src/lib/config/vip-config.js'
import {summarize} from '../stats.js'
import {cell, CONFIG_TITLES, randomPhaseMs, seconds, SideBySide} from './lib/table.js'
import {DEFAULT_API_PORT, KARP_SELECTOR} from '../../src/lib/constants.js'

const here = import.meta.dirname
const CONFIGS = ['agent', 'plain'] as const
const SCENARIOS = ['power', 'apiserver', 'delete', 'heal', 'upgrade', 'drain', 'soak', 'memory'] as const
type Config = (typeof CONFIGS)[number]
type Scenario = (typeof SCENARIOS)[number]

const {values} = parseArgs({
  options: {
    trials: {type: 'string', default: '5'},
    configs: {type: 'string', default: CONFIGS.join(',')},
    scenarios: {type: 'string', default: SCENARIOS.join(',')},
    'soak-minutes': {type: 'string', default: '10'},
    'memory-seconds': {type: 'string', default: '60'},
  },
})
const trials = Number(values.trials)
const configs = pick(values.configs, CONFIGS, '--configs')
const scenarios = pick(values.scenarios, SCENARIOS, '--scenarios')
if (!Number.isInteger(trials) || trials < 1) throw new Error(`--trials must be a positive integer, not ${values.trials}`)
const soakMinutes = Number(values['soak-minutes'])
if (!(soakMinutes > 0)) throw new Error(`--soak-minutes must be a number above 0, not ${values['soak-minutes']}`)
const memorySeconds = Number(values['memory-seconds'])
if (!(memorySeconds > 0)) throw new Error(`--memory-seconds must be a number above 0, not ${values['memory-seconds']}`)
const MEMORY_SAMPLE_MS = 10

/** How long plain ucarp is watched after its node's API server died: it has no health gate and never moves. */
const PLAIN_APISERVER_WINDOW_MS = 10_000
/** Plain ucarp ignores a drain; the bench waits this long before the drained holder's power goes. */
const PLAIN_DRAIN_WAIT_MS = 3000
const VIP_SERVER = `https://${VIP}:${DEFAULT_API_PORT}`
const log = (line: string) => console.error(`# failover/real-nodes: ${line}`)

function pick<T extends string>(list: string, allowed: readonly T[], flag: string): T[] {
  const chosen = list.split(',').filter(Boolean)
  const unknown = chosen.filter((c) => !allowed.includes(c as T))
  if (unknown.length > 0) throw new Error(`${flag}: unknown ${unknown.join(', ')} (one of ${allowed.join(', ')})`)
  return chosen as T[]
}

interface Pod {
  metadata: {name: string; creationTimestamp: string}
  spec: {nodeName?: string}
  status: {containerStatuses?: {ready: boolean; restartCount: number; state?: {running?: {startedAt: string}}}[]}
}

/** One trial's figures, in ms; `moved` is false when the VIP never left the holder. */
interface Trial {
  outageMs: number
  moved: boolean
  figures: Record<string, number>
  /** The holder before and after the trial. */
  path: string
}

/** The VIP's failover on one real cluster, with one config deployed. */
class RealNodeBench {
  /** Nodes whose API server does not answer now (powered off, or killed): management goes elsewhere. */
  private readonly unavailable = new Set<string>()
  private readonly passwordFile: string
  private revision = 0
  /** Heal trials after which the client's ARP cache named another node than the holder. */
  strandedClients = 0
  readonly memory = new Map<string, {node: number[]; pod: number[]}>()
  /** The memory scenario's samples of each node's VIP pod (kB). */
  readonly podMemory = new Map<
    string,
    {rss: number[]; pss: number[]; withRuntime: number[]; processes: number; peakRss: number; peak: string}
  >()

  constructor(
    readonly cluster: Cluster,
    readonly config: Config,
    readonly imageRef: string,
  ) {
    this.passwordFile = join(cluster.dir, 'bench-password')
  }

  get namespace(): string {
    return this.config === 'agent' ? DEFAULTS.namespace : 'plain-ucarp'
  }

  private get selector(): string {
    return this.config === 'agent' ? KARP_SELECTOR : 'app=plain-ucarp'
  }

  private get container(): string {
    return this.config === 'agent' ? 'agent' : 'ucarp'
  }

  /** A new password in a file (never on a command line, never printed): 16 hex characters, within ucarp's 19. */
  private newPassword(): string {
    const password = randomBytes(8).toString('hex')
    writeFileSync(this.passwordFile, `${password}\n`, {mode: 0o600})
    return password
  }

  /** kubectl through the API server of a node that serves now (the client kubeconfig names node1). */
  manage(args: string[], timeoutMs?: number): Promise<CommandResult> {
    const node = this.cluster.nodes.find((n) => !this.unavailable.has(n.name) && !n.down)
    if (!node) throw new Error('no node serves the API')
    return this.cluster.kubectl(['--server', `https://${node.host.ip}:${DEFAULT_API_PORT}`, ...args], timeoutMs)
  }

  private async must(args: string[], timeoutMs?: number): Promise<string> {
    const r = await this.manage(args, timeoutMs)
    if (r.exitCode !== 0) throw new Error(`kubectl ${args.join(' ')}: exit ${r.exitCode}: ${r.stderr.trim()}`)
    return r.stdout
  }

  /** Deploys the config and waits until its pods are Ready and one node holds the VIP; ms it took. */
  async install(): Promise<number> {
    const began = Date.now()
    await this.deploy()
    await this.steady()
    return Date.now() - began
  }

  /** Installs or rolls to a new password; returns when the rollout is complete. */
  private async deploy(): Promise<void> {
    const password = this.newPassword()
    if (this.config === 'agent') {
      const args = ['install', '--vip', VIP, '--image', this.imageRef, '--password-file', this.passwordFile, '--yes', '--timeout', '5m']
      const r = await this.cluster.karp(args, 360_000)
      if (r.exitCode !== 0) throw new Error(`karp ${args.join(' ')}: exit ${r.exitCode}: ${r.stderr.trim()}`)
      return
    }
    this.revision++
    const file = join(this.cluster.dir, 'plain-ucarp.yaml')
    writeFileSync(
      file,
      renderPlain({
        image: this.imageRef,
        vip: VIP,
        vhid: String(DEFAULTS.vhid),
        password,
        revision: String(this.revision),
        upScript: readFileSync(join(here, 'plain-up.sh'), 'utf8'),
        downScript: readFileSync(join(here, 'plain-down.sh'), 'utf8'),
      }),
      {mode: 0o600},
    )
    await this.must(['apply', '-f', file])
    await this.must(['rollout', 'status', 'daemonset/ucarp', '-n', this.namespace, '--timeout=5m'], 330_000)
  }

  async pods(): Promise<Pod[]> {
    return (JSON.parse(await this.must(['get', 'pods', '-n', this.namespace, '-l', this.selector, '-o', 'json'])) as {items: Pod[]}).items
  }

  async podOn(node: string): Promise<Pod | undefined> {
    return (await this.pods()).find((p) => p.spec.nodeName === node)
  }

  /** Exactly one node (other than `except`) holds the VIP, still so 1.5 s later; that node. */
  async oneHolder(timeoutMs = 60_000, except?: string): Promise<string> {
    let holders: string[] = []
    await waitFor(
      `exactly one VIP holder${except ? ` other than ${except}` : ''}`,
      timeoutMs,
      async () => {
        holders = await this.cluster.holders()
        if (holders.length !== 1 || holders[0] === except) return false
        await sleep(1500)
        const again = await this.cluster.holders()
        return again.length === 1 && again[0] === holders[0]
      },
      () => `holders: [${holders.join(', ')}]`,
    )
    return holders[0] as string
  }

  /** Another node than `from` holds the VIP (the first sample that shows one; the prober measures the rest). */
  async otherHolder(from: string, timeoutMs = 60_000): Promise<void> {
    await waitFor(
      `a VIP holder other than ${from}`,
      timeoutMs,
      async () => (await this.cluster.holders()).some((h) => h !== from),
      undefined,
      100,
    )
  }

  async throughVip(timeoutMs = 30_000): Promise<void> {
    let last = ''
    await waitFor(
      'kubectl get nodes through the VIP',
      timeoutMs,
      async () => {
        const r = await this.cluster.kubectl(['--server', VIP_SERVER, 'get', 'nodes', '-o', 'name', '--request-timeout=2s'])
        last = r.stderr || r.stdout
        return r.exitCode === 0
      },
      () => last,
      250,
    )
  }

  /** The pod on `node` runs a container started at or after `since` (ms since epoch) and is Ready. */
  async podReadySince(node: string, since: number, timeoutMs = 120_000): Promise<void> {
    await waitFor(
      `the ${this.container} pod on ${node} Ready again`,
      timeoutMs,
      async () => {
        const status = (await this.podOn(node))?.status.containerStatuses?.[0]
        const started = Date.parse(status?.state?.running?.startedAt ?? '')
        // startedAt has whole seconds.
        return status?.ready === true && started >= Math.floor(since / 1000) * 1000
      },
      undefined,
      500,
    )
  }

  /** Every pod Ready, exactly one holder, the client served through the VIP; records memory; the holder. */
  async steady(): Promise<string> {
    await waitFor(
      `${this.cluster.nodes.length} Ready ${this.container} pods`,
      120_000,
      async () => {
        const pods = await this.pods()
        return pods.length === this.cluster.nodes.length && pods.every((p) => p.status.containerStatuses?.[0]?.ready === true)
      },
      undefined,
      1000,
    )
    const holder = await this.oneHolder()
    await this.throughVip()
    await this.sampleMemory()
    return holder
  }

  private async sampleMemory(): Promise<void> {
    for (const n of this.cluster.nodes) {
      const ids = await n.kube.runtime.crictl(['ps', '-q', '--state', 'Running', '--name', `^${this.container}$`], {reject: false})
      let pod = 0
      for (const id of ids.stdout.split('\n').filter(Boolean)) pod += rssKb((await n.kube.runtime.processes(id)).map((p) => p.pid))
      const m = this.memory.get(n.name) ?? {node: [], pod: []}
      m.node.push(this.cluster.nodeRssKb(n.name))
      if (pod > 0) m.pod.push(pod)
      this.memory.set(n.name, m)
    }
  }

  private async powerOff(name: string): Promise<void> {
    this.unavailable.add(name)
    await this.cluster.powerOff(name)
  }

  /** Power on, the node Ready, its VIP pod Ready on a container started after power-on; ms until then. */
  private async powerOn(name: string): Promise<number> {
    const on = Date.now()
    await this.cluster.powerOn(name)
    await this.cluster.controlPlane.waitReady(name, 60_000)
    this.unavailable.delete(name)
    await this.cluster.node(name).kube.waitReady(60_000)
    await this.podReadySince(name, on)
    return Date.now() - on
  }

  /**
   * Starts the prober and the holder samples, runs `disrupt` after 1 s of good probes, stops both 1 s after
   * `recovered`: the longest outage, whether two nodes that did not hold the VIP before took it together,
   * and the longest time two nodes held it.
   */
  private async measured(
    disrupt: () => Promise<void>,
    recovered: () => Promise<void>,
  ): Promise<{outageMs: number; together: number; doubleMs: number}> {
    const probe = this.cluster.startProbe()
    const watch = watchHolders(() => this.cluster.holders())
    let probes: Probe[]
    let seen: HoldersSeen
    try {
      await sleep(1000)
      await disrupt()
      await recovered()
      await sleep(1000)
    } finally {
      probes = await probe.stop()
      seen = await watch.stop()
    }
    return {outageMs: longestOutage(probes), together: seen.promotedTogether.length > 0 ? 1 : 0, doubleMs: seen.doubleMs}
  }

  async trial(scenario: Scenario): Promise<Trial> {
    const holder = await this.steady()
    if (scenario !== 'soak') await sleep(randomPhaseMs())
    const result = await this.disrupt(scenario, holder)
    return {...result, path: `${holder} -> ${(await this.cluster.holders()).join(' + ') || 'none'}`}
  }

  private async disrupt(scenario: Scenario, holder: string): Promise<Omit<Trial, 'path'>> {
    switch (scenario) {
      case 'power': {
        const {outageMs, together} = await this.measured(
          () => this.powerOff(holder),
          async () => {
            await this.otherHolder(holder)
            await this.throughVip()
          },
        )
        const watch = watchHolders(() => this.cluster.holders())
        let backMs: number
        let doubleMs: number
        try {
          backMs = await this.powerOn(holder)
          await this.oneHolder()
        } finally {
          doubleMs = (await watch.stop()).doubleMs
        }
        return {outageMs, moved: true, figures: {doubleMs, backMs, together}}
      }
      case 'apiserver': {
        let moved = true
        const {outageMs, together} = await this.measured(
          async () => {
            this.unavailable.add(holder)
            await this.cluster.killApiServer(holder)
          },
          async () => {
            if (this.config === 'plain') {
              await sleep(PLAIN_APISERVER_WINDOW_MS)
              moved = !(await this.cluster.holders()).includes(holder)
              return
            }
            await this.otherHolder(holder)
            await this.throughVip()
          },
        )
        const restarted = Date.now()
        await this.cluster.startApiServer(holder)
        this.unavailable.delete(holder)
        if (this.config === 'plain') return {outageMs, moved, figures: moved ? {together} : {}}
        await this.eligibleSince(holder, restarted)
        const eligibleMs = Date.now() - restarted
        // A flap: the VIP goes back to the node now that it is eligible again (it must not, without preemption).
        await sleep(3000)
        const flaps = (await this.oneHolder()) === holder ? 1 : 0
        if (flaps) await this.printRoleChanges(restarted - 30_000)
        return {outageMs, moved, figures: {eligibleMs, flaps, together}}
      }
      case 'delete': {
        const pod = await this.podOn(holder)
        if (!pod) throw new Error(`no ${this.container} pod on ${holder}`)
        let deleted = 0
        let replacedMs = 0
        const {outageMs, together} = await this.measured(
          async () => {
            deleted = Date.now()
            await this.must(['delete', 'pod', '-n', this.namespace, pod.metadata.name, '--wait=false'])
          },
          async () => {
            await this.otherHolder(holder)
            await waitFor(
              `a new ${this.container} pod on ${holder} Ready`,
              120_000,
              async () => {
                const now = await this.podOn(holder)
                return now !== undefined && now.metadata.name !== pod.metadata.name && now.status.containerStatuses?.[0]?.ready === true
              },
              undefined,
              500,
            )
            replacedMs = Date.now() - deleted
            await this.throughVip()
          },
        )
        return {outageMs, moved: true, figures: {replacedMs, together}}
      }
      case 'heal': {
        // A partition of CARP alone (advertisements dropped at the holder's switch port): the holder keeps
        // the VIP and its API server, the others elect a master of their own; then the partition heals and
        // the two masters meet. Time from the heal until exactly one node holds the VIP, still so 1.5 s later.
        let healMs = 0
        let healed = 0
        const {outageMs} = await this.measured(
          async () => {
            await this.cluster.carpCut(holder, true)
            try {
              await this.otherHolder(holder)
              await sleep(2000)
            } finally {
              healed = Date.now()
              await this.cluster.carpCut(holder, false)
            }
          },
          async () => {
            await waitFor('one VIP holder after the heal', 60_000, async () => (await this.cluster.holders()).length === 1, undefined, 20)
            healMs = Date.now() - healed
            const one = await this.oneHolder()
            await this.throughVip()
            // Every client's ARP cache must end on the holder: the client's neighbour entry names it.
            await sleep(2000)
            if ((await this.cluster.clientArpNode()) !== one) this.strandedClients++
          },
        )
        return {outageMs, moved: true, figures: {healMs}}
      }
      case 'soak': {
        // Steady state with every core loaded: nothing may move.
        const watch = watchHolders(() => this.cluster.holders())
        const probe = this.cluster.startProbe()
        const stress = execa('stress-ng', ['--cpu', '0', '--cpu-method', 'matrixprod', '--timeout', `${Math.round(soakMinutes * 60)}s`], {
          reject: false,
        })
        let probes: Probe[]
        let seen: HoldersSeen
        let stressed
        try {
          stressed = await stress
        } finally {
          stress.kill('SIGKILL')
          probes = await probe.stop()
          seen = await watch.stop()
        }
        if (stressed.exitCode !== 0) throw new Error(`stress-ng: exit ${String(stressed.exitCode)}: ${stressed.stderr}`)
        return {
          outageMs: longestOutage(probes),
          moved: seen.moves > 0,
          figures: {
            moves: seen.moves,
            doubleSamples: seen.doubleSamples,
            together: seen.promotedTogether.length,
            samples: seen.samples.length,
          },
        }
      }
      case 'memory': {
        const readers = await Promise.all(
          this.cluster.nodes.map(async (n) => {
            const ids = (await n.kube.runtime.crictl(['ps', '-q', '--state', 'Running', '--name', `^${this.container}$`])).stdout
              .split('\n')
              .filter(Boolean)
            if (ids.length !== 1) throw new Error(`${n.name}: ${ids.length} running ${this.container} containers`)
            const id = ids[0] as string
            return {node: n.name, pids: await n.kube.runtime.cgroupPids(id), main: (await n.kube.runtime.inspect(id)).info.pid}
          }),
        )
        const end = Date.now() + memorySeconds * 1000
        while (Date.now() < end) {
          for (const {node, pids, main} of readers) {
            const m = memoryKb(pids())
            // The kubelet's exec probes (healthcheck.sh) run through `runc exec` in the pod's cgroup: runc's init
            // process, about 10 MB until the probe's shell replaces it, and the probe's own processes are charged to
            // the pod's memory limit; the agent's processes are the container's main process (the entrypoint's
            // shell) and what descends from it (ucarp, hooks, karp-tls).
            const agent = splitByRoot(m.parts, main).tree
            const rss = agent.reduce((n, p) => n + p.rss, 0)
            const kept = this.podMemory.get(node) ?? {rss: [], pss: [], withRuntime: [], processes: 0, peakRss: 0, peak: ''}
            if (rss > kept.peakRss) {
              kept.peakRss = rss
              kept.peak = agent.map((p) => `${p.comm} ${mb2(p.rss)}/${mb2(p.pss)}`).join(', ')
            }
            kept.rss.push(rss)
            kept.pss.push(agent.reduce((n, p) => n + p.pss, 0))
            kept.withRuntime.push(m.rss)
            kept.processes = Math.max(kept.processes, agent.length)
            this.podMemory.set(node, kept)
          }
          await sleep(MEMORY_SAMPLE_MS)
        }
        for (const [node, m] of this.podMemory) log(`${this.config}: ${node}'s VIP pod at its RSS peak (process RSS/PSS MB): ${m.peak}`)
        return {outageMs: 0, moved: false, figures: {}}
      }
      case 'upgrade': {
        let rolloutMs = 0
        const {outageMs, doubleMs} = await this.measured(
          async () => {
            const began = Date.now()
            await this.deploy()
            rolloutMs = Date.now() - began
          },
          () => this.oneHolder().then(() => undefined),
        )
        return {outageMs, moved: true, figures: {rolloutMs, doubleMs}}
      }
      case 'drain': {
        let handoverMs: number | undefined
        const {outageMs} = await this.measured(
          async () => {
            const began = Date.now()
            await this.must(['drain', holder, '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=60s'], 90_000)
            if (this.config === 'agent') {
              await this.otherHolder(holder)
              handoverMs = Date.now() - began
            } else await sleep(PLAIN_DRAIN_WAIT_MS)
            await this.powerOff(holder)
          },
          async () => {
            await this.otherHolder(holder)
            await this.throughVip()
          },
        )
        await this.powerOn(holder)
        await this.must(['uncordon', holder])
        await this.oneHolder()
        return {outageMs, moved: true, figures: handoverMs === undefined ? {} : {handoverMs}}
      }
    }
  }

  /** The agent on `node` logged a passing health gate after `since`. */
  private async eligibleSince(node: string, since: number): Promise<void> {
    await waitFor(
      `the agent on ${node} eligible again`,
      60_000,
      async () => {
        const pod = await this.podOn(node)
        if (!pod) return false
        const logs = await this.manage([
          'logs',
          '-n',
          this.namespace,
          pod.metadata.name,
          `--since-time=${new Date(since - 1000).toISOString()}`,
        ])
        return logs.stdout.includes('health check passed')
      },
      undefined,
      500,
    )
  }

  /** The agents' role changes since `since`, to stderr: what a flap looked like from the nodes. */
  private async printRoleChanges(since: number): Promise<void> {
    for (const pod of await this.pods()) {
      const logs = await this.manage(['logs', '-n', this.namespace, pod.metadata.name, `--since-time=${new Date(since).toISOString()}`])
      for (const line of logs.stdout.split('\n').filter((l) => l.includes('role='))) console.error(`  ${pod.spec.nodeName}: ${line}`)
    }
  }

  /** After a failed trial: every node powered and serving, none cordoned. */
  async recover(): Promise<void> {
    for (const n of this.cluster.nodes) {
      if (n.down) await this.cluster.powerOn(n.name)
      if (this.unavailable.has(n.name)) {
        try {
          await this.cluster.controlPlane.waitReady(n.name, 5000)
        } catch {
          await this.cluster.startApiServer(n.name)
        }
        this.unavailable.delete(n.name)
      }
    }
    await this.manage(['uncordon', ...this.cluster.nodes.map((n) => n.name)])
  }
}

/** The baseline's objects: plain-ucarp.yaml with each whole-value `$(plain.KEY)` replaced by values[KEY]. */
function renderPlain(values: Record<string, string>): string {
  const fill = (node: unknown): unknown => {
    if (typeof node === 'string') {
      const key = /^\$\(plain\.(\w+)\)$/.exec(node)?.[1]
      if (key === undefined) return node
      const value = values[key]
      if (value === undefined) throw new Error(`plain-ucarp.yaml: no value for ${node}`)
      return value
    }
    if (Array.isArray(node)) return node.map(fill)
    if (node !== null && typeof node === 'object') return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, fill(v)]))
    return node
  }
  return parseAllDocuments(readFileSync(join(here, 'plain-ucarp.yaml'), 'utf8'))
    .map((doc) => stringify(fill(doc.toJS())))
    .join('---\n')
}

const mb = (kb: number) => (kb / 1024).toFixed(0)
const mb2 = (kb: number) => (kb / 1024).toFixed(2)

type Rows = SideBySide<Config>

const ROW = {
  power: {
    outage: 'power loss: client outage',
    together: 'power loss: two survivors took the VIP together (trials)',
    doubleMs: 'power loss: back on, two holders at most',
    backMs: 'power loss: back on, pod Ready after',
  },
  apiserver: {
    outage: 'API server death: client outage',
    together: 'API server death: two survivors took the VIP together (trials)',
    eligibleMs: 'API server death: back, eligible after',
    flaps: 'API server death: VIP back to the node (flap)',
  },
  delete: {
    outage: 'graceful delete: client outage',
    together: 'graceful delete: two survivors took the VIP together (trials)',
    replacedMs: 'graceful delete: replacement Ready after',
  },
  heal: {outage: 'CARP partition heals: client outage', healMs: 'CARP partition heals: one holder after'},
  upgrade: {
    outage: 'rolling upgrade: client outage',
    doubleMs: 'rolling upgrade: two holders at most',
    rolloutMs: 'rolling upgrade: rollout took',
  },
  drain: {outage: 'drain + power loss: client outage', handoverMs: 'drain: VIP on another node after'},
  soak: {
    outage: `soak, every core loaded: longest client outage`,
    moves: 'soak: VIP moves',
    doubleSamples: 'soak: samples with two holders',
    together: 'soak: two nodes took the VIP together',
    samples: 'soak: holder samples (every 100 ms)',
  },
  // Its rows are the samples' (podMemory), not a trial's.
  memory: {},
} as const

async function runConfig(config: Config, imageRef: string, rows: Rows): Promise<void> {
  const cluster = await Cluster.start({log})
  try {
    const s = cluster.startup
    rows.put(
      'lab up (network, control plane, nodes Ready)',
      config,
      `${s.total.toFixed(1)} s (${s.network.toFixed(1)} + ${s.controlPlane.toFixed(1)} + ${s.nodes.toFixed(1)})`,
    )
    const bench = new RealNodeBench(cluster, config, imageRef)
    const installMs = await bench.install()
    rows.put('install (karp install; plain: kubectl apply) until one holder', config, `${seconds(installMs)} s`)
    log(`${config}: lab up in ${s.total.toFixed(1)} s, installed in ${seconds(installMs)} s`)
    for (const scenario of scenarios) {
      const results: Trial[] = []
      let failed = 0
      // A failed trial (a timeout, a command that failed) is reported, and another one takes its place.
      const wanted = scenario === 'soak' || scenario === 'memory' ? 1 : trials
      for (let attempt = 1; results.length < wanted && failed < wanted; attempt++) {
        try {
          const r = await bench.trial(scenario)
          results.push(r)
          const extra = Object.entries(r.figures)
            .map(([k, v]) => `${k} ${k.endsWith('Ms') ? seconds(v) : v}`)
            .join(', ')
          console.error(
            `${config} ${scenario} #${attempt} (${r.path}): outage ${r.moved || scenario === 'soak' ? `${seconds(r.outageMs)} s` : `never moved (${seconds(r.outageMs)} s window)`}${extra ? `, ${extra}` : ''}`,
          )
        } catch (err) {
          failed++
          console.error(`${config} ${scenario} #${attempt}: FAILED: ${(err as Error).message}`)
          await bench.recover()
        }
      }
      if (scenario === 'heal')
        rows.put(
          'CARP partition heals: client ARP cache left at a node without the VIP (trials)',
          config,
          `${bench.strandedClients}/${results.length}`,
        )
      const labels = ROW[scenario] as Record<string, string | undefined>
      // In the soak, moving is what must not happen: its outage counts whatever happened.
      const movedTrials = scenario === 'soak' ? results : results.filter((r) => r.moved)
      const never = results.length - movedTrials.length
      let outage = cell(
        movedTrials.map((r) => r.outageMs),
        results.length,
      )
      if (never === results.length && never > 0)
        outage = `never moved (${never}/${results.length}; outage = the ${seconds(PLAIN_APISERVER_WINDOW_MS)} s window)`
      else if (never > 0) outage += `; never moved in ${never}`
      if (failed > 0) outage += `; ${failed} more trial(s) failed`
      if (labels.outage) rows.put(labels.outage, config, outage)
      else if (failed > 0) rows.put(`${scenario}: failed trials`, config, String(failed))
      for (const [key, label] of Object.entries(labels)) {
        if (key === 'outage' || label === undefined) continue
        const values = results.map((r) => r.figures[key]).filter((v): v is number => v !== undefined)
        if (values.length === 0) continue
        if (key === 'flaps' || (key === 'together' && scenario !== 'soak'))
          rows.put(label, config, `${values.filter((v) => v > 0).length}/${values.length}`)
        else if (scenario === 'soak') rows.put(label, config, String(values.reduce((a, b) => a + b, 0)))
        else rows.put(label, config, cell(values, results.length))
      }
    }
    for (const [node, m] of bench.podMemory) {
      const rss = summarize(m.rss)
      const pss = summarize(m.pss)
      const title = `VIP pod on ${node}, every ${MEMORY_SAMPLE_MS} ms for ${memorySeconds} s (${m.rss.length} samples)`
      rows.put(
        `${title}: sum of RSS, the agent's processes (up to ${m.processes} at once)`,
        config,
        `${mb2(rss.median)} MB (peak ${mb2(rss.max)})`,
      )
      rows.put(`${title}: sum of PSS, the agent's processes`, config, `${mb2(pss.median)} MB (peak ${mb2(pss.max)})`)
      rows.put(`${title}: sum of RSS with the kubelet's exec probes`, config, `peak ${mb2(Math.max(...m.withRuntime))} MB`)
    }
    for (const [node, m] of bench.memory) {
      const whole = summarize(m.node)
      rows.put(`RSS ${node}: every process of the node`, config, `${mb(whole.median)} MB (max ${mb(whole.max)})`)
      if (m.pod.length > 0) {
        const pod = summarize(m.pod)
        rows.put(
          `RSS ${node}: the VIP pod's processes`,
          config,
          `${(pod.median / 1024).toFixed(1)} MB (max ${(pod.max / 1024).toFixed(1)})`,
        )
      }
    }
  } finally {
    await cluster.stop()
  }
}

const skip = await clusterSkipReason()
if (skip) {
  console.error(`bench/failover/real-nodes: skipped: ${skip}`)
  process.exit(0)
}
const image = await agentImage()
const imageRef = `${image.name}:${image.tag}@${image.indexDigest}`
const commit = (await execa('git', ['-C', here, 'describe', '--always', '--dirty', '--abbrev=12'], {reject: false})).stdout || 'unknown'
console.error(
  `bench/failover/real-nodes: ${trials} trials x [${scenarios.join(', ')}] x [${configs.join(', ')}], commit ${commit}, image ${imageRef}`,
)
const rows: Rows = new SideBySide(configs, CONFIG_TITLES)
for (const config of configs) await runConfig(config, imageRef, rows)
console.log(
  `Commit ${commit}, agent image ${image.tag}@${image.indexDigest.slice(0, 19)}; median (min-max) over ${trials} trials, 3 control-plane nodes, probe every 50 ms.\n`,
)
console.log(rows.markdown())
