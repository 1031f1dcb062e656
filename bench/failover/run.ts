// Failover benchmark: client-side outage of the VIP in the netns lab (test/e2e/lab.ts), for the karp agent
// and, in the same run, for plain ucarp with default settings as the baseline.
//
//   node --import tsx bench/failover/run.ts [--trials 10] [--configs agent,plain]
//        [--scenarios crash,agent-crash,graceful,health,heal] [--nodes 3] [--toolset busybox|host] [--env KEY=VALUE ...]
//
// A client namespace connects to VIP:6443 every 50 ms and reads the name of the node that answered. Per
// trial: outage = total time covered by failed probes (from the first failed probe to the next success,
// summed), gaps = how many separate failure runs. Scenarios, each on the current holder:
//   crash     agent SIGKILLed and the node's link cut at once (the node is gone)
//   agent-crash  agent SIGKILLed only: the node and its API server stay up, its VIP stays on eth0 (the
//             agent's until its lease runs out, plain ucarp's for good): when the stale VIP went, and how
//             long two nodes held the VIP
//   graceful  SIGTERM to the agent (plain: to ucarp, which runs --shutdown's down script)
//   health    the node's stand-in API server killed (plain ucarp has no health gate: it never moves)
//   heal      the holder's bridge port detached until another node holds the VIP, then reattached:
//             time until exactly one node holds the VIP, and the client outage around it
// Also the RSS of all agent processes per node (median and max of 1 s samples). Per-trial lines go to stderr;
// the table (Markdown, the agent beside plain ucarp) to stdout. Needs root, iproute2, ucarp.
import {appendFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {parseArgs} from 'node:util'
import {Lab, labSkipReason, killGroup, sleep, VIP, VHID, type LabNode, type Proc} from '../../lab/agent-lab.js'
import {summarize} from '../stats.js'
import {cell, CONFIG_TITLES, randomPhaseMs, seconds, SideBySide} from './lib/table.js'
import {DEFAULT_API_PORT} from '../../src/lib/constants.js'

const here = import.meta.dirname
type Config = 'agent' | 'plain'
type Scenario = 'crash' | 'agent-crash' | 'graceful' | 'health' | 'heal'

const {values} = parseArgs({
  options: {
    trials: {type: 'string', default: '10'},
    configs: {type: 'string', default: 'agent,plain'},
    scenarios: {type: 'string', default: 'crash,agent-crash,graceful,health,heal'},
    nodes: {type: 'string', default: '3'},
    toolset: {type: 'string', default: 'busybox'},
    env: {type: 'string', multiple: true, default: []},
  },
})
const trials = Number(values.trials)
const configs = values.configs.split(',') as Config[]
const scenarios = values.scenarios.split(',') as Scenario[]
const nodeCount = Number(values.nodes)
const toolset = values.toolset === 'host' ? 'host' : 'busybox'
const extraEnv = Object.fromEntries(values.env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]))
const PROBE_MS = 50
const SETTLE_MS = 3000
const TRIAL_TIMEOUT_MS = 20_000
const PLAIN_HEALTH_WAIT_MS = 10_000

interface Probe {
  t: number
  name: string | null
}

interface Trial {
  outageMs: number
  gaps: number
  /** heal: ms from reattaching until exactly one holder; other scenarios: ms until a new node answered. */
  recoveryMs: number | null
  /** Masters that yielded to a preferred one during the trial (two nodes had promoted together). */
  yields: number
  /** agent-crash: ms from the kill until the old holder's VIP was gone (null: still there) and ms with two holders. */
  stale?: {goneMs: number | null; doubleMs: number}
}

class Bench {
  readonly probes: Probe[] = []
  private prober?: Proc
  private plain = new Map<string, Proc>()
  readonly rss = new Map<string, number[]>()

  constructor(
    readonly lab: Lab,
    readonly config: Config,
  ) {}

  async start(): Promise<void> {
    for (const n of this.lab.nodes) this.lab.startService(n)
    for (const n of this.lab.nodes) await this.lab.waitForService(n)
    for (const n of this.lab.nodes) this.startAgent(n)
    await this.lab.waitForOneHolder(30_000)
    const log = join(this.lab.dir, 'prober.out')
    writeFileSync(log, '')
    this.prober = this.lab.spawnIn(
      this.lab.clientNs,
      [process.execPath, '--no-warnings', join(here, '../../lab/tcp-prober.ts'), VIP, String(DEFAULT_API_PORT), String(PROBE_MS), '500'],
      {},
      log,
    )
    this.tailProbes(log)
    await sleep(2000)
  }

  private tailProbes(file: string): void {
    let offset = 0
    let rest = ''
    const read = async (): Promise<void> => {
      const {open} = await import('node:fs/promises')
      const fh = await open(file, 'r')
      try {
        const buf = Buffer.alloc(1 << 20)
        const {bytesRead} = await fh.read(buf, 0, buf.length, offset)
        offset += bytesRead
        const lines = (rest + buf.subarray(0, bytesRead).toString()).split('\n')
        rest = lines.pop() ?? ''
        for (const line of lines) {
          const [t, name] = line.split(' ')
          if (t && name) this.probes.push({t: Number(t), name: name === '-' ? null : name})
        }
      } finally {
        await fh.close()
      }
    }
    const timer = setInterval(() => void this.flush(), 100)
    // One read at a time: concurrent reads would see the same offset and count probes twice.
    let reading: Promise<void> = Promise.resolve()
    this.flush = () => (reading = reading.then(read))
    this.stopTail = async () => {
      clearInterval(timer)
      await this.flush()
    }
  }

  flush: () => Promise<void> = async () => {}
  stopTail: () => Promise<void> = async () => {}

  startAgent(n: LabNode): void {
    if (this.config === 'agent') {
      this.lab.startAgent(n, {toolset, env: extraEnv})
      return
    }
    const args = [
      'ucarp',
      `--interface=eth0`,
      `--srcip=${n.ip}`,
      `--vhid=${VHID}`,
      `--passfile=${join(n.dir, 'password')}`,
      `--addr=${VIP}`,
    ]
    args.push(`--upscript=${join(here, 'plain-up.sh')}`, `--downscript=${join(here, 'plain-down.sh')}`, '--shutdown')
    this.plain.set(n.name, this.lab.spawnIn(n.ns, args, {}, join(n.dir, 'agent.log')))
  }

  agentPid(n: LabNode): number | undefined {
    return this.config === 'agent' ? n.agent?.pid : this.plain.get(n.name)?.pid
  }

  async stopGracefully(n: LabNode): Promise<void> {
    if (this.config === 'agent') {
      await this.lab.stopAgent(n)
      return
    }
    const p = this.plain.get(n.name)
    if (!p) return
    process.kill(p.pid, 'SIGTERM')
    await p.exited
    this.plain.delete(n.name)
  }

  async kill(n: LabNode): Promise<void> {
    if (this.config === 'agent') {
      await this.lab.killAgent(n)
      return
    }
    const p = this.plain.get(n.name)
    if (!p) return
    killGroup(p.pid, 'SIGKILL')
    await p.exited
    this.plain.delete(n.name)
  }

  /**
   * Samples the holders every 20 ms from t0 until the old holder's VIP is gone (plain ucarp's never goes:
   * at most 8 s): when it went, and how long another node held the VIP too.
   */
  async watchStaleVip(old: LabNode, t0: number): Promise<{goneMs: number | null; doubleMs: number}> {
    const until = t0 + (this.config === 'plain' ? 8000 : TRIAL_TIMEOUT_MS)
    let doubleMs = 0
    let last = Date.now()
    while (Date.now() < until) {
      const holders = await this.lab.holders()
      const now = Date.now()
      if (holders.length > 1) doubleMs += now - last
      last = now
      if (!holders.includes(old.name)) return {goneMs: now - t0, doubleMs}
      await sleep(20)
    }
    return {goneMs: null, doubleMs}
  }

  /** Plain ucarp leaves a SIGKILLed holder's VIP behind; the bench removes it as a reboot would. */
  async clearStaleVip(n: LabNode): Promise<void> {
    if (this.config === 'plain' && (await this.lab.holdsVip(n))) {
      const {execa} = await import('execa')
      await execa('ip', ['-n', n.ns, 'addr', 'del', `${VIP}/32`, 'dev', 'eth0'])
    }
  }

  sampleRss(): void {
    for (const n of this.lab.nodes) {
      const pid = this.agentPid(n)
      if (pid === undefined) continue
      const list = this.rss.get(n.name) ?? []
      list.push(Lab.treeRssKb(pid))
      this.rss.set(n.name, list)
    }
  }

  async steady(): Promise<string> {
    const holder = await this.lab.waitForOneHolder(30_000)
    const deadline = Date.now() + 15_000
    // Steady means the client is served by the holder again, whatever its ARP cache went through.
    while (Date.now() < deadline) {
      const last = this.probes.slice(-10)
      if (last.length === 10 && last.every((p) => p.name === holder)) break
      await sleep(200)
    }
    this.sampleRss()
    return holder
  }

  /** Outage and gaps over probes started in [from, to]. */
  outage(from: number, to: number): {outageMs: number; gaps: number; firstOkAfterFailure?: Probe} {
    const window = this.probes.filter((p) => p.t >= from && p.t <= to).sort((a, b) => a.t - b.t)
    let outageMs = 0
    let gaps = 0
    let failStart: number | undefined
    for (const p of window) {
      if (p.name === null) {
        failStart ??= p.t
      } else if (failStart !== undefined) {
        outageMs += p.t - failStart
        gaps++
        failStart = undefined
      }
    }
    if (failStart !== undefined) {
      outageMs += to - failStart
      gaps++
    }
    return {outageMs, gaps}
  }

  yieldCount(): number {
    // Only the agent logs it; plain ucarp logs ucarp's own line for the same event.
    const marker = this.config === 'agent' ? 'reason="a preferred master advertised"' : 'Preferred master advertised'
    return this.lab.nodes.reduce((sum, n) => sum + this.lab.agentLog(n).split(marker).length - 1, 0)
  }

  async trial(scenario: Scenario): Promise<Trial> {
    const holderName = await this.steady()
    await sleep(randomPhaseMs())
    const yieldsBefore = this.yieldCount()
    const holder = this.lab.node(holderName)
    const t0 = Date.now()
    let recoveryMs: number | null = null
    let restore: () => Promise<void>
    let stale: Promise<{goneMs: number | null; doubleMs: number}> | undefined
    switch (scenario) {
      case 'crash':
        await Promise.all([this.kill(holder), this.lab.cutLink(holder)])
        restore = async () => {
          await this.clearStaleVip(holder)
          this.startAgent(holder)
          await sleep(1500)
          await this.lab.restoreLink(holder)
        }
        break
      case 'agent-crash':
        await this.kill(holder)
        stale = this.watchStaleVip(holder, t0)
        restore = async () => {
          await this.clearStaleVip(holder)
          this.startAgent(holder)
        }
        break
      case 'graceful': {
        // Not awaited yet: the agent's make-before-break keeps it alive until a successor holds the VIP.
        const stopped = this.stopGracefully(holder)
        restore = async () => {
          await stopped
          this.startAgent(holder)
        }
        break
      }
      case 'health':
        await this.lab.killService(holder)
        restore = async () => {
          this.lab.startService(holder)
          await this.lab.waitForService(holder)
        }
        break
      case 'heal': {
        await this.lab.isolate(holder)
        await this.lab.waitForHolders('a second holder during the partition', (h) => h.some((n) => n !== holderName), TRIAL_TIMEOUT_MS, 0)
        await sleep(2000)
        const tHeal = Date.now()
        await this.lab.rejoin(holder)
        while (Date.now() - tHeal < TRIAL_TIMEOUT_MS) {
          if ((await this.lab.holders()).length === 1) {
            recoveryMs = Date.now() - tHeal
            break
          }
          await sleep(20)
        }
        await sleep(SETTLE_MS)
        await this.flush()
        const {outageMs, gaps} = this.outage(tHeal, Date.now())
        return {outageMs, gaps, recoveryMs, yields: this.yieldCount() - yieldsBefore}
      }
    }
    // Recovered: a probe answered by another node than the old holder.
    const wait = this.config === 'plain' && scenario === 'health' ? PLAIN_HEALTH_WAIT_MS : TRIAL_TIMEOUT_MS
    while (Date.now() - t0 < wait) {
      const ok = this.probes.find((p) => p.t >= t0 && p.name !== null && p.name !== holderName)
      if (ok) {
        recoveryMs = ok.t - t0
        break
      }
      await sleep(100)
    }
    await sleep(SETTLE_MS)
    await this.flush()
    const {outageMs, gaps} = this.outage(t0 - 100, Date.now())
    const yields = this.yieldCount() - yieldsBefore
    const staleVip = await stale
    await restore()
    return {outageMs, gaps, recoveryMs, yields, ...(staleVip && {stale: staleVip})}
  }

  async stop(): Promise<void> {
    await this.stopTail()
    if (this.prober) killGroup(this.prober.pid, 'SIGKILL')
  }
}

const TITLES: Record<Scenario, string> = {
  crash: 'holder node lost (agent killed, link cut)',
  'agent-crash': 'agent killed, node stays up',
  graceful: 'graceful stop',
  health: 'API server dies on the holder',
  heal: 'CARP partition heals',
}

async function runConfig(config: Config, rows: SideBySide<Config>): Promise<void> {
  const lab = await Lab.create(nodeCount)
  const bench = new Bench(lab, config)
  try {
    await bench.start()
    for (const scenario of scenarios) {
      const results: Trial[] = []
      for (let i = 0; i < trials; i++) {
        const r = await bench.trial(scenario)
        results.push(r)
        const rec = r.recoveryMs === null ? 'none' : `${seconds(r.recoveryMs)} s`
        const staleVip = r.stale
          ? `, stale VIP ${r.stale.goneMs === null ? 'still there' : `gone after ${seconds(r.stale.goneMs)} s`}, two holders ${seconds(r.stale.doubleMs)} s`
          : ''
        console.error(
          `${config} ${scenario} #${i + 1}: outage ${seconds(r.outageMs)} s, gaps ${r.gaps}, yields ${r.yields}, ${scenario === 'heal' ? 'one holder after' : 'new node answered after'} ${rec}${staleVip}`,
        )
        appendFileSync(join(lab.dir, 'trials.jsonl'), `${JSON.stringify({config, scenario, ...r})}\n`)
      }
      const title = TITLES[scenario]
      const n = results.length
      rows.put(
        `${title}: client outage`,
        config,
        cell(
          results.map((r) => r.outageMs),
          n,
        ),
      )
      rows.put(`${title}: a second outage gap (trials)`, config, `${results.filter((r) => r.gaps > 1).length}/${n}`)
      // A yield means two masters met: in a heal that is the scenario itself, elsewhere two nodes promoted together.
      rows.put(
        `${title}: ${scenario === 'heal' ? 'a master yielded' : 'two nodes promoted together, one yielded'} (trials)`,
        config,
        `${results.filter((r) => r.yields > 0).length}/${n}`,
      )
      const recovered = results.flatMap((r) => (r.recoveryMs === null ? [] : [r.recoveryMs]))
      const label = scenario === 'heal' ? 'one holder after' : 'another node answered after'
      rows.put(`${title}: ${label}`, config, recovered.length ? cell(recovered, n) : `never (0/${n})`)
      const stale = results.flatMap((r) => (r.stale ? [r.stale] : []))
      if (stale.length > 0) {
        const gone = stale.flatMap((st) => (st.goneMs === null ? [] : [st.goneMs]))
        rows.put(
          `${title}: its VIP gone from the node after`,
          config,
          gone.length ? cell(gone, stale.length) : `stays (${stale.length}/${stale.length})`,
        )
        rows.put(
          `${title}: two holders for`,
          config,
          cell(
            stale.map((st) => st.doubleMs),
            stale.length,
          ),
        )
      }
    }
    for (const node of lab.nodes) {
      const samples = bench.rss.get(node.name) ?? []
      if (samples.length === 0) continue
      const s = summarize(samples)
      rows.put(
        `RSS ${node.name}, every agent process (1 s samples)`,
        config,
        `${(s.median / 1024).toFixed(1)} MB (max ${(s.max / 1024).toFixed(1)}), ${s.n} samples`,
      )
    }
  } finally {
    await bench.stop()
    await lab.destroy()
  }
}

const skip = labSkipReason()
if (skip) {
  console.error(`bench/failover: skipped: ${skip}`)
  process.exit(0)
}
console.error(
  `bench/failover: ${trials} trials x [${scenarios.join(', ')}] x [${configs.join(', ')}], ${nodeCount} nodes, agent toolset ${toolset}${values.env.length ? `, env ${values.env.join(' ')}` : ''}`,
)
const rows = new SideBySide(configs, CONFIG_TITLES)
for (const config of configs) await runConfig(config, rows)
console.log(`Median (min-max) over ${trials} trials, ${nodeCount} nodes, probe every ${PROBE_MS} ms; plain ucarp with default settings.\n`)
console.log(rows.markdown())
