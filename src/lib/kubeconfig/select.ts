import {existsSync} from 'node:fs'
import {homedir} from 'node:os'
import {delimiter, join} from 'node:path'

import {echo, escapeControl} from '../echo.js'
import {UsageError} from '../errors.js'

/**
 * The kubeconfig files to read, the way kubectl finds them: the --kubeconfig flag alone; else every
 * existing file in $KUBECONFIG; else ~/.kube/config. In precedence order: for each name, the first file
 * that defines it wins. Fails when there is nothing to read.
 */
export function locateKubeconfig(flag?: string, env: NodeJS.ProcessEnv = process.env): string[] {
  if (flag) return [flag]
  const hint = 'pass --kubeconfig PATH or set KUBECONFIG'
  if (env.KUBECONFIG) {
    // kubectl skips KUBECONFIG entries that do not exist.
    const files = [...new Set(env.KUBECONFIG.split(delimiter).filter((f) => f.length > 0 && existsSync(f)))]
    if (files.length === 0) throw new UsageError(`none of the files in KUBECONFIG exists (${escapeControl(env.KUBECONFIG)})`, hint)
    return files
  }
  const file = join(env.HOME || homedir(), '.kube', 'config')
  if (!existsSync(file)) throw new UsageError('no kubeconfig found at ~/.kube/config', hint)
  return [file]
}

/** What choosing a context needs of one kubeconfig file, whichever parser read it. */
export interface KubeconfigNames {
  path: string
  /** The current-context the file sets; undefined or '' when it sets none. */
  currentContext?: string
  contexts: Array<{name: string; cluster?: unknown}>
  clusters: Array<{name: string}>
}

/** For each name, the first file's definition (kubectl's merge rule), with the index of the file it came from. */
export function firstDefinitions<T extends {name: string}>(lists: T[][]): Array<{item: T; file: number}> {
  const seen = new Map<string, {item: T; file: number}>()
  lists.forEach((items, file) => {
    for (const item of items) if (!seen.has(item.name)) seen.set(item.name, {item, file})
  })
  return [...seen.values()]
}

/** The context to use and where it and its cluster are defined (indexes into the files given). */
export interface ContextChoice {
  contextName: string
  contextFile: number
  clusterName: string
  clusterFile: number
}

const list = (names: string[]) => (names.length > 0 ? names.map((n) => echo(n)).join(', ') : '(none defined)')

/**
 * Picks the context (the flag, else the first current-context a file sets) and the file that defines its
 * cluster, failing with the names that do exist.
 */
export function chooseContext(files: KubeconfigNames[], wanted?: string): ContextChoice {
  const contexts = firstDefinitions(files.map((f) => f.contexts))
  const clusters = firstDefinitions(files.map((f) => f.clusters))
  const paths = files.map((f) => escapeControl(f.path)).join(', ')
  const contextNames = contexts.map((c) => c.item.name)
  const contextName = wanted ?? files.map((f) => f.currentContext).find((c) => c !== undefined && c !== '')
  if (contextName === undefined)
    throw new UsageError(`kubeconfig ${paths} sets no current-context`, `pass --context, one of: ${list(contextNames)}`)
  const context = contexts.find((c) => c.item.name === contextName)
  if (!context) {
    throw new UsageError(
      `invalid ${wanted === undefined ? 'current-context' : '--context'} ${echo(contextName)}: no such context in ${paths}; contexts: ${list(contextNames)}`,
    )
  }
  const clusterName = context.item.cluster
  if (typeof clusterName !== 'string' || clusterName === '') {
    throw new UsageError(`context ${echo(contextName)} in ${escapeControl(files[context.file]?.path ?? '')} names no cluster`)
  }
  const cluster = clusters.find((c) => c.item.name === clusterName)
  if (!cluster) {
    throw new UsageError(
      `context ${echo(contextName)} names cluster ${echo(clusterName)}, which no file defines (${paths}); clusters: ${list(clusters.map((c) => c.item.name))}`,
    )
  }
  return {contextName, contextFile: context.file, clusterName, clusterFile: cluster.file}
}
