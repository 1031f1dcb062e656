// The package as npm publishes it (`npm pack` of this checkout, built by `npm test`), unpacked where no
// node_modules can be found: the bundle in dist/ must carry every library it loads. Cluster commands run
// against the real control plane, so the bundled @kubernetes/client-node is exercised too.
import assert from 'node:assert/strict'
import {mkdtemp, readdir, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {fileURLToPath} from 'node:url'

import {execa} from 'execa'

import type {CheckCertResult} from '../../src/lib/cert/check-cert.js'
import type {StatusResult} from '../../src/lib/status/status.js'
import {assertMatchesSchema, schemaFile} from '../helpers/json-schema.js'
import {jsonOutput} from '../helpers/karp.js'
import {clusterOrSkip} from './cluster-env.js'

const cluster = clusterOrSkip()
const ROOT = fileURLToPath(new URL('../..', import.meta.url))

describe('the packed CLI, without node_modules', () => {
  let work = ''
  let run: (args: string[]) => Promise<{exitCode: number; stdout: string; stderr: string; json: unknown}>

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'karp-package-'))
    // --ignore-scripts: pack the dist/ this run built instead of building again (prepack).
    const packed = await execa('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], {cwd: ROOT})
    const [pack] = JSON.parse(packed.stdout) as Array<{filename: string}>
    assert.ok(pack, `npm pack printed no package: ${packed.stdout}`)
    await execa('tar', ['-xzf', join(work, pack.filename), '-C', work])
    const bin = join(work, 'package', 'bin', 'run.js')
    run = async (args) => {
      // HOME and the compile cache in the sandbox: nothing outside it can lend the package a module.
      const result = await execa(process.execPath, [bin, ...args], {
        reject: false,
        stdin: 'ignore',
        cwd: work,
        extendEnv: false,
        env: {PATH: process.env.PATH, HOME: work, NO_COLOR: '1', NODE_COMPILE_CACHE: join(work, 'compile-cache')},
        timeout: 60_000,
      })
      return {exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr, json: jsonOutput(args, result.stdout)}
    }
  })

  after(async () => {
    if (work) await rm(work, {recursive: true, force: true})
  })

  const packedSchemas = () => join(work, 'package', 'schemas')

  it('holds the bundle, the templates, the manifest and the --json schemas, and no node_modules', async () => {
    const files = await readdir(join(work, 'package'), {recursive: true})
    const schemas = ['bootstrap', 'check-cert', 'install', 'kubeconfig rewrite', 'render', 'status', 'uninstall', 'error'].map(
      (name) => `schemas/${schemaFile(name)}`,
    )
    for (const file of [
      'bin/run.js',
      'dist/oclif.js',
      'dist/commands/install.js',
      'templates/daemonset.yaml',
      'oclif.manifest.json',
      'package.json',
      ...schemas,
    ]) {
      assert.ok(files.includes(file), `${file} is in the package (files: ${files.filter((f) => !f.includes('chunks/')).join(', ')})`)
    }
    assert.ok(!files.some((f) => f.startsWith('node_modules')), 'no node_modules in the package')
  })

  it('renders the manifests and prints its help', async () => {
    const render = await run(['render', '--vip', '10.77.0.10', '--password', 'packed', '--json'])
    assert.equal(render.exitCode, 0, render.stderr)
    assertMatchesSchema('render', render.json, packedSchemas())
    const kinds = (render.json as {items: Array<{kind: string}>}).items.map((o) => o.kind)
    assert.ok(kinds.includes('DaemonSet') && kinds.includes('Secret'), `rendered kinds: ${kinds.join(', ')}`)
    const help = await run(['status', '--help'])
    assert.equal(help.exitCode, 0, help.stderr)
    assert.match(help.stdout, /--kubeconfig/)
  })

  it('talks to the API server: status of a cluster without karp', {skip: cluster.skip}, async () => {
    const status = await run(['status', '--kubeconfig', cluster.kubeconfig, '--no-probe', '--json'])
    const result = status.json as StatusResult
    assert.ok(result, `status printed JSON (exit ${status.exitCode}): ${status.stdout}\n${status.stderr}`)
    assertMatchesSchema('status', result, packedSchemas())
    assert.equal(result.verdict, 'not-installed', JSON.stringify(result))
    assert.equal(status.exitCode, 4, status.stderr)
  })

  it('reads certificates with the bundled node-forge: check-cert of the API server', {skip: cluster.skip}, async () => {
    // --server: only that endpoint is dialled; the VIP is only looked for among the certificate's SANs.
    const server = new URL(cluster.server)
    const check = await run(['check-cert', '--server', server.host, '--vip', '192.168.1.250', '--ca-file', cluster.caFile, '--json'])
    assert.equal(check.exitCode, 4, check.stderr)
    assertMatchesSchema('check-cert', check.json, packedSchemas())
    const [endpoint] = (check.json as CheckCertResult).endpoints
    assert.equal(endpoint?.certificate?.subject, 'CN=kube-apiserver', JSON.stringify(endpoint))
    assert.ok(endpoint?.certificate?.ipSans.includes('127.0.0.1'), JSON.stringify(endpoint?.certificate))
    assert.equal(endpoint?.checks?.trust.status, 'pass')
  })
})
