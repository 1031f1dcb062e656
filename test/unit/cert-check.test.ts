import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'

import {planServerCheck, runCertCheck} from '../../src/lib/cert/check-cert.js'
import {formatCertReport} from '../../src/lib/cert/display.js'
import {checkEndpoint, type CheckEndpointOptions, type EndpointReport} from '../../src/lib/cert/verdict.js'
import {verifyChain} from '../../src/lib/cert/verify-chain.js'
import {
  daysFromNow,
  makeCa,
  makeCertificate,
  type RunningServer,
  startClosingServer,
  startPlainHttpServer,
  startSilentServer,
  startTlsServer,
  type TestCertificate,
  testKey,
  unusedPort,
} from '../helpers/certs.js'
import {assertMatchesSchema} from '../helpers/json-schema.js'

// Every case is a real TLS handshake on loopback with a certificate made for it; VIPs are data only.
const VIP = '192.168.1.250'
const ca = makeCa('cluster-ca')
const servers: RunningServer[] = []

function leaf(
  overrides: {ipSans?: string[]; dnsSans?: string[]; notBefore?: Date; notAfter?: Date; issuer?: TestCertificate} = {},
): TestCertificate {
  return makeCertificate({
    commonName: 'kube-apiserver',
    key: testKey('apiserver'),
    issuer: ca,
    ipSans: ['10.0.0.11', VIP],
    dnsSans: ['kubernetes'],
    ...overrides,
  })
}

async function serve(chain: TestCertificate[], host?: string): Promise<RunningServer> {
  const server = await startTlsServer(chain, host)
  servers.push(server)
  return server
}

async function check(server: {host: string; port: number}, options: Partial<CheckEndpointOptions> = {}): Promise<EndpointReport> {
  return checkEndpoint({host: server.host, port: server.port}, {vip: VIP, caPem: ca.certPem, timeoutMs: 3000, ...options})
}

after(async () => {
  await Promise.all(servers.map((s) => s.close()))
})

describe('checkEndpoint on a served certificate', () => {
  it('passes a certificate from the CA that carries the VIP as an IP SAN, and reports what it read', async () => {
    const cert = leaf()
    const server = await serve([cert])
    const report = await check(server)
    assert.equal(report.status, 'ok', JSON.stringify(report.checks))
    assert.equal(report.endpoint, `127.0.0.1:${server.port}`)
    assert.deepEqual(report.checks, {
      vipSan: {status: 'pass', state: 'ip-san', message: `VIP ${VIP} is an IP SAN`},
      validity: {status: 'pass', state: 'valid', message: `valid until ${report.certificate?.notAfter.slice(0, 10)} (364 days)`},
      trust: {status: 'pass', state: 'trusted', message: 'issued by the CA "CN=cluster-ca"'},
    })
    const facts = report.certificate
    assert.equal(facts?.subject, 'CN=kube-apiserver')
    assert.equal(facts?.issuer, 'CN=cluster-ca')
    assert.deepEqual(facts?.ipSans, ['10.0.0.11', VIP])
    assert.deepEqual(facts?.dnsSans, ['kubernetes'])
    assert.match(facts?.serialNumber ?? '', /^01[0-9A-F]{30}$/)
    assert.equal(facts?.isCa, false)
    assert.deepEqual(report.chain, [])
    assert.ok(report.timing && report.timing.connectMs >= 0 && report.timing.handshakeMs > 0, JSON.stringify(report.timing))
  })

  it('fails a certificate with DNS SANs only, listing that it has no IP SAN', async () => {
    const report = await check(await serve([leaf({ipSans: [], dnsSans: ['api.example.com', 'kubernetes.default.svc']})]))
    assert.equal(report.status, 'failed')
    assert.deepEqual(report.checks?.vipSan, {
      status: 'fail',
      state: 'absent',
      message: `VIP ${VIP} is not an IP SAN (the certificate has no IP SAN)`,
    })
    assert.equal(report.checks?.trust.status, 'pass')
    assert.deepEqual(report.certificate?.dnsSans, ['api.example.com', 'kubernetes.default.svc'])
  })

  it('fails a certificate that spells the VIP only as a DNS name: clients do not match IPs against DNS SANs', async () => {
    const report = await check(await serve([leaf({ipSans: ['10.0.0.11'], dnsSans: [VIP]})]))
    assert.equal(report.status, 'failed')
    assert.equal(report.checks?.vipSan.status, 'fail')
    assert.equal(report.checks?.vipSan.state, 'dns-san-only')
    assert.match(
      report.checks?.vipSan.message ?? '',
      /^VIP 192\.168\.1\.250 is only a DNS SAN; .* must be an IP SAN \(IP SANs: 10\.0\.0\.11\)$/,
    )
  })

  it('fails a VIP missing among other IP SANs, naming them', async () => {
    const report = await check(await serve([leaf({ipSans: ['10.0.0.11', '10.96.0.1']})]))
    assert.deepEqual(report.checks?.vipSan, {
      status: 'fail',
      state: 'absent',
      message: `VIP ${VIP} is not an IP SAN (IP SANs: 10.0.0.11, 10.96.0.1)`,
    })
  })

  it('reads IPv6 SANs in canonical form, over IPv6 too, and matches an IPv4 VIP written IPv4-mapped', async () => {
    const server = await serve([leaf({ipSans: ['fd00:0:0:0:0:0:0:11', '2001:db8::1', '::ffff:c0a8:1fa']})], '::1')
    const report = await check(server)
    assert.equal(report.endpoint, `[::1]:${server.port}`)
    assert.deepEqual(report.certificate?.ipSans, ['fd00::11', '2001:db8::1', `::ffff:c0a8:1fa`])
    assert.equal(report.checks?.vipSan.status, 'pass')
    const v6 = await check(server, {vip: 'fd00::11'})
    assert.equal(v6.checks?.vipSan.status, 'pass')
    const other = await check(server, {vip: 'fd00::12'})
    assert.equal(other.checks?.vipSan.status, 'fail')
  })

  it('fails an expired certificate and one not valid yet', async () => {
    const expired = await check(await serve([leaf({notBefore: daysFromNow(-400), notAfter: daysFromNow(-2)})]))
    assert.equal(expired.status, 'failed')
    assert.match(expired.checks?.validity.message ?? '', /^expired on \d{4}-\d\d-\d\dT/)
    assert.equal(expired.checks?.validity.state, 'expired')
    assert.equal(expired.checks?.vipSan.status, 'pass', 'each check is judged on its own')
    const future = await check(await serve([leaf({notBefore: daysFromNow(3), notAfter: daysFromNow(400)})]))
    assert.equal(future.status, 'failed')
    assert.match(future.checks?.validity.message ?? '', /^not valid yet: valid from \d{4}-/)
    assert.equal(future.checks?.validity.state, 'not-yet-valid')
  })

  it('warns, without failing, within 30 days of expiry', async () => {
    const report = await check(await serve([leaf({notAfter: daysFromNow(10.5)})]))
    assert.equal(report.status, 'warning')
    assert.match(report.checks?.validity.message ?? '', /^expires in 10 days, on /)
    assert.equal(report.checks?.validity.state, 'expiring-soon')
    const later = await check(await serve([leaf({notAfter: daysFromNow(31)})]))
    assert.equal(later.status, 'ok')
  })

  it('verifies a chain through an intermediate the server sends, and fails when it does not send it', async () => {
    const intermediate = makeCa('cluster-intermediate', {issuer: ca})
    const cert = leaf({issuer: intermediate})
    const full = await check(await serve([cert, intermediate]))
    assert.equal(full.status, 'ok', JSON.stringify(full.checks))
    assert.deepEqual(full.checks?.trust, {
      status: 'pass',
      state: 'trusted',
      message: 'issued by the CA "CN=cluster-ca" through "CN=cluster-intermediate"',
    })
    assert.deepEqual(
      full.chain?.map((c) => c.subject),
      ['CN=cluster-intermediate'],
    )
    assert.equal(full.chain?.[0]?.isCa, true)

    const leafOnly = await check(await serve([cert]))
    assert.equal(leafOnly.status, 'failed')
    assert.equal(leafOnly.checks?.trust.state, 'untrusted')
    assert.equal(
      leafOnly.checks?.trust.message,
      'not trusted: "CN=kube-apiserver" is issued by "CN=cluster-intermediate", which is neither the CA "CN=cluster-ca" nor a certificate the server sent',
    )
  })

  it('fails a self-signed certificate and one from another CA', async () => {
    const selfSigned = makeCertificate({commonName: 'kube-apiserver', key: testKey('apiserver'), ipSans: [VIP]})
    const report = await check(await serve([selfSigned]))
    assert.equal(report.status, 'failed')
    assert.equal(report.checks?.vipSan.status, 'pass')
    assert.equal(report.checks?.trust.message, 'not trusted: "CN=kube-apiserver" is self-signed, not issued by the CA "CN=cluster-ca"')

    const otherCa = makeCa('other-ca')
    const foreign = await check(await serve([leaf({issuer: otherCa}), otherCa]))
    assert.equal(foreign.checks?.trust.status, 'fail')
    assert.match(foreign.checks?.trust.message ?? '', /"CN=other-ca" is self-signed, not issued by the CA "CN=cluster-ca"/)
  })

  it('does not take a look-alike CA: same name, other key', async () => {
    const impostor = makeCa('cluster-ca', {key: testKey('impostor')})
    const report = await check(await serve([leaf({issuer: impostor})]))
    assert.equal(report.checks?.trust.status, 'fail')
  })

  it('skips the trust check without a CA, and takes a bundle with several', async () => {
    const server = await serve([leaf()])
    const noCa = await check(server, {caPem: undefined})
    assert.equal(noCa.status, 'ok')
    assert.equal(noCa.checks?.trust.status, 'skip')
    assert.equal(noCa.checks?.trust.state, 'no-ca')
    const bundle = await check(server, {caPem: makeCa('old-ca').certPem + ca.certPem})
    assert.equal(bundle.checks?.trust.status, 'pass')
  })

  it('reads ECDSA certificates, as k3s, RKE2 and Talos serve them', async () => {
    const ecCa = makeCa('k3s-server-ca', {key: testKey('k3s-ca', 'ec')})
    const ecLeaf = makeCertificate({commonName: 'k3s', key: testKey('k3s', 'ec'), issuer: ecCa, ipSans: ['127.0.0.1', VIP]})
    const report = await check(await serve([ecLeaf]), {caPem: ecCa.certPem})
    assert.equal(report.status, 'ok', JSON.stringify(report.checks))
    assert.equal(report.certificate?.issuer, 'CN=k3s-server-ca')
  })
})

describe('checkEndpoint on endpoints that give no certificate', () => {
  let closing: RunningServer
  let silent: RunningServer
  let plain: RunningServer
  before(async () => {
    closing = await startClosingServer()
    silent = await startSilentServer()
    plain = await startPlainHttpServer()
    servers.push(closing, silent, plain)
  })

  it('reports a server that closes without a handshake', async () => {
    const report = await check(closing)
    assert.equal(report.status, 'unreachable')
    assert.equal(report.error?.kind, 'closed')
    assert.match(report.error?.message ?? '', /closed the connection before the TLS handshake completed/)
    assert.equal(report.checks, undefined)
  })

  it('reports a port nothing listens on', async () => {
    const report = await check({host: '127.0.0.1', port: await unusedPort()})
    assert.deepEqual(report.error, {kind: 'refused', message: 'connection refused: nothing listens on that port'})
  })

  it('gives up on a server that never answers after the timeout, not later', async () => {
    const started = performance.now()
    const report = await check(silent, {timeoutMs: 400})
    const elapsed = performance.now() - started
    assert.deepEqual(report.error, {kind: 'timeout', message: 'no TLS handshake within 400ms'})
    assert.ok(elapsed >= 390 && elapsed < 1500, `took ${Math.round(elapsed)} ms`)
  })

  it('reports a port that answers in plain HTTP as a TLS failure', async () => {
    const report = await check(plain)
    assert.equal(report.status, 'unreachable')
    assert.equal(report.error?.kind, 'tls-error')
    assert.match(report.error?.message ?? '', /^TLS handshake failed: /)
  })
})

describe('runCertCheck: the check-cert result', () => {
  it("matches schemas/check-cert.schema.json, and its table shows each check's state", async () => {
    const cases = [
      leaf(),
      leaf({ipSans: ['10.0.0.11'], dnsSans: [VIP]}),
      leaf({notBefore: daysFromNow(-400), notAfter: daysFromNow(-2)}),
      leaf({notBefore: daysFromNow(3), notAfter: daysFromNow(400)}),
      leaf({notAfter: daysFromNow(10.5)}),
    ]
    const served = await Promise.all(cases.map((cert) => serve([cert])))
    const servers = [...served, {host: '127.0.0.1', port: await unusedPort()}]
    const result = await runCertCheck(
      planServerCheck({vip: VIP, servers, ca: {source: 'file', description: 'ca.crt', pem: ca.certPem}, distribution: 'k3s'}),
      {timeoutMs: 3000},
    )
    assertMatchesSchema('check-cert', result)
    assert.deepEqual(
      result.endpoints.map((e) => [e.checks?.vipSan.state, e.checks?.validity.state, e.checks?.trust.state, e.error?.kind]),
      [
        ['ip-san', 'valid', 'trusted', undefined],
        ['dns-san-only', 'valid', 'trusted', undefined],
        ['ip-san', 'expired', 'trusted', undefined],
        ['ip-san', 'not-yet-valid', 'trusted', undefined],
        ['ip-san', 'expiring-soon', 'trusted', undefined],
        [undefined, undefined, undefined, 'refused'],
      ],
    )
    assert.equal(result.exitCode, 4)
    assert.ok(result.advice, 'a certificate lacks the VIP: advice for k3s')
    const rows = formatCertReport(result)
      .slice(1, 1 + servers.length)
      .map((line) => line.split(/ {2,}/).slice(2, 4))
    const day = (i: number) => result.endpoints[i]?.certificate?.notAfter.slice(0, 10)
    assert.deepEqual(rows, [
      ['yes', day(0)],
      ['NO (DNS only)', day(1)],
      ['yes', `${day(2)} (EXPIRED)`],
      ['yes', `${day(3)} (NOT YET VALID)`],
      ['yes', `${day(4)} (SOON)`],
      ['-', '-'],
    ])
  })

  it('matches the schema when no endpoint answers (exit 3)', async () => {
    const result = await runCertCheck(planServerCheck({vip: VIP, servers: [{host: '127.0.0.1', port: await unusedPort()}]}), {
      timeoutMs: 1000,
    })
    assertMatchesSchema('check-cert', result)
    assert.equal(result.exitCode, 3)
  })
})

describe('verifyChain', () => {
  const root = makeCa('root-ca')

  it('refuses an intermediate that is not a CA certificate', () => {
    const notCa = makeCertificate({commonName: 'not-a-ca', key: testKey('not-a-ca'), issuer: root})
    const cert = makeCertificate({commonName: 'kube-apiserver', key: testKey('apiserver'), issuer: notCa})
    assert.deepEqual(verifyChain([cert.der, notCa.der], [root.der]), {
      trusted: false,
      reason: 'intermediate "CN=not-a-ca" is not a CA certificate',
    })
  })

  it('refuses an expired intermediate and an expired CA', () => {
    const old = makeCa('old-intermediate', {issuer: root, notBefore: daysFromNow(-100), notAfter: daysFromNow(-1)})
    const cert = makeCertificate({commonName: 'kube-apiserver', key: testKey('apiserver'), issuer: old})
    const viaOld = verifyChain([cert.der, old.der], [root.der])
    assert.equal(viaOld.trusted, false)
    assert.match(viaOld.trusted ? '' : viaOld.reason, /^intermediate "CN=old-intermediate" expired on /)
    const expiredRoot = makeCa('expired-root', {notBefore: daysFromNow(-100), notAfter: daysFromNow(-1)})
    const direct = makeCertificate({commonName: 'kube-apiserver', key: testKey('apiserver'), issuer: expiredRoot})
    const viaExpiredRoot = verifyChain([direct.der], [expiredRoot.der])
    assert.match(viaExpiredRoot.trusted ? '' : viaExpiredRoot.reason, /^the CA "CN=expired-root" expired on /)
  })

  it('trusts a served certificate that is itself the CA', () => {
    assert.deepEqual(verifyChain([root.der], [root.der]), {trusted: true, path: ['CN=root-ca']})
  })
})
