// The certificate check and the verify step of `karp kubeconfig rewrite`, against real TLS servers on
// loopback. The library takes the VIP as given (the command validates it: a loopback VIP is refused there),
// so here 127.0.0.1 can stand for the VIP, or a TEST-NET address is judged while the handshake goes to a
// loopback server (the probe seam): no packet leaves this machine.
import assert from 'node:assert/strict'
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {ExitCode} from '../../src/lib/errors.js'
import {rejectsWithKarpError as rejects} from '../helpers/karp-error.js'
import {type RewriteOptions, rewriteKubeconfig, type RewriteSeams} from '../../src/lib/kubeconfig/rewrite.js'
import {type ApiServer, changedLines, loopbackKubeconfig, startApiServer, strayFiles, tempDir} from '../fixtures/kubeconfig/harness.js'
import {makeCa, makeCertificate, type RunningServer, startTlsServer, type TestCertificate, testKey, unusedPort} from '../helpers/certs.js'
import {assertMatchesSchema} from '../helpers/json-schema.js'

const TEST_NET_VIP = '192.0.2.10'

let ca: TestCertificate
let otherCa: TestCertificate
let withVip: TestCertificate
let withoutVip: TestCertificate

before(() => {
  ca = makeCa('karp-kubeconfig-test-ca')
  otherCa = makeCa('some-other-ca')
  const key = testKey('kubeconfig-apiserver', 'ec')
  withVip = makeCertificate({commonName: 'kube-apiserver', key, issuer: ca, ipSans: ['127.0.0.1', TEST_NET_VIP], dnsSans: ['kubernetes']})
  withoutVip = makeCertificate({commonName: 'kube-apiserver', key, issuer: ca, ipSans: ['127.0.0.1', '10.0.0.11'], dnsSans: ['kubernetes', TEST_NET_VIP]})
})

function kubeconfigFile(text: string): {dir: string; file: string} {
  const dir = tempDir()
  const file = join(dir, 'config')
  writeFileSync(file, text, {mode: 0o600})
  return {dir, file}
}

describe('rewrite: certificate check before writing (real TLS server on loopback)', () => {
  const servers: RunningServer[] = []
  after(async () => Promise.all(servers.map((s) => s.close())))
  const serve = async (chain: TestCertificate[]) => {
    const server = await startTlsServer(chain)
    servers.push(server)
    return server
  }

  function run(kubeconfig: string, server: RunningServer, options: Partial<RewriteOptions> = {}, seams: RewriteSeams = {}) {
    return rewriteKubeconfig(
      {kubeconfig, vip: TEST_NET_VIP, port: 6443, verify: false, env: {}, timeoutMs: 5000, ...options},
      {probe: {host: server.host, port: server.port}, distribution: async () => 'k3s', ...seams},
    )
  }

  it('refuses (exit 4) when the VIP is not an IP SAN, with the distribution\'s advice; nothing written', async () => {
    const server = await serve([withoutVip, ca])
    const {dir, file} = kubeconfigFile(loopbackKubeconfig({server: 'https://10.0.0.11:6443', caPem: ca.certPem}))
    const original = readFileSync(file, 'utf8')
    const error = await rejects(
      run(file, server),
      ExitCode.checkFailed,
      /^the certificate served at 192\.0\.2\.10:6443 \(probed at 127\.0\.0\.1:\d+\) would be refused by kubectl for https:\/\/192\.0\.2\.10:6443: VIP 192\.0\.2\.10 is only a DNS SAN; .*\(IP SANs: 127\.0\.0\.1, 10\.0\.0\.11\); nothing was changed$/,
    )
    assert.match(error.hint ?? '', /^add 192\.0\.2\.10 to tls-san in \/etc\/rancher\/k3s\/config\.yaml on every server node, then restart k3s; then run karp check-cert \(--force writes the kubeconfig anyway\)$/)
    assert.equal(readFileSync(file, 'utf8'), original)
    assert.deepEqual(strayFiles(dir, ['config']), [])
  })

  it('goes ahead when the VIP is an IP SAN and the chain verifies against the kubeconfig\'s CA', async () => {
    const server = await serve([withVip, ca])
    const {file} = kubeconfigFile(loopbackKubeconfig({server: 'https://10.0.0.11:6443', caPem: ca.certPem}))
    const result = await run(file, server)
    assertMatchesSchema('kubeconfig rewrite', result)
    assert.equal(result.changed, true)
    assert.deepEqual(result.warnings, [])
    assert.match(readFileSync(file, 'utf8'), /server: https:\/\/192\.0\.2\.10:6443/)
  })

  it('reads the CA from a certificate-authority file relative to the kubeconfig, as kubectl does', async () => {
    const server = await serve([withVip])
    const dir = tempDir()
    mkdirSync(join(dir, 'kube'))
    mkdirSync(join(dir, 'pki'))
    writeFileSync(join(dir, 'pki', 'ca.crt'), ca.certPem)
    const file = join(dir, 'kube', 'config')
    writeFileSync(file, loopbackKubeconfig({server: 'https://10.0.0.11:6443', extra: '\n    certificate-authority: ../pki/ca.crt'}))
    assert.equal((await run(file, server)).changed, true)
  })

  it('refuses a chain that does not lead to the kubeconfig\'s CA', async () => {
    const server = await serve([withVip, ca])
    const {file} = kubeconfigFile(loopbackKubeconfig({server: 'https://10.0.0.11:6443', caPem: otherCa.certPem}))
    const error = await rejects(run(file, server), ExitCode.checkFailed, /would be refused by kubectl .*: not trusted: /)
    assert.match(error.hint ?? '', /karp check-cert/)
  })

  it('only warns when the cluster verifies against tls-server-name or skips verification', async () => {
    const server = await serve([withoutVip, ca])
    const named = kubeconfigFile(loopbackKubeconfig({server: 'https://10.0.0.11:6443', caPem: ca.certPem, extra: '\n    tls-server-name: kubernetes'}))
    const result = await run(named.file, server)
    assertMatchesSchema('kubeconfig rewrite', result)
    assert.match(result.warnings.join('\n'), /is not an IP SAN|only a DNS SAN/)
    assert.match(result.warnings.join('\n'), /accepted: cluster "test" verifies the certificate against tls-server-name kubernetes/)
    const insecure = kubeconfigFile(loopbackKubeconfig({server: 'https://10.0.0.11:6443', caPem: otherCa.certPem, extra: '\n    insecure-skip-tls-verify: true'}))
    const second = await run(insecure.file, server)
    assert.equal(second.changed, true)
    assert.match(second.warnings.join('\n'), /accepted: cluster "test" sets insecure-skip-tls-verify/)
  })

  it('exits 3 when no certificate can be read at the VIP', async () => {
    const port = await unusedPort()
    const {file} = kubeconfigFile(loopbackKubeconfig({server: 'https://10.0.0.11:6443', caPem: ca.certPem}))
    await rejects(
      rewriteKubeconfig({kubeconfig: file, vip: TEST_NET_VIP, verify: false, env: {}}, {probe: {host: '127.0.0.1', port}}),
      ExitCode.unreachable,
      /^cannot read the certificate served at 192\.0\.2\.10:6443 \(probed at 127\.0\.0\.1:\d+\): .*; nothing was changed$/,
    )
  })

  it('--force does not connect at all', async () => {
    const {file} = kubeconfigFile(loopbackKubeconfig({server: 'https://10.0.0.11:6443', caPem: ca.certPem}))
    const result = await rewriteKubeconfig(
      {kubeconfig: file, vip: TEST_NET_VIP, force: true, verify: false, env: {}},
      {
        checkCertificate: () => {
          throw new Error('must not be called')
        },
      },
    )
    assert.equal(result.changed, true)
  })
})

describe('rewrite: verify through the new URL, restore when it does not answer', () => {
  const apis: ApiServer[] = []
  after(async () => Promise.all(apis.map((s) => s.close())))
  const api = async (status?: number) => {
    const server = await startApiServer({certPem: withVip.certPem + ca.certPem, keyPem: withVip.key.privatePem, status})
    apis.push(server)
    return server
  }

  // The file points at localhost:1 (never dialled); the "VIP" is 127.0.0.1 on the test server's port.
  const kubeconfig = () => kubeconfigFile(loopbackKubeconfig({server: 'https://localhost:1', caPem: ca.certPem, token: 'verify-token'}))

  it('with nothing injected: checks the certificate, writes, and GET /version answers with the context\'s token', async () => {
    const server = await api()
    const {dir, file} = kubeconfig()
    const original = readFileSync(file, 'utf8')
    const result = await rewriteKubeconfig({kubeconfig: file, vip: '127.0.0.1', port: server.port, env: {}, timeoutMs: 5000})
    assertMatchesSchema('kubeconfig rewrite', result)
    assert.equal(result.verified, true)
    assert.equal(result.newServer, `https://127.0.0.1:${server.port}`)
    assert.deepEqual(server.authorizations, ['Bearer verify-token'])
    assert.deepEqual(changedLines(original, readFileSync(file, 'utf8')).removed, ['    server: https://localhost:1'])
    assert.deepEqual(strayFiles(dir, ['config', 'config.karp-backup-' + (result.backup ?? '').split('.karp-backup-')[1]]), [])
  })

  it('restores the original content atomically and exits 3 when the API server refuses to answer', async () => {
    const server = await api(500)
    const {dir, file} = kubeconfig()
    const original = readFileSync(file)
    const error = await rejects(
      rewriteKubeconfig({kubeconfig: file, vip: '127.0.0.1', port: server.port, force: true, env: {}, timeoutMs: 5000}),
      ExitCode.unreachable,
      /^the API server did not answer through https:\/\/127\.0\.0\.1:\d+ \(GET https:\/\/127\.0\.0\.1:\d+\/version answered HTTP 500: the server is on fire\); .*config was restored to its original content$/,
    )
    assert.match(error.hint ?? '', /--no-verify keeps the change/)
    assert.deepEqual(readFileSync(file), original)
    assert.deepEqual(strayFiles(dir, ['config']), [], 'backup removed with the file restored')
  })

  it('restores when nothing listens on the new URL', async () => {
    const port = await unusedPort()
    const {file} = kubeconfig()
    const original = readFileSync(file)
    await rejects(
      rewriteKubeconfig({kubeconfig: file, vip: '127.0.0.1', port, force: true, env: {}, timeoutMs: 3000}),
      ExitCode.unreachable,
      /did not answer through https:\/\/127\.0\.0\.1:\d+ \(GET .*\/version: ECONNREFUSED/,
    )
    assert.deepEqual(readFileSync(file), original)
  })

  it('refuses to restore over someone else\'s later write, and says where the original is', async () => {
    const {file} = kubeconfig()
    const theirs = 'apiVersion: v1\n# someone else wrote this after karp\n'
    const error = await rejects(
      rewriteKubeconfig(
        {kubeconfig: file, vip: '127.0.0.1', port: 6443, force: true, env: {}},
        {
          apiAnswers: async () => {
            writeFileSync(file, theirs)
            return {ok: false, message: 'no answer'}
          },
        },
      ),
      ExitCode.unreachable,
      /did not answer through .* \(no answer\), and karp could not restore .*config: kubeconfig .* changed on disk after karp read it/,
    )
    assert.equal(readFileSync(file, 'utf8'), theirs)
    const backup = /the original is in (\S+):/.exec(error.hint ?? '')?.[1]
    assert.ok(backup)
    assert.match(readFileSync(backup, 'utf8'), /server: https:\/\/localhost:1/)
  })
})
