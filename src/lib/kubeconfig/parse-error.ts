import {escapeControl} from '../echo.js'

/**
 * One line for a kubeconfig that does not parse, with no byte of the file in it. Parsers quote the source
 * around an error (the `yaml` library and js-yaml, inside @kubernetes/client-node, print the neighbouring
 * lines), and some put a piece of it in the reason itself ("Unresolved tag: !<password>"); a kubeconfig's
 * neighbouring lines are tokens, keys and passwords. So the message keeps only the position and the
 * parser's reason, cut before anything it quotes.
 */

export interface ParseFailure {
  /** The parser's own words, possibly followed by source text: only the part before any quote is kept. */
  reason: string
  /** 1-based, when the parser knows it. */
  line?: number
  column?: number
}

// Reasons are written by the parsers' authors: words, punctuation they use as words, numbers.
const SAFE_REASON = /^[A-Za-z0-9 ,;:()[\]'.-]*$/

/** The parser's reason without anything it quotes from the source (after ": ", a quote, a tag, an escape...). */
export function safeReason(reason: string): string {
  const firstLine = reason.split('\n')[0] ?? ''
  // "... at line 3, column 5:" (yaml) and "(3:5)" (js-yaml) are the position, given separately.
  const bare = firstLine.replace(/ at line \d+, column \d+:?\s*$/, '').replace(/\s*\(\d+:\d+\)\s*$/, '')
  const cut = bare.split(/: |\s["`!&*<\\]|\s'[^']{2,}/)[0]?.replace(/[\s,;:]+$/, '') ?? ''
  if (cut === '' || cut.length > 120 || !SAFE_REASON.test(cut)) return 'syntax error'
  return cut
}

export function parseErrorMessage(path: string, failure: ParseFailure): string {
  const where =
    failure.line === undefined ? '' : ` at line ${failure.line}${failure.column === undefined ? '' : `, column ${failure.column}`}`
  return `kubeconfig ${escapeControl(path)} is not valid YAML: ${safeReason(failure.reason)}${where}`
}

/** What a yaml (eemeli/yaml) YAMLError says, without its source excerpt. */
export function fromYamlError(error: {
  message: string
  linePos?: [{line: number; col: number}] | [{line: number; col: number}, unknown]
}): ParseFailure {
  const at = error.linePos?.[0]
  return {reason: error.message, line: at?.line, column: at?.col}
}

/** What a js-yaml YAMLException (thrown by @kubernetes/client-node's loadFromString) says, without its snippet. */
export function fromJsYamlError(error: unknown): ParseFailure | undefined {
  const e = error as {name?: string; reason?: unknown; mark?: {line?: unknown; column?: unknown}}
  if (e?.name !== 'YAMLException' || typeof e.reason !== 'string') return undefined
  const line = typeof e.mark?.line === 'number' ? e.mark.line + 1 : undefined
  const column = typeof e.mark?.column === 'number' ? e.mark.column + 1 : undefined
  return {reason: e.reason, line, column}
}
