import type {V1Node} from '@kubernetes/client-node'

import {ExitCode} from '../errors.js'
import type {Kube} from '../kube/client.js'
import {listKarpInstalls} from '../kube/karp-installs.js'
import {sanAdvice, type SanAdvice} from './advice.js'
import {caFromKubeConfig, type CaCertificate} from './ca.js'
import {detectDistribution, DISTRIBUTION_NAMES, type DistributionId} from './distribution.js'
import {DEFAULT_API_PORT} from '../constants.js'
import {type CertTarget, chooseInstall, clusterTargets} from './targets.js'
import {checkEndpoint, type EndpointReport, type EndpointStatus} from './verdict.js'

export interface TargetReport extends EndpointReport {
  role: CertTarget['role']
  /** The control-plane node behind the address (role node). */
  node?: string
}

export interface DistributionInfo {
  id: DistributionId
  name: string
  /** nodes: detected from node labels, annotations and versions; flag: --distribution; none: no cluster to look at. */
  source: 'nodes' | 'flag' | 'none'
  evidence: string
}

/** What `karp check-cert --json` prints. */
export interface CheckCertResult {
  vip: string
  /** flag: --vip; install: the VIP_ANNOTATION of the install found in the cluster. */
  vipSource: 'flag' | 'install'
  install?: {namespace: string; name: string}
  /** The kubeconfig context read, when the cluster was asked. */
  context?: string
  ca: Omit<CaCertificate, 'pem'>
  distribution: DistributionInfo
  endpoints: TargetReport[]
  summary: Record<EndpointStatus, number>
  /** Present when some certificate lacks the VIP as an IP SAN. */
  advice?: SanAdvice
  warnings: string[]
  /** 0 every endpoint fine; 4 a check failed or some endpoint unreachable; 3 no endpoint reachable. */
  exitCode: ExitCode
}

export interface CertCheckPlan {
  vip: string
  vipSource: CheckCertResult['vipSource']
  install?: CheckCertResult['install']
  context?: string
  targets: CertTarget[]
  ca: CaCertificate
  distribution: DistributionInfo
  warnings: string[]
}

export interface ClusterCheckOptions {
  /** Checked already; without it the VIP comes from the karp install in the cluster. */
  vip?: string
  namespace?: string
  name?: string
  /** Without it: the install's API_PORT_ANNOTATION, else DEFAULT_API_PORT. */
  port?: number
  /** Overrides the kubeconfig's CA. */
  ca?: CaCertificate
  distribution?: DistributionId
}

function distributionInfo(nodes: V1Node[] | undefined, flag: DistributionId | undefined): DistributionInfo {
  if (flag) return {id: flag, name: DISTRIBUTION_NAMES[flag], source: 'flag', evidence: '--distribution'}
  if (!nodes) return {id: 'unknown', name: DISTRIBUTION_NAMES.unknown, source: 'none', evidence: ''}
  const detected = detectDistribution(nodes)
  return {...detected, name: DISTRIBUTION_NAMES[detected.id], source: 'nodes'}
}

/** Targets from the cluster: the VIP (given, or the install's) and every control-plane node, one list call each. */
export async function planClusterCheck(kube: Kube, options: ClusterCheckOptions): Promise<CertCheckPlan> {
  const ca = options.ca ?? caFromKubeConfig(kube.config)
  const [installs, nodes] = await Promise.all([
    options.vip === undefined ? listKarpInstalls(kube) : Promise.resolve([]),
    kube.call('listing nodes', () => kube.core.listNode()).then((list) => list.items),
  ])
  let vip = options.vip
  let install
  if (vip === undefined) {
    install = chooseInstall(installs, options)
    vip = install.vip
  }
  const port = options.port ?? install?.apiPort ?? DEFAULT_API_PORT
  const {targets, warnings} = clusterTargets(vip, nodes, port)
  if (ca.source === 'none') warnings.push(`${ca.description}: the chains were not verified against a CA`)
  return {
    vip,
    vipSource: install ? 'install' : 'flag',
    ...(install ? {install: {namespace: install.namespace, name: install.name}} : {}),
    context: kube.contextName,
    targets,
    ca,
    distribution: distributionInfo(nodes, options.distribution),
    warnings,
  }
}

/** Targets given explicitly (--server), without any cluster access. */
export function planServerCheck(options: {
  vip: string
  servers: Array<{host: string; port: number}>
  ca?: CaCertificate
  distribution?: DistributionId
}): CertCheckPlan {
  const warnings = options.ca ? [] : ['no --ca-file given: the chains were not verified against a CA']
  return {
    vip: options.vip,
    vipSource: 'flag',
    targets: options.servers.map((s) => ({role: 'server', ...s})),
    ca: options.ca ?? {source: 'none', description: 'no --ca-file given'},
    distribution: distributionInfo(undefined, options.distribution),
    warnings,
  }
}

export function certCheckExitCode(reports: EndpointReport[]): ExitCode {
  if (reports.every((r) => r.status === 'unreachable')) return ExitCode.unreachable
  if (reports.some((r) => r.status === 'failed' || r.status === 'unreachable')) return ExitCode.checkFailed
  return ExitCode.ok
}

/** Checks every target at once (each bounded by timeoutMs) and adds the verdict and advice. */
export async function runCertCheck(plan: CertCheckPlan, options: {timeoutMs: number; now?: Date}): Promise<CheckCertResult> {
  const endpoints: TargetReport[] = await Promise.all(
    plan.targets.map(async (target) => ({
      role: target.role,
      ...(target.node ? {node: target.node} : {}),
      ...(await checkEndpoint(target, {vip: plan.vip, caPem: plan.ca.pem, timeoutMs: options.timeoutMs, now: options.now})),
    })),
  )
  const summary: Record<EndpointStatus, number> = {ok: 0, warning: 0, failed: 0, unreachable: 0}
  for (const report of endpoints) summary[report.status]++
  const vipMissing = endpoints.some((r) => r.checks?.vipSan.status === 'fail')
  const controlPlaneAddresses = plan.targets.filter((t) => t.role === 'node').map((t) => t.host)
  const {pem: _pem, ...ca} = plan.ca
  return {
    vip: plan.vip,
    vipSource: plan.vipSource,
    ...(plan.install ? {install: plan.install} : {}),
    ...(plan.context ? {context: plan.context} : {}),
    ca,
    distribution: plan.distribution,
    endpoints,
    summary,
    ...(vipMissing ? {advice: sanAdvice(plan.distribution.id, plan.vip, {controlPlaneAddresses})} : {}),
    warnings: plan.warnings,
    exitCode: certCheckExitCode(endpoints),
  }
}
