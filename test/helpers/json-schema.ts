// The JSON Schemas of schemas/, one per command's --json output and one for the error every command prints
// under --json when it fails: what scripts may rely on, checked against real outputs.
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import Ajv from 'ajv'

export const SCHEMA_DIR = fileURLToPath(new URL('../../schemas/', import.meta.url))

/** The output a schema describes: a command as oclif names it (`kubeconfig rewrite`), or `error`. */
export type SchemaName = 'bootstrap' | 'check-cert' | 'install' | 'kubeconfig rewrite' | 'render' | 'status' | 'uninstall' | 'error'

export const schemaFile = (name: string) => `${name.replaceAll(' ', '-')}.schema.json`

// allErrors: every mismatch at once; strictKeywords: a misspelt keyword in a schema is an error, not ignored.
const ajv = new Ajv({allErrors: true, strictKeywords: true})
const compiled = new Map<string, Ajv.ValidateFunction>()

function validator(name: SchemaName, dir: string): Ajv.ValidateFunction {
  const file = join(dir, schemaFile(name))
  let validate = compiled.get(file)
  if (!validate) {
    validate = ajv.compile(JSON.parse(readFileSync(file, 'utf8')) as object)
    compiled.set(file, validate)
  }
  return validate
}

/** Where `value` breaks the schema, one line each (path: what is wrong); empty when it matches. */
export function schemaProblems(name: SchemaName, value: unknown, dir = SCHEMA_DIR): string[] {
  const validate = validator(name, dir)
  if (validate(value)) return []
  return (validate.errors ?? []).map((e) => {
    const extra = (e.params as {additionalProperty?: string}).additionalProperty
    return `${e.dataPath || '(top)'}: ${e.message ?? e.keyword}${extra === undefined ? '' : ` (${extra})`}`
  })
}

export function assertMatchesSchema(name: SchemaName, value: unknown, dir = SCHEMA_DIR): void {
  assert.ok(value !== undefined, `no JSON output to check against ${schemaFile(name)}`)
  assert.deepEqual(schemaProblems(name, value, dir), [], `${schemaFile(name)} rejects ${JSON.stringify(value).slice(0, 2000)}`)
}

/**
 * A command's --json output, whichever it printed: its result or the error shape, each matching its schema
 * and declaring the exit code the process ended with.
 */
export function assertJsonOutput(
  name: Exclude<SchemaName, 'error'>,
  run: {exitCode: number; json: unknown; stdout?: string; stderr?: string},
): void {
  assert.ok(run.json !== undefined, `no JSON output (exit ${run.exitCode})\nstdout: ${run.stdout ?? ''}\nstderr: ${run.stderr ?? ''}`)
  const failed = typeof run.json === 'object' && run.json !== null && 'error' in run.json
  assertMatchesSchema(failed ? 'error' : name, run.json)
  const declared = failed ? (run.json as {error: {exitCode: number}}).error.exitCode : (run.json as {exitCode: number}).exitCode
  assert.equal(declared, run.exitCode, `the exit code ${schemaFile(name)}'s output declares is the one the command ended with`)
}
