import {type Document, isMap, isNode, isScalar, isSeq, parseDocument, type YAMLMap} from 'yaml'

import {escapeControl} from '../echo.js'
import {UsageError} from '../errors.js'
import {fromYamlError, parseErrorMessage} from './parse-error.js'
import {readKubeconfigBytes} from './read-file.js'
import {boundedData} from './yaml-limits.js'

export type ListKey = 'clusters' | 'contexts' | 'users'

/** One kubeconfig file as read: its exact bytes, the text they decode to, and the YAML document with source ranges. */
export interface KubeconfigFile {
  /** The path as listed (--kubeconfig, KUBECONFIG or ~/.kube/config); may be a symlink. */
  path: string
  bytes: Buffer
  text: string
  doc: Document.Parsed
  /** The document as plain data (null for an empty file). */
  data: Record<string, unknown> | null
}

/** One entry of clusters, contexts or users: its name, its inner map (cluster:, context:, user:) as data, and its node. */
export interface NamedEntry {
  name: string
  /** The entry's cluster/context/user map as plain data; {} when absent. */
  value: Record<string, unknown>
  node: YAMLMap
}

const INNER_KEY: Record<ListKey, string> = {clusters: 'cluster', contexts: 'context', users: 'user'}

/** Parses kubeconfig text; every failure is the user's file's problem (exit 2) and names the file. */
export function parseKubeconfig(path: string, bytes: Buffer): KubeconfigFile {
  const text = bytes.toString('utf8')
  // The edit splices text and writes it back as UTF-8: a file that does not round-trip would change elsewhere.
  if (!Buffer.from(text, 'utf8').equals(bytes))
    throw new UsageError(`kubeconfig ${escapeControl(path)} is not valid UTF-8; karp edits UTF-8 text only`)
  const doc = parseDocument(text, {keepSourceTokens: false, prettyErrors: true, uniqueKeys: true})
  const error = doc.errors[0]
  if (error) throw new UsageError(parseErrorMessage(path, fromYamlError(error)))
  const contents = doc.contents
  if (contents !== null && !isMap(contents) && !(isScalar(contents) && contents.value === null)) {
    throw new UsageError(
      `kubeconfig ${escapeControl(path)} is not a kubeconfig: expected a mapping with clusters, contexts and users at the top`,
    )
  }
  const data = (boundedData(path, doc) ?? null) as Record<string, unknown> | null
  const file: KubeconfigFile = {path, bytes, text, doc, data}
  // Shape checks, as kubectl's decoding would fail on them; names must be unique within one file.
  for (const key of ['clusters', 'contexts', 'users'] as const) {
    const seen = new Set<string>()
    for (const entry of entries(file, key)) {
      if (seen.has(entry.name))
        throw new UsageError(
          `kubeconfig ${escapeControl(path)} defines ${INNER_KEY[key]} ${JSON.stringify(entry.name)} twice; kubectl refuses such a file too`,
        )
      seen.add(entry.name)
    }
  }
  const current = data?.['current-context']
  if (current !== undefined && current !== null && typeof current !== 'string') {
    throw new UsageError(`kubeconfig ${escapeControl(path)} is not valid: current-context must be a string`)
  }
  return file
}

/** Reads (bounded: see readKubeconfigBytes) and parses one kubeconfig file, with a one-line error for each way it can fail. */
export function readKubeconfig(path: string): KubeconfigFile {
  return parseKubeconfig(path, readKubeconfigBytes(path))
}

/** The named entries of one list (clusters, contexts, users) in file order; malformed lists are errors. */
export function entries(file: KubeconfigFile, key: ListKey): NamedEntry[] {
  if (!isMap(file.doc.contents)) return []
  const list = file.doc.contents.get(key, true)
  if (list === undefined || (isScalar(list) && list.value === null)) return []
  const what = `kubeconfig ${escapeControl(file.path)} is not valid`
  if (!isSeq(list)) throw new UsageError(`${what}: ${key} must be a list`)
  return list.items.map((item, index) => {
    if (!isMap(item)) throw new UsageError(`${what}: ${key}[${index}] must be a mapping with name and ${INNER_KEY[key]}`)
    const name = item.get('name')
    if (typeof name !== 'string' || name === '') throw new UsageError(`${what}: ${key}[${index}] has no name`)
    const inner = item.get(INNER_KEY[key], true)
    const value: unknown = isNode(inner) ? inner.toJS(file.doc) : inner
    if (value !== null && value !== undefined && (typeof value !== 'object' || Array.isArray(value))) {
      throw new UsageError(`${what}: ${key}[${index}] (${JSON.stringify(name)}) ${INNER_KEY[key]} must be a mapping`)
    }
    return {name, value: (value ?? {}) as Record<string, unknown>, node: item}
  })
}

/** The names one list defines in this file. */
export function names(file: KubeconfigFile, key: ListKey): string[] {
  return entries(file, key).map((e) => e.name)
}

/** The current-context a file sets, if any. */
export function currentContext(file: KubeconfigFile): string | undefined {
  const value = file.data?.['current-context']
  return typeof value === 'string' && value !== '' ? value : undefined
}
