import assert from 'node:assert/strict'
import {readdirSync, readFileSync} from 'node:fs'
import {join, relative} from 'node:path'
import {describe, it} from 'node:test'
import {fileURLToPath} from 'node:url'

import {DEFAULT_API_PORT, DEFAULT_SUBNET_PREFIX} from '../../src/lib/constants.js'

const SRC = fileURLToPath(new URL('../../src', import.meta.url))
const sources = (readdirSync(SRC, {recursive: true}) as string[]).filter((f) => f.endsWith('.ts')).map((f) => join(SRC, f))

/** A quoted label, annotation or condition key. */
const KEY_LITERAL = /['"`](app\.kubernetes\.io|karp\.io)\//

/** Lines of src/ (outside src/lib/constants.ts), or of `files`, that match, as file:line: text. */
function linesMatching(pattern: RegExp, allowed: (line: string) => boolean = () => false, files = sources): string[] {
  const found: string[] = []
  for (const file of files) {
    if (file.endsWith(join('lib', 'constants.ts'))) continue
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (pattern.test(line) && !allowed(line)) found.push(`${relative(SRC, file)}:${i + 1}: ${line.trim()}`)
      })
  }
  return found
}

// An example in help or error text (e.g. 10.0.0.11:6443) names no default.
const example = (line: string) => /e\.g\.|such as|config\.bin/.test(line)

describe('one definition of each constant in src/', () => {
  it('spells label, annotation and condition keys only in src/lib/constants.ts', () => {
    assert.deepEqual(linesMatching(KEY_LITERAL), [])
  })

  it('states the default API port and subnet prefix only there', () => {
    assert.deepEqual(linesMatching(new RegExp(`\\b${DEFAULT_API_PORT}\\b`), example), [])
    assert.deepEqual(linesMatching(new RegExp(`['"\`]${DEFAULT_SUBNET_PREFIX}['"\`]`)), [])
  })

  it('finds a copy when there is one', () => {
    // This file, read as a source, holds one:
    const copy = "'karp.io/vip'"
    assert.ok(copy)
    assert.notDeepEqual(linesMatching(KEY_LITERAL, undefined, [fileURLToPath(import.meta.url)]), [])
  })
})
