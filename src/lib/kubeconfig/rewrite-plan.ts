import {echo} from '../echo.js'
import {type CommandResult, type ExitCode, UsageError} from '../errors.js'
import {addClusterAndContext, setClusterServer} from './document-edit.js'
import {currentContext, entries, type KubeconfigFile, type ListKey, type NamedEntry} from './parse.js'
import {chooseContext, firstDefinitions, type KubeconfigNames} from './select.js'
import {parseServer, pointsAt, type ServerAddress, vipServer} from './server-url.js'

/** What `karp kubeconfig rewrite --json` prints. */
export interface KubeconfigRewriteResult extends CommandResult {
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
  /** 0: changed, would change (--dry-run) or already pointing at the VIP; a refusal or failed verify is thrown instead. */
  exitCode: typeof ExitCode.ok
}

/** The context to point at the VIP and the cluster entry that holds its server, across the files read. */
export interface RewriteSelection {
  contextName: string
  /** The file whose definition of the context counts. */
  contextFile: KubeconfigFile
  clusterName: string
  /** The file to rewrite: the first in precedence that defines the context's cluster. */
  clusterFile: KubeconfigFile
  cluster: NamedEntry
  /** The cluster's server as written, and where it points. */
  server: string
  old: ServerAddress
  /** Other contexts (in any file) that use the same cluster entry: the rewrite moves them too. */
  sharedWith: string[]
  /** --new-context: the name of the context and cluster to add instead. */
  newContext?: string
}

/** For each name, the first file's entry, in precedence order. */
function merged(files: KubeconfigFile[], key: ListKey): Array<NamedEntry & {file: KubeconfigFile}> {
  return firstDefinitions(files.map((f) => entries(f, key))).map(({item, file}) => ({...item, file: files[file] as KubeconfigFile}))
}

function namesOf(file: KubeconfigFile): KubeconfigNames {
  return {
    path: file.path,
    currentContext: currentContext(file),
    contexts: entries(file, 'contexts').map((e) => ({name: e.name, cluster: e.value.cluster})),
    clusters: entries(file, 'clusters'),
  }
}

function checkNewContextName(name: string): void {
  // Names are free-form in kubeconfig, but a name kubectl users cannot type or see is a mistake.
  if (name.trim() !== name || name === '' || /[\p{Cc}]/u.test(name)) {
    throw new UsageError(
      `invalid --new-context ${echo(name)}: expected a non-empty name without control characters or surrounding spaces, e.g. prod-vip`,
    )
  }
}

/**
 * Which context and cluster entry the rewrite is about (kubectl's precedence), refusing what cannot be
 * rewritten: a cluster without a server, a server behind a proxy path, an unusable --new-context name.
 */
export function selectRewrite(files: KubeconfigFile[], request: {context?: string; newContext?: string}): RewriteSelection {
  const choice = chooseContext(files.map(namesOf), request.context)
  const contextFile = files[choice.contextFile] as KubeconfigFile
  const clusterFile = files[choice.clusterFile] as KubeconfigFile
  const cluster = entries(clusterFile, 'clusters').find((e) => e.name === choice.clusterName) as NamedEntry
  const where = `cluster ${echo(choice.clusterName)} in ${clusterFile.path}`
  const server = cluster.value.server
  if (typeof server !== 'string' || server === '') throw new UsageError(`${where} has no server to rewrite`)
  const old = parseServer(server, where)
  if (request.newContext !== undefined) checkNewContextName(request.newContext)
  const sharedWith = merged(files, 'contexts')
    .filter((c) => c.name !== choice.contextName && c.value.cluster === choice.clusterName)
    .map((c) => c.name)
  return {...choice, contextFile, clusterFile, cluster, server, old, sharedWith, newContext: request.newContext}
}

export interface RewriteRequest {
  vip: string
  /** The API port that came with the VIP (a karp install's), if any. */
  installPort?: number
  /** --port: wins over installPort; without either, the port the server has now. */
  port?: number
}

/** The new content of one file, planned from the content read. */
export interface PlannedEdit {
  file: KubeconfigFile
  text: string
}

/** What the rewrite does, decided from the files' content alone. */
export interface RewritePlan {
  result: Pick<KubeconfigRewriteResult, 'file' | 'context' | 'cluster' | 'oldServer' | 'newServer' | 'basedOn' | 'warnings'>
  /** Where the new server points: the VIP and the port chosen. */
  vip: ServerAddress
  /** Every file listed, in precedence order: the context is read back from them as kubectl would. */
  files: string[]
  /** Absent when the context already points at the VIP: nothing to do. */
  edit?: PlannedEdit
}

/** The data items of the original cluster and context, copied for the VIP under the new name, keys in the same order. */
function newEntries(selection: RewriteSelection, name: string, server: string) {
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
 * The edit that points the selected context's cluster at the VIP, or adds a context and cluster for it
 * (--new-context), changing nothing else in the file; no edit when it already points there. Pure: it reads
 * and writes nothing, so what it decides is exactly what the files' content says.
 */
export function planRewrite(files: KubeconfigFile[], selection: RewriteSelection, request: RewriteRequest): RewritePlan {
  const {vip} = request
  const port = request.port ?? request.installPort ?? selection.old.port
  const warnings: string[] = []
  if (port !== selection.old.port) warnings.push(`the port changes from ${selection.old.port} to ${port}`)
  const newServer = vipServer(vip, port)
  const result: RewritePlan['result'] = {
    file: selection.clusterFile.path,
    context: selection.contextName,
    cluster: selection.clusterName,
    oldServer: selection.server,
    newServer,
    basedOn: null,
    warnings,
  }
  const common = {vip: {host: vip, port}, files: files.map((f) => f.path)}
  const name = selection.newContext
  if (name === undefined) {
    if (pointsAt(selection.server, {host: vip, port})) return {...common, result}
    const shared = selection.sharedWith
    if (shared.length > 0) {
      warnings.push(
        `cluster ${echo(selection.clusterName)} is also used by context${shared.length > 1 ? 's' : ''} ${shared.map((n) => echo(n)).join(', ')}: ${shared.length > 1 ? 'they move' : 'it moves'} to the VIP too (--new-context NAME leaves them alone)`,
      )
    }
    const edit = setClusterServer(selection.clusterFile, selection.clusterName, newServer)
    warnings.push(...edit.warnings)
    return {...common, result, edit: {file: selection.clusterFile, text: edit.text}}
  }

  const basedOn = {context: selection.contextName, cluster: selection.clusterName}
  const sameContext = merged(files, 'contexts').find((c) => c.name === name)
  const sameCluster = merged(files, 'clusters').find((c) => c.name === name)
  if (sameContext || sameCluster) {
    const server = sameCluster?.value.server
    if (sameCluster && sameContext?.value.cluster === name && typeof server === 'string' && pointsAt(server, {host: vip, port})) {
      return {...common, result: {...result, file: sameCluster.file.path, context: name, cluster: name, oldServer: server, basedOn}}
    }
    const taken = sameContext
      ? `a context named ${echo(name)} exists in ${sameContext.file.path}`
      : `a cluster named ${echo(name)} exists in ${sameCluster?.file.path}`
    throw new UsageError(`invalid --new-context ${echo(name)}: ${taken}; choose another name`)
  }
  const edit = addClusterAndContext(selection.clusterFile, newEntries(selection, name, newServer))
  warnings.push(...edit.warnings)
  return {...common, result: {...result, context: name, cluster: name, basedOn}, edit: {file: selection.clusterFile, text: edit.text}}
}
