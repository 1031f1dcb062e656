// `karp kubeconfig rewrite` against the real control plane. Its API server listens on 127.0.0.1, which the
// command refuses as a VIP (loopback); the library takes the VIP as given, so these tests call it directly
// with 127.0.0.1 standing for the VIP: the certificate check reads the real serving certificate, and the
// verify step asks the real API server for /version with the kubeconfig's own credentials. A VIP reached
// through network namespaces is the end-to-end suite's.
import assert from 'node:assert/strict'
import {copyFileSync, readFileSync, writeFileSync} from 'node:fs'
import {createServer} from 'node:net'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {ExitCode, KarpError} from '../../src/lib/errors.js'
import {rewriteKubeconfig} from '../../src/lib/kubeconfig/rewrite.js'
import {changedLines, loopbackKubeconfig, strayFiles, tempDir} from '../fixtures/kubeconfig/harness.js'
import {clusterOrSkip} from './cluster-env.js'

const cluster = clusterOrSkip()

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen({host: '127.0.0.1', port: 0}, resolve))
  const {port} = server.address() as {port: number}
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** A copy of a kubeconfig of the test cluster whose server says localhost: the same API server, another URL. */
function copyViaLocalhost(source: string): {dir: string; file: string; original: string; port: number} {
  const url = new URL(cluster.server)
  const dir = tempDir()
  const file = join(dir, 'config')
  copyFileSync(source, file)
  const original = readFileSync(file, 'utf8').replace(cluster.server, `https://localhost:${url.port}`)
  writeFileSync(file, original)
  return {dir, file, original, port: Number(url.port)}
}

async function rejection(promise: Promise<unknown>): Promise<KarpError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  assert.ok(error instanceof KarpError, String(error))
  return error
}

describe('kubeconfig rewrite against the real API server', {skip: cluster.skip}, () => {
  it('checks the real serving certificate, writes, and verifies GET /version with the admin credentials', async () => {
    const {dir, file, original, port} = copyViaLocalhost(cluster.kubeconfig)
    const result = await rewriteKubeconfig({kubeconfig: file, vip: '127.0.0.1', port, env: {}, timeoutMs: 10_000})
    assert.deepEqual([result.changed, result.verified, result.newServer], [true, true, cluster.server.replace(/\/$/, '')])
    const {removed, added} = changedLines(original, readFileSync(file, 'utf8'))
    assert.equal(removed.length, 1)
    assert.match(removed[0] ?? '', new RegExp(`^ +server: https://localhost:${port}$`))
    assert.deepEqual(added, [removed[0]?.replace('localhost', '127.0.0.1')])
    assert.deepEqual(strayFiles(dir, ['config', result.backup?.slice(dir.length + 1) ?? '']), [])
    // A second run finds the VIP already in place.
    const again = await rewriteKubeconfig({kubeconfig: file, vip: '127.0.0.1', port, env: {}})
    assert.equal(again.changed, false)
  })

  it('restores the file and exits 3 when nothing answers on the new URL', async () => {
    const {dir, file, original} = copyViaLocalhost(cluster.kubeconfig)
    const port = await freePort()
    const error = await rejection(rewriteKubeconfig({kubeconfig: file, vip: '127.0.0.1', port, force: true, env: {}, timeoutMs: 5000}))
    assert.equal(error.exitCode, ExitCode.unreachable)
    assert.match(
      error.message,
      /^the API server did not answer through https:\/\/127\.0\.0\.1:\d+ \(GET .*\/version: ECONNREFUSED.*\); .* was restored to its original content$/,
    )
    assert.equal(readFileSync(file, 'utf8'), original)
    assert.deepEqual(strayFiles(dir, ['config']), [])
  })

  it("verifies with the context's own credentials: refused credentials restore the file (exit 3)", async () => {
    // Same cluster and CA, a token the API server does not know: /version is public, but a bad token is refused.
    const port = Number(new URL(cluster.server).port)
    const file = join(tempDir(), 'config')
    const bogus = loopbackKubeconfig({
      server: `https://localhost:${port}`,
      caPem: readFileSync(cluster.caFile, 'utf8'),
      token: 'not-a-valid-token',
    })
    writeFileSync(file, bogus)
    const error = await rejection(rewriteKubeconfig({kubeconfig: file, vip: '127.0.0.1', port, env: {}, timeoutMs: 10_000}))
    assert.equal(error.exitCode, ExitCode.unreachable)
    assert.match(error.message, /answered HTTP 401/)
    assert.equal(readFileSync(file, 'utf8'), bogus)
  })

  it('the unprivileged user may read /version: its kubeconfig verifies too', async () => {
    const {file, port} = copyViaLocalhost(cluster.userKubeconfig)
    const result = await rewriteKubeconfig({kubeconfig: file, vip: '127.0.0.1', port, env: {}, timeoutMs: 10_000})
    assert.equal(result.verified, true)
  })
})
