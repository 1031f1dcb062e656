import type {FetchFailureKind, TrustCheck, VipSanCheck} from '../cert/index.js'
import {type CommandResult, ExitCode} from '../errors.js'
import {staticAgentsVip} from '../install/handover.js'
import type {Kube} from '../kube/client.js'
import {describeInstall} from '../kube/karp-installs.js'
import {isStaticAgentPod, type StaticAgent, staticAgentsIn} from '../kube/static-agents.js'
import {type ClusterSnapshot, takeSnapshot} from './gather.js'
import {type InstallStatus, installsIn, installStatus} from './verdict.js'

/** What the user's machine sees of the VIP: TCP connect, TLS handshake, and the certificate it serves. */
export interface VipProbe {
  endpoint: string
  reachable: boolean
  connectMs?: number
  handshakeMs?: number
  vipSan?: VipSanCheck
  trust?: TrustCheck
  /** Why the VIP did not answer (reachable false), as check-cert reports an unreachable endpoint. */
  error?: {kind: FetchFailureKind; message: string}
}

export type InstallReport = InstallStatus & {vipProbe?: VipProbe}

export type StatusVerdict = 'healthy' | 'degraded' | 'down' | 'not-installed'

/** A static-pod agent (karp bootstrap) as status shows it; install: the karp install of its VIP, when there is one. */
export type StaticAgentReport = Omit<StaticAgent, 'createdAt'> & {age: number; install?: string}

/** What `karp status --json` prints (with --watch, one per line). */
export interface StatusResult extends CommandResult {
  context: string
  server: string
  installs: InstallReport[]
  /** Static-pod agents of the installs shown, and those of no install; only when there are any. */
  staticAgents?: StaticAgentReport[]
  verdict: StatusVerdict
  summary: string
  /** 0 healthy; 4 degraded, down or nothing installed. */
  exitCode: ExitCode
}

export interface StatusOptions {
  namespace?: string
  name?: string
  probe: boolean
  timeoutMs: number
  caPem?: string
}

export async function probeVip(vip: string, port: number, options: {timeoutMs: number; caPem?: string}): Promise<VipProbe> {
  // Loaded on demand: the TLS and certificate code is only needed when probing.
  const {checkEndpoint} = await import('../cert/verdict.js')
  const report = await checkEndpoint(
    {host: vip, port},
    {vip, timeoutMs: options.timeoutMs, ...(options.caPem ? {caPem: options.caPem} : {})},
  )
  if (report.status === 'unreachable')
    return {endpoint: report.endpoint, reachable: false, error: report.error ?? {kind: 'error', message: 'unreachable'}}
  return {
    endpoint: report.endpoint,
    reachable: true,
    ...(report.timing ? {connectMs: report.timing.connectMs, handshakeMs: report.timing.handshakeMs} : {}),
    ...(report.checks ? {vipSan: report.checks.vipSan, trust: report.checks.trust} : {}),
  }
}

/** Judges a snapshot, probing each VIP from here; pure apart from the probes. */
export async function statusFromSnapshot(
  snapshot: ClusterSnapshot,
  kube: Pick<Kube, 'contextName' | 'server'>,
  options: StatusOptions,
  now: Date,
): Promise<StatusResult> {
  // Static-pod agents' mirror pods carry karp's labels too, but belong to no install.
  const staticAgents = staticAgentsIn(snapshot.pods)
  const agentSnapshot = {...snapshot, pods: snapshot.pods.filter((p) => !isStaticAgentPod(p))}
  const every = installsIn(agentSnapshot)
  const targets = every.filter(
    (i) =>
      (options.namespace === undefined || i.namespace === options.namespace) && (options.name === undefined || i.name === options.name),
  )
  const installs: InstallReport[] = await Promise.all(
    targets.map(async (target) => {
      const status: InstallReport = installStatus(target, agentSnapshot, now, staticAgents)
      if (!options.probe || !status.vip) return status
      const probe = await probeVip(status.vip, status.apiPort, options)
      status.vipProbe = probe
      if (!probe.reachable) {
        status.problems.push(`VIP ${probe.endpoint} does not answer from here: ${probe.error?.message}`)
        if (status.state === 'healthy') status.state = 'degraded'
      } else if (probe.vipSan && probe.vipSan.status !== 'pass') {
        status.problems.push(`${probe.vipSan.message}: kubectl through the VIP fails certificate verification; see karp check-cert`)
        if (status.state === 'healthy') status.state = 'degraded'
      }
      return status
    }),
  )
  const installOfVip = new Map(
    every.flatMap((i) => {
      const vip = i.daemonSet ? describeInstall(i.daemonSet).vip : undefined
      return vip === undefined ? [] : [[vip, `${i.namespace}/${i.name}`] as const]
    }),
  )
  const shownInstalls = new Set(installs.map((i) => `${i.namespace}/${i.name}`))
  const reports = staticAgents
    .map(({createdAt, ...agent}): StaticAgentReport => {
      const install = agent.vip === undefined ? undefined : installOfVip.get(agent.vip)
      const age = createdAt ? Math.max(0, Math.round((now.getTime() - new Date(createdAt).getTime()) / 1000)) : 0
      return {...agent, age, ...(install ? {install} : {})}
    })
    .filter((a) => a.install === undefined || shownInstalls.has(a.install))
  const unclaimed = reports.filter((a) => a.install === undefined)
  const base = {context: kube.contextName, server: kube.server, installs, ...(reports.length > 0 ? {staticAgents: reports} : {})}
  const where = [options.namespace && `namespace ${options.namespace}`, options.name && `name ${options.name}`].filter(Boolean).join(', ')
  if (installs.length === 0 && unclaimed.length > 0) {
    const {verdict, summary} = bootstrapVerdict(unclaimed)
    return {...base, verdict, summary, exitCode: statusExitCode(verdict)}
  }
  if (installs.length === 0) {
    return {
      ...base,
      verdict: 'not-installed',
      summary: `no karp install found in context ${kube.contextName}${where ? ` (${where})` : ''}; install one with: karp install --vip ADDRESS`,
      exitCode: statusExitCode('not-installed'),
    }
  }
  const verdict: StatusVerdict = installs.some((i) => i.state === 'down')
    ? 'down'
    : installs.some((i) => i.state === 'degraded')
      ? 'degraded'
      : 'healthy'
  const count = (state: string) => installs.filter((i) => i.state === state).length
  const judged =
    verdict === 'healthy'
      ? `${installs.length === 1 ? 'karp is' : `all ${installs.length} karp installs are`} healthy`
      : `karp is ${verdict}: ${['healthy', 'degraded', 'down'].map((s) => `${count(s)} ${s}`).join(', ')}`
  const notes = [
    ...(installs.some((i) => i.warnings) ? ['a handover from static-pod agents is in progress (see the warnings)'] : []),
    ...(unclaimed.length > 0 ? [`static-pod agents on ${nodeList(unclaimed)} serve ${vipList(unclaimed)}, which no karp install has`] : []),
  ]
  const summary = [judged, ...notes].join('; ')
  return {...base, verdict, summary, exitCode: statusExitCode(verdict)}
}

const nodeList = (agents: StaticAgentReport[]) => [...new Set(agents.map((a) => a.node))].join(', ')
const vipList = (agents: StaticAgentReport[]) => [...new Set(agents.map((a) => `VIP ${a.vip ?? '(none)'}`))].join(' and ')

/**
 * Static-pod agents with no install yet: the bootstrap phase, healthy while every agent is ready and they
 * agree on one VIP. They report no role, so which node holds the VIP cannot be told from the API.
 */
function bootstrapVerdict(agents: StaticAgentReport[]): {verdict: StatusVerdict; summary: string} {
  const shared = staticAgentsVip(agents)
  const unready = agents.filter((a) => !a.ready)
  const problems = [
    ...('problems' in shared ? shared.problems : []),
    ...unready.map((a) => `static-pod agent ${a.pod} on ${a.node} is not ready (${a.phase})`),
  ]
  const vip = 'vip' in shared ? `VIP ${shared.vip} (vhid ${shared.vhid})` : vipList(agents)
  const files = [...new Set(agents.flatMap((a) => (a.passwordFile ? [a.passwordFile] : [])))].join(' or ')
  const handover =
    `hand over to a DaemonSet with: karp install --vip ${'vip' in shared ? shared.vip : 'ADDRESS'} --password-file FILE` +
    (files ? ` (FILE: a copy of ${files} from one of these nodes)` : '')
  const running = `no karp install yet: the cluster runs bootstrap static-pod agents for ${vip} on ${nodeList(agents)}`
  if (problems.length > 0) return {verdict: 'degraded', summary: `${running}, and ${problems.join('; ')}; ${handover}`}
  return {verdict: 'healthy', summary: `${running}, all ready; ${handover}`}
}

export async function gatherStatus(kube: Kube, options: StatusOptions, now = new Date()): Promise<StatusResult> {
  return statusFromSnapshot(await takeSnapshot(kube), kube, options, now)
}

/** The exit codes (docs/architecture.md): 0 healthy; 4 degraded, down or nothing installed (a failed check). */
function statusExitCode(verdict: StatusVerdict): ExitCode {
  return verdict === 'healthy' ? ExitCode.ok : ExitCode.checkFailed
}
