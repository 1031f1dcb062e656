import {type Document, parseDocument} from 'yaml'

import {escapeControl} from '../echo.js'
import {UsageError} from '../errors.js'

/**
 * Aliases may be expanded this many times in all (the yaml library's default, stated because it is what
 * stops an alias bomb, "billion laughs", from growing a few KB of text into gigabytes of data). kubectl's
 * own files use no aliases; hand-written ones use a few.
 */
export const MAX_ALIAS_COUNT = 100

/** A parsed document as plain data, or a one-line UsageError when expanding it would be an attack. */
export function boundedData(path: string, doc: Document.Parsed): unknown {
  try {
    return doc.toJS({maxAliasCount: MAX_ALIAS_COUNT})
  } catch (error) {
    if (error instanceof ReferenceError) {
      const bomb = error.message.startsWith('Excessive alias count')
      throw new UsageError(
        `kubeconfig ${escapeControl(path)} ${bomb ? `expands YAML aliases more than ${MAX_ALIAS_COUNT} times (an alias bomb?); karp refuses it` : 'has a YAML alias that cannot be resolved'}`,
      )
    }
    if (error instanceof RangeError) throw new UsageError(`kubeconfig ${escapeControl(path)} is nested too deeply to be a kubeconfig`)
    throw error
  }
}

/**
 * Refuses text whose aliases would expand beyond MAX_ALIAS_COUNT, for readers whose own parser has no such
 * limit (js-yaml in @kubernetes/client-node shares aliased objects instead, so a bomb costs nothing there,
 * but anything that walks the result, as JSON output does, would expand it). Syntax errors are left to
 * that parser.
 */
export function refuseAliasBomb(path: string, text: string): void {
  const doc = parseDocument(text, {keepSourceTokens: false, prettyErrors: false})
  if (doc.errors.length === 0) boundedData(path, doc)
}
