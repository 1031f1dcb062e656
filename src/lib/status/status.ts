import type {FetchFailureKind, TrustCheck, VipSanCheck} from '../cert/index.js'
import {type CommandResult, ExitCode} from '../errors.js'
import type {Kube} from '../kube/client.js'
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

/** What `karp status --json` prints (with --watch, one per line). */
export interface StatusResult extends CommandResult {
  context: string
  server: string
  installs: InstallReport[]
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
  const targets = installsIn(snapshot).filter(
    (i) =>
      (options.namespace === undefined || i.namespace === options.namespace) && (options.name === undefined || i.name === options.name),
  )
  const installs: InstallReport[] = await Promise.all(
    targets.map(async (target) => {
      const status: InstallReport = installStatus(target, snapshot, now)
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
  const where = [options.namespace && `namespace ${options.namespace}`, options.name && `name ${options.name}`].filter(Boolean).join(', ')
  if (installs.length === 0) {
    return {
      context: kube.contextName,
      server: kube.server,
      installs,
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
  const summary =
    verdict === 'healthy'
      ? `${installs.length === 1 ? 'karp is' : `all ${installs.length} karp installs are`} healthy`
      : `karp is ${verdict}: ${['healthy', 'degraded', 'down'].map((s) => `${count(s)} ${s}`).join(', ')}`
  return {context: kube.contextName, server: kube.server, installs, verdict, summary, exitCode: statusExitCode(verdict)}
}

export async function gatherStatus(kube: Kube, options: StatusOptions, now = new Date()): Promise<StatusResult> {
  return statusFromSnapshot(await takeSnapshot(kube), kube, options, now)
}

/** The exit codes (docs/architecture.md): 0 healthy; 4 degraded, down or nothing installed (a failed check). */
function statusExitCode(verdict: StatusVerdict): ExitCode {
  return verdict === 'healthy' ? ExitCode.ok : ExitCode.checkFailed
}
