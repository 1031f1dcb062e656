import {unlinkSync} from 'node:fs'

import type {KubeConfig} from '@kubernetes/client-node'
import {createTwoFilesPatch} from 'diff'

import {chooseInstall, formatEndpoint} from '../cert/index.js'
import {checkVip} from '../config/validate.js'
import {VIP_ANNOTATION} from '../constants.js'
import {echo} from '../echo.js'
import {ExitCode, KarpError, UnreachableError, UsageError} from '../errors.js'
import {Kube} from '../kube/client.js'
import {listKarpInstalls} from '../kube/karp-installs.js'
import {loadContextConfig} from './client-config.js'
import {readKubeconfig} from './parse.js'
import {type KubeconfigRewriteResult, type PlannedEdit, planRewrite, type RewritePlan, selectRewrite} from './rewrite-plan.js'
import {checkWritable, commitKubeconfig, resolveWriteTarget, type WriteTarget} from './safe-write.js'
import {locateKubeconfig} from './select.js'
import {apiAnswers} from './verify.js'
import {checkVipCertificate} from './vip-certificate.js'

export type {KubeconfigRewriteResult} from './rewrite-plan.js'

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
  if (!vip.ok)
    throw new UsageError(
      `karp install ${install.namespace}/${install.name} has an unusable ${VIP_ANNOTATION} annotation: ${vip.problem}`,
      'pass --vip',
    )
  return {vip: vip.value, port: install.apiPort, from: `karp install ${install.namespace}/${install.name}`}
}

export interface CommitRewriteOptions {
  /** Keep a backup of the original, named for this time; none without it. */
  backupAt?: Date
  /** Afterwards ask the API server for /version through the new URL, each request bounded by timeoutMs; no check without it. */
  verify?: {timeoutMs: number}
  progress?: (message: string) => void
}

/**
 * Writes a planned edit over the file it was planned from (commitKubeconfig: under kubectl's lock, atomic,
 * refused if the file changed since it was read), then asks the API server through the new URL with the
 * context's credentials, read back from the files as written, and puts the original back if it does not
 * answer: a kubeconfig that does not work is never left behind.
 */
export async function commitRewrite(
  plan: RewritePlan & {edit: PlannedEdit},
  target: WriteTarget,
  options: CommitRewriteOptions = {},
): Promise<{backup: string | null; verified: boolean}> {
  const progress = options.progress ?? (() => {})
  const {file} = plan.edit
  const {newServer} = plan.result
  const written = Buffer.from(plan.edit.text, 'utf8')
  // Under kubectl's lock; on any failure or interruption nothing is left behind and the file is as it was.
  const {backup} = await commitKubeconfig(target, written, file.bytes, {backupAt: options.backupAt})
  progress(`wrote ${target.realPath}${backup ? ` (backup: ${backup})` : ''}`)
  if (!options.verify) return {backup, verified: false}

  progress(`asking the API server for /version through ${newServer}`)
  let answer: Awaited<ReturnType<typeof apiAnswers>>
  try {
    answer = await apiAnswers(loadContextConfig(plan.files, plan.result.context), options.verify.timeoutMs)
  } catch (error) {
    answer = {ok: false, message: (error as Error).message}
  }
  if (answer.ok) return {backup, verified: true}

  // Put the original back, unless someone wrote the file since.
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

/**
 * Points one kubeconfig context's cluster at the VIP, changing nothing else in the file, or adds a context
 * and cluster for it (newContext): plans the edit from the files read, checks the certificate served on the
 * VIP, then commits (write, verify, restore if the API server does not answer).
 */
export async function rewriteKubeconfig(options: RewriteOptions): Promise<KubeconfigRewriteResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const progress = options.progress ?? (() => {})

  const files = locateKubeconfig(options.kubeconfig, options.env ?? process.env).map((path) => readKubeconfig(path))
  const selection = selectRewrite(files, {context: options.context, newContext: options.newContext})
  let {vip} = options
  let installPort: number | undefined
  if (vip === undefined) {
    progress(`finding the VIP of the karp install through ${selection.server}`)
    const found = await vipOfInstall(
      loadContextConfig(
        files.map((f) => f.path),
        selection.contextName,
      ),
      timeoutMs,
    )
    vip = found.vip
    installPort = found.port
    progress(`VIP ${vip} from ${found.from}`)
  }
  const plan = planRewrite(files, selection, {vip, port: options.port, installPort})
  const {result} = plan
  const {warnings} = result
  const target = resolveWriteTarget(result.file)
  // Spelled out: --json prints the keys in this order.
  const base: KubeconfigRewriteResult = {
    file: result.file,
    target: target.realPath,
    context: result.context,
    cluster: result.cluster,
    oldServer: result.oldServer,
    newServer: result.newServer,
    backup: null,
    verified: false,
    changed: false,
    dryRun: Boolean(options.dryRun),
    diff: null,
    basedOn: result.basedOn,
    warnings,
    exitCode: ExitCode.ok,
  }
  const {edit} = plan
  if (!edit) {
    progress(`context ${echo(base.context)} already uses ${base.oldServer}: nothing to do`)
    return base
  }

  if (target.stat.nlink > 1)
    warnings.push(
      `${target.realPath} has ${target.stat.nlink} hard links: the new file replaces this one, the other names keep the old content`,
    )
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
    progress(`checking the certificate served at ${formatEndpoint(plan.vip)}`)
    const kc = loadContextConfig(plan.files, selection.contextName)
    warnings.push(...(await checkVipCertificate({vip, port: plan.vip.port, kc, cluster: selection.cluster, timeoutMs})))
  }

  if (options.dryRun) {
    const diff = createTwoFilesPatch(edit.file.path, edit.file.path, edit.file.text, edit.text, undefined, undefined, {context: 3})
    return {...base, changed: true, diff}
  }
  const committed = await commitRewrite({...plan, edit}, target, {
    backupAt: options.backup === false ? undefined : new Date(),
    verify: options.verify === false ? undefined : {timeoutMs},
    progress,
  })
  return {...base, ...committed, changed: true}
}
