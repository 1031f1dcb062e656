// The JSON Schemas of schemas/: one for every command's --json output, strict enough that a changed output
// fails them. Real outputs of each command are checked where they are made: the pure functions' tests
// (cert-check, status-verdict, kubeconfig-check), the binary's (cli-render, cert-cli, kubeconfig-cli) and the
// integration suites that run commands against a cluster.
import assert from 'node:assert/strict'
import {readdirSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {planServerCheck, runCertCheck} from '../../src/lib/cert/check-cert.js'
import {statusFromSnapshot} from '../../src/lib/status/status.js'
import {unusedPort} from '../helpers/certs.js'
import {SCHEMA_DIR, type SchemaName, schemaFile, schemaProblems} from '../helpers/json-schema.js'

const manifest = JSON.parse(readFileSync(new URL('../../oclif.manifest.json', import.meta.url), 'utf8')) as {
  commands: Record<string, {flags: Record<string, unknown>}>
}

type Json = Record<string, unknown>
/** Each object schema of a schema document, with where it is. */
function objectSchemas(node: unknown, at: string): Array<[string, Json]> {
  if (node === null || typeof node !== 'object') return []
  const here: Array<[string, Json]> = (node as Json).type === 'object' ? [[at, node as Json]] : []
  return [...here, ...Object.entries(node).flatMap(([key, child]) => objectSchemas(child, `${at}/${key}`))]
}

describe('schemas/', () => {
  const files = readdirSync(SCHEMA_DIR).sort()

  it('has a schema for every command with --json, the error shape, and nothing else', () => {
    const commands = Object.entries(manifest.commands)
      .filter(([, command]) => 'json' in command.flags)
      .map(([id]) => id.replaceAll(':', ' '))
    assert.ok(commands.length >= 6, `commands with --json: ${commands.join(', ')}`)
    assert.deepEqual(files, [...commands, 'error'].map(schemaFile).sort())
  })

  for (const file of files) {
    it(`${file}: every object says which properties it allows, and requires some`, () => {
      const schema = JSON.parse(readFileSync(join(SCHEMA_DIR, file), 'utf8')) as Json
      const objects = objectSchemas(schema, '#')
      assert.ok(objects.length > 0)
      for (const [at, object] of objects) {
        assert.ok('additionalProperties' in object, `${file} ${at} sets additionalProperties`)
        // Open only where Kubernetes, not karp, defines the shape (render's objects), and said so.
        if (object.additionalProperties !== false) assert.match(String(object.description), /Kubernetes/, `${file} ${at} is open`)
        assert.ok(Array.isArray(object.required) && object.required.length > 0, `${file} ${at} requires properties`)
      }
    })
  }
})

describe('the schemas refuse a changed output', () => {
  // Real results to change: an endpoint nothing listens on (exit 3), and a cluster without karp (exit 4).
  const checkCert = async () =>
    runCertCheck(planServerCheck({vip: '192.0.2.10', servers: [{host: '127.0.0.1', port: await unusedPort()}]}), {timeoutMs: 2000})
  const status = () =>
    statusFromSnapshot(
      {daemonSets: [], pods: [], nodes: [], events: []},
      {contextName: 'c', server: 'https://127.0.0.1:6443'},
      {probe: false, timeoutMs: 1000},
      new Date(),
    )

  const changes: Array<[string, (r: Json) => void]> = [
    ['a property no schema names', (r) => (r.extra = true)],
    ['no exitCode', (r) => delete r.exitCode],
    ['an exit code the command never gives', (r) => (r.exitCode = 1)],
    ['a number as text', (r) => (r.exitCode = String(r.exitCode))],
  ]
  const cases: Array<[SchemaName, () => Promise<unknown>]> = [
    ['check-cert', checkCert],
    ['status', status],
  ]
  for (const [name, make] of cases) {
    it(`${name}: the unchanged result matches`, async () => {
      assert.deepEqual(schemaProblems(name, await make()), [])
    })
    for (const [what, change] of changes) {
      it(`${name}: ${what}`, async () => {
        const result = structuredClone(await make()) as Json
        change(result)
        assert.notDeepEqual(schemaProblems(name, result), [])
      })
    }
  }

  it('check-cert: a state or status outside its enum, a missing required field, an extra field deep inside', async () => {
    const endpoint = (r: Json) => (r.endpoints as Json[])[0] as Json
    const deep: Array<[string, (r: Json) => void]> = [
      ['status', (r) => (endpoint(r).status = 'broken')],
      ['error kind', (r) => ((endpoint(r).error as Json).kind = 'ECONNREFUSED')],
      ['missing port', (r) => delete endpoint(r).port],
      ['extra in error', (r) => ((endpoint(r).error as Json).code = 'ECONNREFUSED')],
      [
        'check state',
        (r) =>
          (endpoint(r).checks = {
            vipSan: {status: 'fail', state: 'EXPIRED', message: ''},
            validity: {status: 'pass', state: 'valid', message: ''},
            trust: {status: 'skip', state: 'no-ca', message: ''},
          }),
      ],
    ]
    const result = await checkCert()
    for (const [what, change] of deep) {
      const changed = structuredClone(result) as unknown as Json
      change(changed)
      assert.notDeepEqual(schemaProblems('check-cert', changed), [], what)
    }
  })

  it('status: a verdict outside its enum', async () => {
    const result = structuredClone(await status()) as unknown as Json
    result.verdict = 'ok'
    assert.deepEqual(schemaProblems('status', result), ['.verdict: should be equal to one of the allowed values'])
  })
})
