import type {KubeConfig} from '@kubernetes/client-node'

import {
  caFromKubeConfig,
  checkEndpoint,
  checkEntries,
  detectDistribution,
  type DistributionId,
  formatEndpoint,
  sanAdvice,
} from '../cert/index.js'
import {echo} from '../echo.js'
import {CheckFailedError, UnreachableError} from '../errors.js'
import {Kube} from '../kube/client.js'
import type {NamedEntry} from './parse.js'
import {vipServer} from './server-url.js'

async function nodesDistribution(kc: KubeConfig, timeoutMs: number): Promise<DistributionId> {
  const kube = new Kube(kc, {requestTimeoutMs: timeoutMs})
  const nodes = await kube.call('listing nodes', () => kube.core.listNode())
  return detectDistribution(nodes.items).id
}

export interface VipCertificateCheck {
  vip: string
  port: number
  /** The context whose cluster will point at the VIP: its CA judges the chain, its credentials list the nodes. */
  kc: KubeConfig
  /** That cluster's entry as written: tls-server-name and insecure-skip-tls-verify change the verdict. */
  cluster: NamedEntry
  timeoutMs: number
}

/**
 * The certificate verdict for the VIP, as the kubeconfig will use it: a failed SAN or trust check refuses
 * (exit 4) with the distribution's advice, unless the cluster entry verifies against another name
 * (tls-server-name) or not at all (insecure-skip-tls-verify), where it only warns. Returns the warnings.
 */
export async function checkVipCertificate(check: VipCertificateCheck): Promise<string[]> {
  const {vip, port, kc, cluster} = check
  const at = formatEndpoint({host: vip, port})
  const report = await checkEndpoint({host: vip, port}, {vip, caPem: caFromKubeConfig(kc).pem, timeoutMs: check.timeoutMs})
  if (report.status === 'unreachable' || !report.checks) {
    throw new UnreachableError(
      `cannot read the certificate served at ${at}: ${report.error?.message ?? 'no certificate'}; nothing was changed`,
      'is karp installed and the VIP held (karp status)? --force skips this check',
    )
  }
  const serverName = typeof cluster.value['tls-server-name'] === 'string' ? cluster.value['tls-server-name'] : undefined
  const insecure = cluster.value['insecure-skip-tls-verify'] === true
  const warnings: string[] = []
  const failures: string[] = []
  for (const [name, outcome] of checkEntries(report.checks)) {
    if (outcome.status === 'warn') warnings.push(`certificate at ${at}: ${outcome.message}`)
    if (outcome.status !== 'fail') continue
    const excused =
      (name === 'vipSan' && (serverName !== undefined || insecure)) || (name === 'trust' && insecure)
        ? serverName && name === 'vipSan'
          ? `cluster ${echo(cluster.name)} verifies the certificate against tls-server-name ${serverName}`
          : `cluster ${echo(cluster.name)} sets insecure-skip-tls-verify`
        : undefined
    if (excused) warnings.push(`certificate at ${at}: ${outcome.message} (accepted: ${excused})`)
    else failures.push(outcome.message)
  }
  if (failures.length === 0) return warnings
  let hint = 'run karp check-cert for every control-plane node; --force writes the kubeconfig anyway'
  if (report.checks.vipSan.status === 'fail') {
    const distribution = await nodesDistribution(kc, check.timeoutMs).catch(() => 'unknown' as const)
    hint = `${sanAdvice(distribution, vip).summary}; then run karp check-cert (--force writes the kubeconfig anyway)`
  }
  throw new CheckFailedError(
    `the certificate served at ${at} would be refused by kubectl for ${vipServer(vip, port)}: ${failures.join('; ')}; nothing was changed`,
    hint,
  )
}
