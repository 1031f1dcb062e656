import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'

import type {CheckCertResult} from '../../src/commands/check-cert.js'
import {
  makeCa,
  makeCertificate,
  type RunningServer,
  startClosingServer,
  startSilentServer,
  startTlsServer,
  testKey,
  unusedPort,
  writeTempFile,
} from '../helpers/certs.js'
import {assertMatchesSchema} from '../helpers/json-schema.js'
import {karp} from '../helpers/karp.js'

// The built binary (npm run build first) against real TLS servers on loopback; the VIP is data only.
const VIP = '192.168.1.250'
const ca = makeCa('cli-ca')
const caFile = writeTempFile('ca.crt', ca.certPem)
const cert = (ipSans: string[]) =>
  makeCertificate({commonName: 'kube-apiserver', key: testKey('apiserver'), issuer: ca, ipSans, dnsSans: ['kubernetes']})

describe('karp check-cert --server (binary)', () => {
  let withVip: RunningServer
  let withoutVip: RunningServer
  let overIpv6: RunningServer
  let closing: RunningServer
  let silent: RunningServer
  before(async () => {
    withVip = await startTlsServer([cert(['10.0.0.11', VIP])])
    withoutVip = await startTlsServer([cert(['10.0.0.12'])])
    overIpv6 = await startTlsServer([cert(['fd00::13', VIP])], '::1')
    closing = await startClosingServer()
    silent = await startSilentServer()
  })
  after(async () => {
    await Promise.all([withVip, withoutVip, overIpv6, closing, silent].map((s) => s.close()))
  })

  it('exits 0 with a typed JSON result when every certificate carries the VIP and verifies', async () => {
    const run = await karp([
      'check-cert',
      '--server',
      withVip.address,
      '--server',
      overIpv6.address,
      '--vip',
      VIP,
      '--ca-file',
      caFile,
      '--json',
    ])
    assert.equal(run.exitCode, 0, run.stderr)
    assertMatchesSchema('check-cert', run.json)
    const result = run.json as CheckCertResult
    assert.equal(result.vip, VIP)
    assert.equal(result.vipSource, 'flag')
    assert.deepEqual(result.ca, {source: 'file', description: caFile})
    assert.deepEqual(result.distribution, {id: 'unknown', name: 'an unrecognised distribution', source: 'none', evidence: ''})
    assert.deepEqual(result.summary, {ok: 2, warning: 0, failed: 0, unreachable: 0})
    assert.deepEqual(
      result.endpoints.map((e) => [e.role, e.endpoint, e.status, e.checks?.vipSan.status, e.checks?.trust.status]),
      [
        ['server', withVip.address, 'ok', 'pass', 'pass'],
        ['server', `[::1]:${overIpv6.port}`, 'ok', 'pass', 'pass'],
      ],
    )
    assert.deepEqual(result.endpoints[1]?.certificate?.ipSans, ['fd00::13', VIP])
    assert.equal(result.advice, undefined)
    assert.deepEqual(result.warnings, [])
    assert.equal(result.exitCode, 0)
  })

  it('exits 4 when a certificate lacks the VIP, with the table, the finding and the fix for the given distribution', async () => {
    const run = await karp([
      'check-cert',
      '--server',
      withVip.address,
      '--server',
      withoutVip.address,
      '--vip',
      VIP,
      '--ca-file',
      caFile,
      '--distribution',
      'kubeadm',
    ])
    assert.equal(run.exitCode, 4, run.stderr)
    const lines = run.stdout.split('\n')
    assert.match(lines[0] ?? '', /^ENDPOINT +TARGET +VIP SAN +EXPIRES +CA +STATUS$/)
    assert.match(lines[1] ?? '', new RegExp(`^${withVip.address} +server +yes +\\d{4}-\\d\\d-\\d\\d +trusted +ok$`))
    assert.match(lines[2] ?? '', new RegExp(`^${withoutVip.address} +server +NO +\\d{4}-\\d\\d-\\d\\d +trusted +FAILED$`))
    assert.match(
      run.stdout,
      new RegExp(`^${withoutVip.address} \\(server\\): VIP 192\\.168\\.1\\.250 is not an IP SAN \\(IP SANs: 10\\.0\\.0\\.12\\)$`, 'm'),
    )
    assert.match(run.stdout, /^To add the VIP on kubeadm: add 192\.168\.1\.250 to apiServer\.certSANs/m)
    assert.match(run.stdout, /^ {2}4\. on each control-plane node in turn/m)
    assert.match(run.stdout, /^ {7}sudo kubeadm init phase certs apiserver --config kubeadm\.yaml$/m)
    assert.match(run.stdout, /^VIP 192\.168\.1\.250: 1 of 2 endpoints fine, 1 failed; CA: /m)
  })

  it('reports unreachable endpoints without failing the others: exit 4, or 3 when none answers', async () => {
    const nothing = `127.0.0.1:${await unusedPort()}`
    const some = await karp([
      'check-cert',
      '--server',
      withVip.address,
      '--server',
      closing.address,
      '--server',
      nothing,
      '--vip',
      VIP,
      '--json',
    ])
    assert.equal(some.exitCode, 4, some.stderr)
    assertMatchesSchema('check-cert', some.json)
    const result = some.json as CheckCertResult
    assert.equal(result.exitCode, some.exitCode)
    assert.deepEqual(
      result.endpoints.map((e) => [e.endpoint, e.status, e.error?.kind]),
      [
        [withVip.address, 'ok', undefined],
        [closing.address, 'unreachable', 'closed'],
        [nothing, 'unreachable', 'refused'],
      ],
    )
    assert.equal(result.endpoints[0]?.checks?.trust.status, 'skip')
    assert.deepEqual(result.warnings, ['no --ca-file given: the chains were not verified against a CA'])

    const none = await karp(['check-cert', '--server', closing.address, '--server', nothing, '--vip', VIP])
    assert.equal(none.exitCode, 3)
    assert.match(none.stderr, /no --ca-file given: the chains were not verified against a CA/)
    assert.match(none.stdout, new RegExp(`^${nothing} \\(server\\): unreachable: connection refused: nothing listens on that port$`, 'm'))
    assert.match(none.stdout, /^VIP 192\.168\.1\.250: 0 of 2 endpoints fine, 2 unreachable; CA: no --ca-file given$/m)
  })

  it('bounds a server that never answers by --timeout', async () => {
    const started = performance.now()
    const run = await karp(['check-cert', '--server', silent.address, '--vip', VIP, '--timeout', '1s', '--json'])
    const elapsed = performance.now() - started
    assert.equal(run.exitCode, 3)
    assertMatchesSchema('check-cert', run.json)
    assert.equal((run.json as CheckCertResult).exitCode, 3)
    assert.deepEqual((run.json as CheckCertResult).endpoints[0]?.error, {kind: 'timeout', message: 'no TLS handshake within 1s'})
    // Well under the 5 s default: the flag, not the default, ended the wait.
    assert.ok(elapsed < 4000, `took ${Math.round(elapsed)} ms`)
  })

  const bad: Array<[string[], RegExp]> = [
    [
      ['--server', '127.0.0.1:6443'],
      /^error: --server needs --vip: without cluster access there is no karp install to read the VIP from$/m,
    ],
    [
      ['--server', '127.0.0.1:99999', '--vip', VIP],
      /^error: invalid --server "127\.0\.0\.1:99999": port must be a whole number from 1 to 65535; /m,
    ],
    [
      ['--server', 'fd00::1:6443:x', '--vip', VIP],
      /^error: invalid --server "fd00::1:6443:x": expected host\[:port\] with an IPv6 address in brackets/m,
    ],
    [['--server', '127.0.0.1', '--vip', '192.168.1.300'], /^error: invalid --vip "192\.168\.1\.300": expected one IPv4 unicast address/m],
    [
      ['--server', '127.0.0.1', '--vip', VIP, '--timeout', 'soon'],
      /^error: invalid --timeout "soon": expected a duration from 1s to 24h such as 90s/m,
    ],
    [['--server', '127.0.0.1', '--vip', VIP, '--port', '0'], /^error: invalid --port "0": expected a whole number from 1 to 65535$/m],
    [
      ['--server', '127.0.0.1', '--vip', VIP, '--ca-file', '/nonexistent/ca.crt'],
      /^error: invalid --ca-file "\/nonexistent\/ca\.crt": cannot read it \(ENOENT\)$/m,
    ],
  ]
  for (const [args, message] of bad) {
    it(`exits 2 with one clear line for ${JSON.stringify(args.slice(-2))}`, async () => {
      const run = await karp(['check-cert', ...args])
      assert.equal(run.exitCode, 2, run.stderr)
      assert.match(run.stderr, message)
      assert.equal(run.stdout, '')
    })
  }

  it('refuses a --ca-file without a certificate in it', async () => {
    const notPem = writeTempFile('ca.crt', 'not a certificate\n')
    const run = await karp(['check-cert', '--server', withVip.address, '--vip', VIP, '--ca-file', notPem, '--json'])
    assert.equal(run.exitCode, 2)
    assertMatchesSchema('error', run.json)
    assert.deepEqual(run.json, {
      error: {message: `invalid --ca-file ${JSON.stringify(notPem)}: no PEM certificate in it; expected PEM CA certificates`, exitCode: 2},
    })
  })

  it('refuses cluster flags beside --server: it asks no cluster', async () => {
    const run = await karp(['check-cert', '--server', withVip.address, '--vip', VIP, '--context', 'prod'])
    assert.equal(run.exitCode, 2)
    assert.match(run.stderr, /--context/)
  })
})
