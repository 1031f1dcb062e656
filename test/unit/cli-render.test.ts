import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {parseAllDocuments} from 'yaml'

import {assertMatchesSchema} from '../helpers/json-schema.js'
import {karp} from '../helpers/karp.js'
import {INSTALL_KINDS} from '../helpers/install-kinds.js'

// The real binary, end to end, for the command that needs no cluster.
describe('karp render (binary)', () => {
  it('prints the install as YAML documents, the same each time for the same flags', async () => {
    const args = ['render', '--vip', '192.168.1.250', '--password', 's3cret', '--vhid', '42']
    const first = await karp(args)
    const second = await karp(args)
    assert.equal(first.exitCode, 0, first.stderr)
    assert.equal(first.stdout, second.stdout)
    const kinds = parseAllDocuments(first.stdout).map((d) => (d.toJS() as {kind: string}).kind)
    assert.deepEqual(kinds, INSTALL_KINDS)
  })

  it('prints a List for -o json, and the same List with its exit code for --json', async () => {
    const json = await karp(['render', '--vip', '192.168.1.250', '--password', 'x', '--json'])
    const output = await karp(['render', '--vip', '192.168.1.250', '--password', 'x', '-o', 'json'])
    assert.equal(json.exitCode, 0)
    assertMatchesSchema('render', json.json)
    const {exitCode, ...list} = json.json as {exitCode: number}
    assert.equal(exitCode, 0)
    assert.deepEqual(JSON.parse(output.stdout), list)
    assert.equal((json.json as {kind: string}).kind, 'List')
    assert.equal((json.json as {items: unknown[]}).items.length, 10)
  })

  it('warns on stderr, not stdout, when it generates the password', async () => {
    const run = await karp(['render', '--vip', '192.168.1.250'])
    assert.equal(run.exitCode, 0)
    assert.match(run.stderr, /random CARP password was generated/)
    assert.equal(parseAllDocuments(run.stdout).length, 10)
  })

  const bad: Array<[string[], RegExp]> = [
    [['--vip', '10.0.0.300'], /^error: invalid --vip "10\.0\.0\.300": expected one IPv4 unicast address/m],
    [['--vip', '10.0.0.1/24'], /^error: invalid --vip "10\.0\.0\.1\/24"/m],
    [['--vip', '::1'], /^error: invalid --vip "::1"/m],
    [['--vip', '0.0.0.0'], /^error: invalid --vip "0\.0\.0\.0": unspecified addresses cannot be a VIP/m],
    [['--vip', '10.0.0.5', '--vhid', '0'], /^error: invalid --vhid "0": expected a whole number from 1 to 255$/m],
    [['--vip', '10.0.0.5', '--vhid', '256'], /^error: invalid --vhid "256"/m],
    [['--vip', '10.0.0.5', '--vhid', 'ten'], /^error: invalid --vhid "ten"/m],
    [
      ['--vip', '10.0.0.5', '--password', 'x'.repeat(20)],
      /^error: invalid --password \(value not shown\): 20 bytes is too long; ucarp accepts at most 19$/m,
    ],
    [
      ['--vip', '10.0.0.5', '--password', 'a\nb'],
      /^error: invalid --password \(value not shown\): character 2 is not printable ASCII; expected 1 to 19 printable ASCII/m,
    ],
    [['--vip', '10.0.0.5', '--node-selector', 'karp'], /^error: invalid --node-selector "karp": expected key=value/m],
    [['--vip', '10.0.0.5', '--namespace', 'Karp_System'], /^error: invalid --namespace "Karp_System": expected a DNS label/m],
    [[], /^error: missing required flag --vip$/m],
  ]
  for (const [args, message] of bad) {
    it(`exits 2 with one clear line for ${JSON.stringify(args.slice(-2))}`, async () => {
      const run = await karp(['render', ...args])
      assert.equal(run.exitCode, 2)
      assert.match(run.stderr, message)
      assert.equal(run.stdout, '')
    })
  }

  it('puts the error in the JSON result under --json', async () => {
    const run = await karp(['render', '--vip', 'nope', '--json'])
    assert.equal(run.exitCode, 2)
    assertMatchesSchema('error', run.json)
    assert.deepEqual(run.json, {
      error: {
        message: 'invalid --vip "nope": expected one IPv4 unicast address such as 192.168.1.250 (no prefix length, not IPv6)',
        exitCode: 2,
      },
    })
  })
})

describe("karp render: the namespace is karp's only when karp creates it", () => {
  const kindsOf = (stdout: string) => parseAllDocuments(stdout).map((d) => d.toJS() as {kind: string; metadata: {namespace?: string}})
  const base = ['render', '--vip', '192.168.1.250', '--password', 's3cret']

  it("prints the Namespace for karp-system, karp's own, but not for a namespace that may exist", async () => {
    const own = await karp(base)
    assert.equal(own.exitCode, 0, own.stderr)
    assert.equal(kindsOf(own.stdout)[0]?.kind, 'Namespace')
    const other = await karp([...base, '-n', 'infra'])
    assert.equal(other.exitCode, 0, other.stderr)
    assert.ok(!kindsOf(other.stdout).some((o) => o.kind === 'Namespace'), other.stdout)
    assert.ok(kindsOf(other.stdout).some((o) => o.kind === 'DaemonSet' && o.metadata.namespace === 'infra'))
    const asked = await karp([...base, '-n', 'infra', '--create-namespace'])
    assert.equal(kindsOf(asked.stdout)[0]?.kind, 'Namespace')
    const declined = await karp([...base, '--no-create-namespace'])
    assert.ok(!kindsOf(declined.stdout).some((o) => o.kind === 'Namespace'))
  })

  for (const ns of ['kube-system', 'kube-public', 'kube-node-lease', 'default']) {
    it(`refuses system namespace ${ns} unless --allow-system-namespace, and never creates it`, async () => {
      const refused = await karp([...base, '-n', ns])
      assert.equal(refused.exitCode, 2)
      assert.equal(refused.stdout, '')
      assert.match(
        refused.stderr,
        new RegExp(
          `^error: invalid --namespace "${ns}": a system namespace, .*; pass --allow-system-namespace to install there anyway$`,
          'm',
        ),
      )
      const allowed = await karp([...base, '-n', ns, '--allow-system-namespace'])
      assert.equal(allowed.exitCode, 0, allowed.stderr)
      assert.ok(!kindsOf(allowed.stdout).some((o) => o.kind === 'Namespace'))
      const create = await karp([...base, '-n', ns, '--allow-system-namespace', '--create-namespace'])
      assert.equal(create.exitCode, 2)
      assert.match(
        create.stderr,
        new RegExp(`^error: invalid --create-namespace with --namespace "${ns}": a system namespace exists in every cluster`, 'm'),
      )
    })
  }
})
