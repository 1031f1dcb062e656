import {isDeepStrictEqual} from 'node:util'

import {Document, isAlias, isMap, isScalar, isSeq, type Node, parseDocument, visit} from 'yaml'

import {ExitCode, KarpError, UsageError} from '../errors.js'
import {entries, type KubeconfigFile, type ListKey} from './parse.js'

/**
 * Edits a kubeconfig as text: the yaml Document only says WHERE (source ranges); the change is spliced into
 * the original text, so every other byte (comments, quoting, indentation, key order, unknown fields) stays.
 * Each edit is then re-parsed and compared with the intended change, and refused if anything else moved.
 */

export type QuoteStyle = 'plain' | 'single' | 'double'

interface TextEdit {
  start: number
  end: number
  text: string
}

export interface EditResult {
  text: string
  warnings: string[]
}

/** Something that should never happen: the edit is refused and nothing is written (exit 1). */
export class EditBugError extends KarpError {
  constructor(message: string) {
    super(message, ExitCode.bug, 'nothing was written; please report this with the kubeconfig layout (not its secrets)')
    this.name = 'EditBugError'
  }
}

function applyEdits(text: string, edits: TextEdit[]): string {
  let out = text
  for (const edit of [...edits].sort((a, b) => b.start - a.start)) out = out.slice(0, edit.start) + edit.text + out.slice(edit.end)
  return out
}

/** A scalar value in the quoting style it had: the same characters a person would have typed. */
export function renderScalar(value: string, style: QuoteStyle): string {
  if (style === 'single') return `'${value.replaceAll("'", "''")}'`
  // JSON's escapes are a subset of YAML's double-quoted ones.
  if (style === 'double') return JSON.stringify(value)
  return value
}

function styleOf(node: Node): QuoteStyle | undefined {
  if (!isScalar(node)) return undefined
  if (node.type === 'PLAIN') return 'plain'
  if (node.type === 'QUOTE_SINGLE') return 'single'
  if (node.type === 'QUOTE_DOUBLE') return 'double'
  return undefined
}

/** Whether any alias in the document refers to this node's anchor (so changing it would change them too). */
function isAliased(doc: Document, node: Node | null | undefined): string | undefined {
  const anchor = node && 'anchor' in node ? node.anchor : undefined
  if (!anchor) return undefined
  let used = false
  visit(doc, {
    Alias(_, alias) {
      if (alias.source === anchor) {
        used = true
        return visit.BREAK
      }
      return undefined
    },
  })
  return used ? anchor : undefined
}

export interface ServerLocation {
  start: number
  end: number
  style: QuoteStyle
  value: string
  /** true when the server sits in a flow mapping ({server: ...}), where a plain scalar must avoid flow indicators. */
  inFlow: boolean
}

/** Where the server value of one cluster entry is written, refusing layouts a text splice cannot change alone. */
export function locateServer(file: KubeconfigFile, clusterName: string): ServerLocation {
  const entry = entries(file, 'clusters').find((e) => e.name === clusterName)
  const where = `cluster ${JSON.stringify(clusterName)} in ${file.path}`
  if (!entry) throw new EditBugError(`${where} vanished between reading and editing`)
  const inner = entry.node.get('cluster', true) as Node | undefined
  const server = isMap(inner) ? (inner.get('server', true) as Node | undefined) : undefined
  const byHand = 'edit this entry by hand'
  if (isAlias(inner) || isAlias(server)) {
    throw new UsageError(
      `${where} takes its ${isAlias(inner) ? 'cluster' : 'server'} from the YAML alias *${(isAlias(inner) ? inner : (server as {source: string})).source}; changing it would change every use`,
      byHand,
    )
  }
  for (const node of [entry.node, inner, server]) {
    const anchor = isAliased(file.doc, node)
    if (anchor)
      throw new UsageError(`${where} is shared through the YAML anchor &${anchor}; changing it would change every alias of it`, byHand)
  }
  if (!isMap(inner) || !isScalar(server) || typeof server.value !== 'string' || !server.range) {
    throw new UsageError(`${where} has no server string to rewrite`)
  }
  const style = styleOf(server)
  if (!style)
    throw new UsageError(
      `${where} writes its server as a ${server.type === 'BLOCK_FOLDED' ? 'folded' : 'literal'} block scalar, which karp does not rewrite`,
      byHand,
    )
  return {start: server.range[0], end: server.range[1], style, value: server.value, inFlow: Boolean(inner.flow)}
}

const FLOW_INDICATORS = /[,[\]{}]/

/** The text of a new server value in the place of the old one, in the old one's style. */
export function renderServer(location: ServerLocation, server: string): string {
  // A plain scalar cannot hold flow indicators inside {...}; quote rather than break the mapping.
  if (location.style === 'plain' && location.inFlow && FLOW_INDICATORS.test(server)) return renderScalar(server, 'double')
  return renderScalar(server, location.style)
}

/**
 * Re-parses the edited text and checks that, as data, it equals the original with exactly the intended
 * change: a guard against any surprise of the splice. Refuses (exit 1, nothing written) otherwise.
 */
export function assertOnlyChange(
  file: KubeconfigFile,
  edited: string,
  intended: (data: Record<string, unknown>) => void,
  what: string,
): void {
  const after = parseDocument(edited, {uniqueKeys: true})
  const refuse = (why: string) => {
    throw new EditBugError(`refusing to write ${file.path}: ${why} after ${what} (a karp bug)`)
  }
  if (after.errors.length > 0) refuse(`the edited text no longer parses (${after.errors[0]?.message.split('\n')[0]})`)
  const expected = structuredClone<Record<string, unknown>>(file.data ?? {})
  intended(expected)
  if (!isDeepStrictEqual(after.toJS() ?? {}, expected)) refuse('more than the intended values would change')
}

/** The first entry with this name in a list of the data (what kubectl reads for the name). */
function dataEntry(data: Record<string, unknown>, key: ListKey, name: string): Record<string, unknown> {
  const list = data[key]
  const found = Array.isArray(list) ? (list as Array<Record<string, unknown>>).find((e) => e?.name === name) : undefined
  if (!found) throw new EditBugError(`${key} entry ${JSON.stringify(name)} vanished while editing`)
  return found
}

/** Rewrites one cluster's server in the original text; every other byte stays the same. */
export function setClusterServer(file: KubeconfigFile, clusterName: string, server: string): EditResult {
  const location = locateServer(file, clusterName)
  const text = applyEdits(file.text, [{start: location.start, end: location.end, text: renderServer(location, server)}])
  assertOnlyChange(
    file,
    text,
    (data) => {
      const entry = dataEntry(data, 'clusters', clusterName)
      ;(entry.cluster as Record<string, unknown>).server = server
    },
    `changing the server of cluster ${JSON.stringify(clusterName)}`,
  )
  return {text, warnings: []}
}

/**
 * A list item as block YAML text, its first line after `prefix` ("- " with the list's indentation); nested
 * lists indented (indentSeq) or not, as the file writes its own lists.
 */
export function renderListItem(item: Record<string, unknown>, prefix: string, indentSeq = false): string {
  // lineWidth 0: never fold long values (certificate data).
  const body = new Document(item).toString({lineWidth: 0, indentSeq}).replace(/\n$/, '')
  const pad = ' '.repeat(prefix.length)
  return `${body
    .split('\n')
    .map((line, i) => (i === 0 ? prefix + line : line === '' ? '' : pad + line))
    .join('\n')}\n`
}

function lineStart(text: string, offset: number): number {
  return text.lastIndexOf('\n', offset - 1) + 1
}

const columnOf = (text: string, offset: number) => offset - lineStart(text, offset)

/** An item in flow (JSON) style: valid in a JSON file and in any YAML flow collection. */
const flowItem = (item: Record<string, unknown>) => JSON.stringify(item)

/**
 * The text edits that append an item to a top-level list while leaving every existing byte alone, or
 * undefined when the layout needs the Document API (odd indentation, a list that is not a list).
 */
function planAppend(file: KubeconfigFile, key: ListKey, item: Record<string, unknown>): TextEdit[] | undefined {
  const {text} = file
  const top = file.doc.contents
  if (!isMap(top) || !top.range) return undefined
  const pair = top.items.find((p) => isScalar(p.key) && p.key.value === key)
  const value = (pair?.value ?? null) as Node | null
  const keyNode = pair?.key as Node | undefined

  if (top.flow) {
    // A JSON kubeconfig: add `, item` after the last item, or `, "key": [item]` after the last member.
    if (isSeq(value) && value.flow && value.range) {
      const last = value.items.at(-1) as Node | undefined
      if (!last) return [{start: value.range[0], end: value.range[1], text: `[${flowItem(item)}]`}]
      return last.range ? [{start: last.range[1], end: last.range[1], text: `, ${flowItem(item)}`}] : undefined
    }
    const lastValue = top.items.at(-1)?.value as Node | undefined
    if (pair || !lastValue?.range) return undefined
    return [{start: lastValue.range[1], end: lastValue.range[1], text: `, ${JSON.stringify(key)}: [${flowItem(item)}]`}]
  }

  if (!pair || !keyNode?.range) {
    // No such list yet: add it after everything else, at the indentation of the top-level keys.
    const firstKey = top.items[0]?.key as Node | undefined
    const column = firstKey?.range ? columnOf(text, firstKey.range[0]) : 0
    // Only comments and blank lines may follow the mapping (a document end marker would end the file).
    if (!/^(\s|#[^\n]*)*$/.test(text.slice(top.range[1]))) return undefined
    const indent = ' '.repeat(column)
    const lead = text === '' || text.endsWith('\n') ? '' : '\n'
    return [{start: text.length, end: text.length, text: `${lead}${indent}${key}:\n${renderListItem(item, `${indent}- `)}`}]
  }
  const keyColumn = columnOf(text, keyNode.range[0])
  if (isSeq(value) && value.flow && value.items.length > 0 && value.range) {
    const last = value.items.at(-1) as Node
    return last.range ? [{start: last.range[1], end: last.range[1], text: `, ${flowItem(item)}`}] : undefined
  }
  if (isSeq(value) && value.items.length > 0) {
    const last = value.items.at(-1) as Node
    if (!last.range) return undefined
    const prefix = text.slice(lineStart(text, last.range[0]), last.range[0])
    if (!/^ *- +$/.test(prefix)) return undefined
    // The last item's range ends after its last line's newline (trailing comment included); insert there.
    let at = last.range[1]
    let lead = ''
    if (at > 0 && text[at - 1] !== '\n') {
      const newline = text.indexOf('\n', at)
      if (newline < 0) {
        at = text.length
        lead = '\n'
      } else at = newline + 1
    }
    const indentSeq = prefix.indexOf('-') > keyColumn
    return [{start: at, end: at, text: lead + renderListItem(item, prefix, indentSeq)}]
  }
  const empty = (isScalar(value) && value.value === null) || value === null || (isSeq(value) && value.items.length === 0)
  if (!empty) return undefined
  // `contexts:`, `contexts: null`, `contexts: []` (a comment after it kept): drop the value, put the list below.
  const keyEnd = keyNode.range[1]
  const lineEnd = text.indexOf('\n', keyEnd) < 0 ? text.length : text.indexOf('\n', keyEnd)
  const edits: TextEdit[] = []
  if (value && value.range && value.range[0] < value.range[1]) {
    if (value.range[1] > lineEnd) return undefined
    let start = value.range[0]
    while (start > keyEnd && (text[start - 1] === ' ' || text[start - 1] === '\t')) start--
    edits.push({start, end: value.range[1], text: ''})
  }
  const itemText = renderListItem(item, `${' '.repeat(keyColumn)}- `)
  edits.push(
    lineEnd === text.length
      ? {start: lineEnd, end: lineEnd, text: `\n${itemText}`}
      : {start: lineEnd + 1, end: lineEnd + 1, text: itemText},
  )
  return edits
}

/** The same additions through the Document API, for layouts a text insertion cannot handle. */
function appendWithDocument(file: KubeconfigFile, additions: Array<[ListKey, Record<string, unknown>]>): string {
  const doc = parseDocument(file.text, {uniqueKeys: true})
  for (const [key, item] of additions) {
    const list = isMap(doc.contents) ? doc.contents.get(key, true) : undefined
    if (isSeq(list)) list.add(doc.createNode(item))
    else doc.set(key, doc.createNode([item]))
  }
  return doc.toString({lineWidth: 0})
}

/** Whole list items, {name, cluster} and {name, context}, keys in the order they should be written. */
export interface NewEntries {
  cluster: Record<string, unknown> & {name: string}
  context: Record<string, unknown> & {name: string}
}

/**
 * Adds a cluster entry and a context entry at the end of their lists as inserted text, no existing byte
 * changed: in block lists with the existing items' indentation, in flow (JSON) lists as `, {...}`. Layouts
 * where that is not safe go through the Document API (the file is then re-serialised, which a warning says).
 */
export function addClusterAndContext(file: KubeconfigFile, add: NewEntries): EditResult {
  const additions: Array<[ListKey, Record<string, unknown>]> = [
    ['clusters', add.cluster],
    ['contexts', add.context],
  ]
  const plans = additions.map(([key, item]) => planAppend(file, key, item))
  const warnings: string[] = []
  let text: string
  if (plans.every((p) => p !== undefined)) {
    text = applyEdits(file.text, plans.flat<TextEdit[][]>())
  } else {
    text = appendWithDocument(file, additions)
    const which = additions.filter((_, i) => plans[i] === undefined).map(([k]) => k)
    warnings.push(
      `${file.path}: ${which.join(' and ')} ${which.length > 1 ? 'are' : 'is'} not a list karp can append to as text, so the YAML library re-wrote the file: data and comments are kept, layout and quoting may differ (see --dry-run)`,
    )
  }
  assertOnlyChange(
    file,
    text,
    (data) => {
      for (const [key, item] of additions) {
        const list = data[key]
        if (Array.isArray(list)) list.push(item)
        else data[key] = [item]
      }
    },
    `adding cluster ${JSON.stringify(add.cluster.name)} and context ${JSON.stringify(add.context.name)}`,
  )
  return {text, warnings}
}
