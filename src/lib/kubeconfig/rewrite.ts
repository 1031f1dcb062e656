import {unlinkSync} from 'node:fs'

import type {KubeConfig} from '@kubernetes/client-node'
import {createTwoFilesPatch} from 'diff'

import {caFromKubeConfig, checkEndpoint, chooseInstall, detectDistribution, type DistributionId, type Endpoint, type EndpointReport, formatEndpoint, sanAdvice} from '../cert/index.js'
import {checkVip} from '../config/validate.js'
import {VIP_ANNOTATION} from '../constants.js'
import {echo} from '../echo.js'
import {CheckFailedError, KarpError, UnreachableError, UsageError} from '../errors.js'
import {Kube} from '../kube/client.js'
import {listKarpInstalls} from '../kube/karp-installs.js'
import {addClusterAndContext, type EditResult, setClusterServer} from './document-edit.js'
import {locateKubeconfig} from './locate.js'
import {type KubeconfigFile, readKubeconfig} from './parse.js'
import {type BeforeRename, checkWritable, commitKubeconfig, resolveWriteTarget} from './safe-write.js'
import {merged, selectContext, type Selection} from './select.js'
import {parseServer, pointsAt, vipServer} from './server-url.js'
import {apiAnswers, contextConfig} from './verify.js'

/** What `karp kubeconfig rewrite --json` prints. */
export interface KubeconfigRewriteResult {
  /** The kubeconfig file edited, as listed (--kubeconfig, KUBECONFIG or ~/.kube/config). */
  file: string
  /** The file actually written: file itself, or its symlink's target. */
  target: string
  /** The context that now points at the VIP (the new one with --new-context). */
  context: string
  /** The cluster entry whose server is the VIP (the new one with --new-context). */
  cluster: string
  /** The server before (of the original cluster entry with --new-context). */
  oldServer: string
  newServer: string
  /** The copy of the original file, or null (--no-backup, nothing written, or restored after a failed verify). */
  backup: string | null
  /** The API server answered GET /version through newServer with the context's credentials. */
  verified: boolean
  /** The file changed (with --dry-run: would change). */
  changed: boolean
  dryRun: boolean
  /** Unified diff of the change, with --dry-run. */
  diff: string | null
  /** With --new-context: the context and cluster the new entries were copied from. */
  basedOn: {context: string; cluster: string} | null
  warnings: string[]
}

export interface RewriteOptions {
  /** --kubeconfig; else KUBECONFIG, else ~/.kube/config, read from env. */
  kubeconfig?: string
  env?: NodeJS.ProcessEnv
  context?: string
  /** Validated IPv4 VIP; without it, the karp install found through the context gives it. */
  vip?: string
  port?: number
  /** Add a context and cluster of this name for the VIP instead of editing the existing cluster. */
  newContext?: string
  /** Skip the certificate check. */
  force?: boolean
  dryRun?: boolean
  /** Default true. */
  backup?: boolean
  /** Default true. */
  verify?: boolean
  /** Bound on each network step (certificate check, verify, cluster look-ups). */
  timeoutMs?: number
  /** Progress for people (stderr). */
  progress?: (message: string) => void
}

/** Injection points for tests; production uses the defaults. */
export interface RewriteSeams {
  now?: () => Date
  /** Runs inside the atomic write, between creating the temporary file and the on-disk check + rename. */
  beforeRename?: BeforeRename
  /** Where the certificate check connects instead of VIP:port (it still judges the certificate for the VIP). */
  probe?: Endpoint
  /** The VIP (and port) when --vip is absent: default, the karp install found through the context. */
  findVip?: (kc: KubeConfig) => Promise<{vip: string; port?: number; from: string}>
  /** The distribution, for the advice when the VIP is no SAN: default, detected from the nodes. */
  distribution?: (kc: KubeConfig) => Promise<DistributionId>
  checkCertificate?: typeof checkEndpoint
  apiAnswers?: typeof apiAnswers
}

const DEFAULT_TIMEOUT_MS = 10_000

async function vipOfInstall(kc: KubeConfig, timeoutMs: number): Promise<{vip: string; port?: number; from: string}> {
  const installs = await listKarpInstalls(new Kube(kc, {requestTimeoutMs: timeoutMs}))
  let install
  try {
    install = chooseInstall(installs, {})
  } catch (error) {
    if (error instanceof UsageError) throw new UsageError(error.message, 'pass --vip')
    throw error
  }
  const vip = checkVip(install.vip, 'vip')
  if (!vip.ok) throw new UsageError(`karp install ${install.namespace}/${install.name} has an unusable ${VIP_ANNOTATION} annotation: ${vip.problem}`, 'pass --vip')
  return {vip: vip.value, port: install.apiPort, from: `karp install ${install.namespace}/${install.name}`}
}

async function nodesDistribution(kc: KubeConfig, timeoutMs: number): Promise<DistributionId> {
  const kube = new Kube(kc, {requestTimeoutMs: timeoutMs})
  const nodes = await kube.call('listing nodes', () => kube.core.listNode())
  return detectDistribution(nodes.items).id
}

function checkNewContextName(name: string): void {
  // Names are free-form in kubeconfig, but a name kubectl users cannot type or see is a mistake.
  if (name.trim() !== name || name === '' || /[\p{Cc}]/u.test(name)) {
    throw new UsageError(`invalid --new-context ${echo(name)}: expected a non-empty name without control characters or surrounding spaces, e.g. prod-vip`)
  }
}

/** The data items of the original cluster and context, copied for the VIP under the new name, keys in the same order. */
function newEntries(selection: Selection, name: string, server: string) {
  const find = (file: KubeconfigFile, key: 'clusters' | 'contexts', entryName: string) =>
    ((file.data?.[key] ?? []) as Array<Record<string, unknown>>).find((e) => e?.name === entryName) ?? {}
  const cluster = structuredClone(find(selection.clusterFile, 'clusters', selection.clusterName))
  const context = structuredClone(find(selection.contextFile, 'contexts', selection.contextName))
  return {
    cluster: {...cluster, name, cluster: {...(cluster.cluster as object), server}},
    context: {...context, name, context: {...(context.context as object), cluster: name}},
  }
}

/**
 * The certificate verdict for the VIP, as the kubeconfig will use it: a failed SAN or trust check refuses
 * (exit 4) with the distribution's advice, unless the cluster entry verifies against another name
 * (tls-server-name) or not at all (insecure-skip-tls-verify), where it only warns.
 */
async function checkCertificate(
  options: {vip: string; port: number; kc: KubeConfig; selection: Selection; timeoutMs: number},
  seams: RewriteSeams,
  warnings: string[],
): Promise<void> {
  const {vip, port, kc, selection} = options
  const ca = caFromKubeConfig(kc)
  const target = seams.probe ?? {host: vip, port}
  const report: EndpointReport = await (seams.checkCertificate ?? checkEndpoint)(target, {vip, caPem: ca.pem, timeoutMs: options.timeoutMs})
  const at = `${formatEndpoint({host: vip, port})}${seams.probe ? ` (probed at ${formatEndpoint(seams.probe)})` : ''}`
  if (report.status === 'unreachable' || !report.checks) {
    throw new UnreachableError(
      `cannot read the certificate served at ${at}: ${report.error?.message ?? 'no certificate'}; nothing was changed`,
      'is karp installed and the VIP held (karp status)? --force skips this check',
    )
  }
  const cluster = selection.cluster.value
  const serverName = typeof cluster['tls-server-name'] === 'string' ? cluster['tls-server-name'] : undefined
  const insecure = cluster['insecure-skip-tls-verify'] === true
  const failures: string[] = []
  for (const [name, outcome] of Object.entries(report.checks)) {
    if (outcome.status === 'warn') warnings.push(`certificate at ${at}: ${outcome.message}`)
    if (outcome.status !== 'fail') continue
    const excused =
      (name === 'vipSan' && (serverName !== undefined || insecure)) || (name === 'trust' && insecure)
        ? serverName && name === 'vipSan'
          ? `cluster ${echo(selection.clusterName)} verifies the certificate against tls-server-name ${serverName}`
          : `cluster ${echo(selection.clusterName)} sets insecure-skip-tls-verify`
        : undefined
    if (excused) warnings.push(`certificate at ${at}: ${outcome.message} (accepted: ${excused})`)
    else failures.push(outcome.message)
  }
  if (failures.length === 0) return
  let hint = 'run karp check-cert for every control-plane node; --force writes the kubeconfig anyway'
  if (report.checks.vipSan.status === 'fail') {
    const distribution = await (seams.distribution ?? ((c) => nodesDistribution(c, options.timeoutMs)))(kc).catch(() => 'unknown' as const)
    hint = `${sanAdvice(distribution, vip).summary}; then run karp check-cert (--force writes the kubeconfig anyway)`
  }
  throw new CheckFailedError(`the certificate served at ${at} would be refused by kubectl for ${vipServer(vip, port)}: ${failures.join('; ')}; nothing was changed`, hint)
}

/**
 * Points one kubeconfig context's cluster at the VIP, changing nothing else in the file, or adds a context
 * and cluster for it (newContext). Checks the certificate first, writes safely, verifies the API answers
 * through the new URL and puts the file back if it does not.
 */
export async function rewriteKubeconfig(options: RewriteOptions, seams: RewriteSeams = {}): Promise<KubeconfigRewriteResult> {
  const env = options.env ?? process.env
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const progress = options.progress ?? (() => {})
  const warnings: string[] = []

  const source = locateKubeconfig(options.kubeconfig, env)
  if (source.files.length === 0) {
    throw new UsageError(
      source.origin === 'KUBECONFIG' ? `none of the files in KUBECONFIG exists (${env.KUBECONFIG})` : 'no kubeconfig found at ~/.kube/config',
      'pass --kubeconfig PATH or set KUBECONFIG',
    )
  }
  const files = source.files.map(readKubeconfig)
  const selection = selectContext(files, options.context)
  const file = selection.clusterFile
  const where = `cluster ${echo(selection.clusterName)} in ${file.path}`
  const old = parseServer(selection.server, where)
  if (options.newContext !== undefined) checkNewContextName(options.newContext)

  let vip = options.vip
  let port = options.port
  if (vip === undefined) {
    progress(`finding the VIP of the karp install through ${selection.server}`)
    const found = await (seams.findVip ?? ((kc) => vipOfInstall(kc, timeoutMs)))(contextConfig(source.files, selection.contextName))
    vip = found.vip
    port ??= found.port
    progress(`VIP ${vip} from ${found.from}`)
  }
  port ??= old.port
  if (port !== old.port) warnings.push(`the port changes from ${old.port} to ${port}`)
  const newServer = vipServer(vip, port)
  const target = resolveWriteTarget(file.path)

  const base = {
    file: file.path,
    target: target.realPath,
    context: selection.contextName,
    cluster: selection.clusterName,
    oldServer: selection.server,
    newServer,
    backup: null,
    verified: false,
    changed: false,
    dryRun: Boolean(options.dryRun),
    diff: null,
    basedOn: null,
    warnings,
  } satisfies KubeconfigRewriteResult

  let edit: EditResult
  let context = selection.contextName
  if (options.newContext === undefined) {
    if (pointsAt(selection.server, {host: vip, port})) {
      progress(`context ${echo(context)} already uses ${selection.server}: nothing to do`)
      return base
    }
    if (selection.sharedWith.length > 0) {
      warnings.push(
        `cluster ${echo(selection.clusterName)} is also used by context${selection.sharedWith.length > 1 ? 's' : ''} ${selection.sharedWith.map((n) => echo(n)).join(', ')}: ${selection.sharedWith.length > 1 ? 'they move' : 'it moves'} to the VIP too (--new-context NAME leaves them alone)`,
      )
    }
    edit = setClusterServer(file, selection.clusterName, newServer)
  } else {
    const name = options.newContext
    const sameContext = merged(files, 'contexts').find((c) => c.name === name)
    const sameCluster = merged(files, 'clusters').find((c) => c.name === name)
    if (sameContext || sameCluster) {
      const server = sameCluster?.value.server
      if (sameContext?.value.cluster === name && typeof server === 'string' && pointsAt(server, {host: vip, port})) {
        progress(`context ${echo(name)} already uses ${server}: nothing to do`)
        const defining = sameCluster?.file.path ?? file.path
        return {...base, file: defining, target: resolveWriteTarget(defining).realPath, context: name, cluster: name, oldServer: server, basedOn: {context: selection.contextName, cluster: selection.clusterName}}
      }
      const taken = sameContext ? `a context named ${echo(name)} exists in ${sameContext.file.path}` : `a cluster named ${echo(name)} exists in ${sameCluster?.file.path}`
      throw new UsageError(`invalid --new-context ${echo(name)}: ${taken}; choose another name`)
    }
    edit = addClusterAndContext(file, newEntries(selection, name, newServer))
    context = name
    Object.assign(base, {context: name, cluster: name, basedOn: {context: selection.contextName, cluster: selection.clusterName}})
  }
  warnings.push(...edit.warnings)

  if (target.stat.nlink > 1) warnings.push(`${target.realPath} has ${target.stat.nlink} hard links: the new file replaces this one, the other names keep the old content`)
  if (options.dryRun) {
    try {
      checkWritable(target)
    } catch (error) {
      if (!(error instanceof KarpError)) throw error
      warnings.push(`writing would fail: ${error.message}`)
    }
  } else checkWritable(target)

  if (options.force) warnings.push('certificate check skipped (--force)')
  else {
    progress(`checking the certificate served at ${formatEndpoint(seams.probe ?? {host: vip, port})}`)
    const kc = contextConfig(source.files, selection.contextName)
    await checkCertificate({vip, port, kc, selection, timeoutMs}, seams, warnings)
  }

  if (options.dryRun) {
    const diff = createTwoFilesPatch(file.path, file.path, file.text, edit.text, undefined, undefined, {context: 3})
    return {...base, changed: true, diff}
  }

  const now = (seams.now ?? (() => new Date()))()
  const written = Buffer.from(edit.text, 'utf8')
  // Under kubectl's lock; on any failure or interruption nothing is left behind and the file is as it was.
  const {backup} = await commitKubeconfig(target, written, file.bytes, {backupAt: options.backup === false ? undefined : now, beforeRename: seams.beforeRename})
  progress(`wrote ${target.realPath}${backup ? ` (backup: ${backup})` : ''}`)
  const result: KubeconfigRewriteResult = {...base, backup, changed: true}
  if (options.verify === false) return result

  progress(`asking the API server for /version through ${newServer}`)
  let answer: Awaited<ReturnType<typeof apiAnswers>>
  try {
    answer = await (seams.apiAnswers ?? apiAnswers)(contextConfig(source.files, context), timeoutMs)
  } catch (error) {
    answer = {ok: false, message: (error as Error).message}
  }
  if (answer.ok) return {...result, verified: true}

  // Never leave a kubeconfig that does not work: put the original back, unless someone wrote the file since.
  try {
    await commitKubeconfig(target, file.bytes, written)
  } catch (error) {
    throw new UnreachableError(
      `the API server did not answer through ${newServer} (${answer.message}), and karp could not restore ${target.realPath}: ${(error as Error).message}`,
      backup ? `the original is in ${backup}: cp ${backup} ${target.realPath}` : undefined,
    )
  }
  if (backup) unlinkSync(backup)
  throw new UnreachableError(
    `the API server did not answer through ${newServer} (${answer.message}); ${file.path} was restored to its original content`,
    'is the VIP held (karp status)? --no-verify keeps the change without asking the API server',
  )
}
