import {UsageError} from '../errors.js'
import {currentContext, entries, type KubeconfigFile, type ListKey, type NamedEntry} from './parse.js'

/** What a context resolves to across kubeconfig files, kubectl's way: for each name the first file to define it wins. */
export interface Selection {
  contextName: string
  /** The file whose definition of the context counts. */
  contextFile: KubeconfigFile
  context: Record<string, unknown>
  clusterName: string
  /** The file to rewrite: the first in precedence that defines the context's cluster. */
  clusterFile: KubeconfigFile
  cluster: NamedEntry
  /** The cluster's server as written. */
  server: string
  /** Other contexts (in any file) that use the same cluster entry: the rewrite moves them too. */
  sharedWith: string[]
}

const list = (items: string[]) => (items.length > 0 ? items.map((n) => JSON.stringify(n)).join(', ') : '(none defined)')

/** For each name, the first file's definition, in precedence order. */
export function merged(files: KubeconfigFile[], key: ListKey): Array<NamedEntry & {file: KubeconfigFile}> {
  const seen = new Map<string, NamedEntry & {file: KubeconfigFile}>()
  for (const file of files) for (const entry of entries(file, key)) if (!seen.has(entry.name)) seen.set(entry.name, {...entry, file})
  return [...seen.values()]
}

function describeFiles(files: KubeconfigFile[]): string {
  return files.map((f) => f.path).join(', ')
}

/**
 * Picks the context (the flag, else the first current-context set) and the file that defines its cluster,
 * failing with the names that do exist.
 */
export function selectContext(files: KubeconfigFile[], wanted?: string): Selection {
  const contexts = merged(files, 'contexts')
  const clusters = merged(files, 'clusters')
  const contextNames = contexts.map((c) => c.name)
  let contextName = wanted
  if (contextName === undefined) {
    contextName = files.map(currentContext).find((c) => c !== undefined)
    if (contextName === undefined) {
      throw new UsageError(`kubeconfig ${describeFiles(files)} sets no current-context`, `pass --context, one of: ${list(contextNames)}`)
    }
  }
  const context = contexts.find((c) => c.name === contextName)
  if (!context) {
    const what = wanted === undefined ? 'current-context' : '--context'
    throw new UsageError(`invalid ${what} ${JSON.stringify(contextName)}: no such context in ${describeFiles(files)}; contexts: ${list(contextNames)}`)
  }
  const clusterName = context.value.cluster
  if (typeof clusterName !== 'string' || clusterName === '') {
    throw new UsageError(`context ${JSON.stringify(contextName)} in ${context.file.path} names no cluster`)
  }
  const cluster = clusters.find((c) => c.name === clusterName)
  if (!cluster) {
    throw new UsageError(
      `context ${JSON.stringify(contextName)} names cluster ${JSON.stringify(clusterName)}, which no file defines (${describeFiles(files)}); clusters: ${list(clusters.map((c) => c.name))}`,
    )
  }
  const server = cluster.value.server
  if (typeof server !== 'string' || server === '') {
    throw new UsageError(`cluster ${JSON.stringify(clusterName)} in ${cluster.file.path} has no server to rewrite`)
  }
  const sharedWith = contexts.filter((c) => c.name !== contextName && c.value.cluster === clusterName).map((c) => c.name)
  return {
    contextName,
    contextFile: context.file,
    context: context.value,
    clusterName,
    clusterFile: cluster.file,
    cluster,
    server,
    sharedWith,
  }
}
