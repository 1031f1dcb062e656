// karp-tls (agent/tls), the agent's TLS client, against real TLS servers on loopback with certificates made
// here: what it verifies before it sends a byte of its stdin, what it delivers, how it ends. The build is the
// host's (test/helpers/karp-tls.ts); under CI=true a missing compiler or libbearssl-dev fails the suite.
import assert from 'node:assert/strict'
import {createServer as createTcpServer} from 'node:net'
import {after, before, describe, it} from 'node:test'
import {createServer, type TLSSocket} from 'node:tls'
import {execa} from 'execa'
import {
  daysFromNow,
  makeCa,
  makeCertificate,
  startSilentServer,
  testKey,
  unusedPort,
  writeTempFile,
  type CertificateSpec,
  listen,
  type RunningServer,
  type TestCertificate,
} from '../helpers/certs.js'
import {karpTls} from '../../lab/karp-tls.js'

const built = karpTls()
if ('error' in built && process.env.CI === 'true') throw new Error(`CI=true and karp-tls cannot be built: ${built.error}`)
const skip = 'error' in built ? built.error : false
const binary = 'path' in built ? built.path : ''

const EXIT = {done: 0, usage: 2, connect: 3, handshake: 4, timeout: 5}
const TOKEN = 'secret-token-3f9a'
const REQUEST = `GET /readyz HTTP/1.1\r\nHost: kubernetes\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: close\r\n\r\n`
const ANSWER = 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n'

const ca = makeCa('karp-tls test CA', {key: testKey('karp-tls test CA', 'ec')})
const otherCa = makeCa('karp-tls other CA', {key: testKey('karp-tls other CA', 'ec')})
const rsaCa = makeCa('karp-tls RSA CA', {key: testKey('karp-tls RSA CA', 'rsa')})
const serverKey = testKey('karp-tls server', 'ec')
const caFile = writeTempFile('ca.crt', ca.certPem)
/** A bundle as the service-account ca.crt may be: another CA first, then the one that signed the server. */
const bundleFile = writeTempFile('bundle.crt', otherCa.certPem + rsaCa.certPem + ca.certPem)

function serverCert(spec: Partial<CertificateSpec>): TestCertificate {
  return makeCertificate({commonName: 'kube-apiserver', key: serverKey, issuer: ca, ...spec})
}

interface Recorder extends RunningServer {
  /** Application bytes received, over all connections. */
  received(): string
  /** The SNI of each completed handshake ('' without one). */
  serverNames: string[]
}

type Behaviour = (socket: TLSSocket) => void

/** Waits for a whole request (the blank line), then sends the answer and closes. */
const answerOnce: Behaviour = (socket) => {
  let seen = ''
  socket.on('data', (chunk: Buffer) => {
    seen += chunk.toString('latin1')
    if (seen.includes('\r\n\r\n')) socket.end(ANSWER)
  })
}

const running: RunningServer[] = []

async function tlsServer(
  chain: TestCertificate[],
  opts: {host?: string; minVersion?: 'TLSv1.2' | 'TLSv1.3'; maxVersion?: 'TLSv1.2' | 'TLSv1.3'; behaviour?: Behaviour} = {},
): Promise<Recorder> {
  const [leaf] = chain
  if (!leaf) throw new Error('tlsServer needs a certificate')
  const chunks: Buffer[] = []
  const serverNames: string[] = []
  const server = createServer(
    {cert: chain.map((c) => c.certPem).join(''), key: leaf.key.privatePem, minVersion: opts.minVersion, maxVersion: opts.maxVersion},
    (socket) => {
      serverNames.push(typeof socket.servername === 'string' ? socket.servername : '')
      socket.on('error', () => undefined)
      socket.on('data', (chunk: Buffer) => chunks.push(chunk))
      ;(opts.behaviour ?? answerOnce)(socket)
    },
  )
  server.on('tlsClientError', () => undefined)
  const listening = await listen(server, opts.host ?? '127.0.0.1')
  running.push(listening)
  return {...listening, serverNames, received: () => Buffer.concat(chunks).toString('latin1')}
}

/** A TCP server (no TLS) that answers once it has a whole request, for --plain. */
async function plainServer(): Promise<RunningServer & {received(): string}> {
  const chunks: Buffer[] = []
  const tcp = createTcpServer((socket) => {
    socket.on('error', () => undefined)
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      if (Buffer.concat(chunks).includes('\r\n\r\n')) socket.end(ANSWER)
    })
  })
  const server = await listen(tcp, '127.0.0.1')
  running.push(server)
  return {...server, received: () => Buffer.concat(chunks).toString('latin1')}
}

async function karpTlsRun(args: string[], input = REQUEST) {
  const result = await execa(binary, args, {input, reject: false, timeout: 20_000, encoding: 'buffer', stripFinalNewline: false})
  const stderr = Buffer.from(result.stderr).toString('utf8')
  assert.ok(!stderr.includes(TOKEN), `stderr shows request bytes: ${stderr}`)
  assert.ok(stderr.split('\n').filter(Boolean).length <= 1, `more than one line on stderr: ${stderr}`)
  return {code: result.exitCode, stdout: Buffer.from(result.stdout), stderr}
}

const verified = (server: RunningServer, name: string, ca = caFile, more: string[] = []) =>
  karpTlsRun(['--connect', server.address, '--name', name, '--ca', ca, '--timeout', '10', ...more])

describe('karp-tls', {skip}, () => {
  after(async () => {
    await Promise.all(running.map((s) => s.close()))
  })

  describe('verifies the server before it sends anything', () => {
    it('pipes the request to a server that proves the name with a certificate of --ca, sends the name as SNI, and prints the whole answer', async () => {
      const server = await tlsServer([serverCert({dnsSans: ['kubernetes', 'kubernetes.default.svc']})])
      const r = await verified(server, 'kubernetes')
      assert.equal(r.code, EXIT.done, r.stderr)
      assert.equal(r.stdout.toString('latin1'), ANSWER)
      assert.equal(r.stderr, '')
      assert.equal(server.received(), REQUEST)
      assert.deepEqual(server.serverNames, ['kubernetes'])
    })

    it('finds the signing CA in a bundle of several, and accepts an RSA chain', async () => {
      const server = await tlsServer([
        makeCertificate({commonName: 'rsa server', key: testKey('karp-tls RSA server', 'rsa'), issuer: rsaCa, dnsSans: ['kubernetes']}),
      ])
      const r = await verified(server, 'kubernetes', bundleFile)
      assert.equal(r.code, EXIT.done, r.stderr)
      assert.equal(r.stdout.toString('latin1'), ANSWER)
    })

    it('reads a --ca file with CRLF line ends', async () => {
      const server = await tlsServer([serverCert({dnsSans: ['kubernetes']})])
      const r = await verified(server, 'kubernetes', writeTempFile('crlf.crt', ca.certPem.replace(/\n/g, '\r\n')))
      assert.equal(r.code, EXIT.done, r.stderr)
      assert.equal(server.received(), REQUEST)
    })

    it('follows a chain through an intermediate CA the server sends', async () => {
      const intermediate = makeCertificate({
        commonName: 'karp-tls intermediate',
        key: testKey('karp-tls intermediate', 'ec'),
        issuer: ca,
        ca: true,
      })
      const server = await tlsServer([serverCert({dnsSans: ['kubernetes'], issuer: intermediate}), intermediate])
      const r = await verified(server, 'kubernetes')
      assert.equal(r.code, EXIT.done, r.stderr)
      assert.equal(server.received(), REQUEST)
    })

    const refusals: [string, () => Promise<Recorder>, string, string, RegExp][] = [
      [
        'a certificate another CA signed, even one naming the server',
        () => tlsServer([serverCert({dnsSans: ['kubernetes'], ipSans: ['127.0.0.1'], issuer: otherCa})]),
        'kubernetes',
        caFile,
        /not signed by a CA of --ca/,
      ],
      [
        'a certificate for another name',
        () => tlsServer([serverCert({dnsSans: ['kubernetes.default.svc', 'other']})]),
        'kubernetes',
        caFile,
        /does not name kubernetes/,
      ],
      [
        'a certificate whose subject CN is the name but whose subjectAltName is not',
        () => tlsServer([serverCert({commonName: 'kubernetes', dnsSans: ['other']})]),
        'kubernetes',
        caFile,
        /does not name kubernetes/,
      ],
      [
        'a certificate with the name only as its CN and no subjectAltName at all',
        () => tlsServer([serverCert({commonName: 'kubernetes'})]),
        'kubernetes',
        caFile,
        /does not name kubernetes/,
      ],
      [
        'an expired certificate',
        () => tlsServer([serverCert({dnsSans: ['kubernetes'], notBefore: daysFromNow(-30), notAfter: daysFromNow(-1)})]),
        'kubernetes',
        caFile,
        /expired or not yet valid/,
      ],
      [
        'a certificate not valid yet',
        () => tlsServer([serverCert({dnsSans: ['kubernetes'], notBefore: daysFromNow(2), notAfter: daysFromNow(30)})]),
        'kubernetes',
        caFile,
        /expired or not yet valid/,
      ],
      [
        'an IP address written as a dNSName (the IP check takes iPAddress entries only)',
        () => tlsServer([serverCert({dnsSans: ['127.0.0.1']})]),
        '127.0.0.1',
        caFile,
        /does not name 127\.0\.0\.1/,
      ],
      [
        'another IP address',
        () => tlsServer([serverCert({ipSans: ['127.0.0.2'], dnsSans: ['kubernetes']})]),
        '127.0.0.1',
        caFile,
        /does not name 127\.0\.0\.1/,
      ],
      [
        'a wildcard for one label used for two',
        () => tlsServer([serverCert({dnsSans: ['*.example.test']})]),
        'a.b.example.test',
        caFile,
        /does not name a\.b\.example\.test/,
      ],
    ]
    for (const [what, start, name, ca, message] of refusals) {
      it(`refuses ${what}: exit ${EXIT.handshake}, and the server gets no byte of stdin`, async () => {
        const server = await start()
        const r = await verified(server, name, ca)
        assert.equal(r.code, EXIT.handshake, `${r.stderr} / stdout ${r.stdout.length} bytes`)
        assert.match(r.stderr, message)
        assert.equal(r.stdout.length, 0)
        assert.equal(server.received(), '', 'application bytes reached a server that did not verify')
      })
    }

    it('matches an IP address against the iPAddress entries (IPv4 and IPv6)', async () => {
      const v4 = await tlsServer([serverCert({ipSans: ['10.96.0.1', '127.0.0.1']})])
      const r4 = await verified(v4, '127.0.0.1')
      assert.equal(r4.code, EXIT.done, r4.stderr)
      assert.equal(v4.received(), REQUEST)
      assert.deepEqual(v4.serverNames, [''], 'no SNI for an IP address')
      const v6 = await tlsServer([serverCert({ipSans: ['::1']})], {host: '::1'})
      const r6 = await verified(v6, '::1')
      assert.equal(r6.code, EXIT.done, r6.stderr)
      assert.equal(r6.stdout.toString('latin1'), ANSWER)
    })

    it('takes a "*." wildcard as exactly one first label', async () => {
      const server = await tlsServer([serverCert({dnsSans: ['*.example.test']})])
      const r = await verified(server, 'api.example.test')
      assert.equal(r.code, EXIT.done, r.stderr)
      assert.equal(server.received(), REQUEST)
    })
  })

  describe('TLS versions', () => {
    it('speaks TLS 1.2 to a server that allows nothing newer', async () => {
      const server = await tlsServer([serverCert({dnsSans: ['kubernetes']})], {minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2'})
      const r = await verified(server, 'kubernetes')
      assert.equal(r.code, EXIT.done, r.stderr)
      assert.equal(r.stdout.toString('latin1'), ANSWER)
    })

    it('fails a server that allows TLS 1.3 only with exit 4 and a line saying so (BearSSL has no TLS 1.3)', async () => {
      const server = await tlsServer([serverCert({dnsSans: ['kubernetes']})], {minVersion: 'TLSv1.3'})
      const r = await verified(server, 'kubernetes')
      assert.equal(r.code, EXIT.handshake)
      assert.match(r.stderr, /^karp-tls: the server refuses TLS 1\.2 .*TLS 1\.2 only\n$/)
      assert.equal(server.received(), '')
    })
  })

  describe('ends', () => {
    it('delivers the whole answer when stdin ends long before it (no close on stdin EOF)', async () => {
      // 300 KB in six parts 100 ms apart, starting after the request arrived; stdin is at EOF by then.
      const parts = Array.from({length: 6}, (_, i) => Buffer.alloc(50_000, 97 + i))
      const server = await tlsServer([serverCert({dnsSans: ['kubernetes']})], {
        behaviour: (socket) => {
          socket.once('data', () => {
            let i = 0
            const timer = setInterval(() => {
              const part = parts[i++]
              if (part) socket.write(part)
              else {
                clearInterval(timer)
                socket.end()
              }
            }, 100)
          })
        },
      })
      const r = await verified(server, 'kubernetes')
      assert.equal(r.code, EXIT.done, r.stderr)
      assert.ok(r.stdout.equals(Buffer.concat(parts)), `got ${r.stdout.length} of ${6 * 50_000} bytes`)
    })

    it('ends a server that accepts and never speaks TLS at --timeout: exit 5 naming the handshake', async () => {
      const server = await startSilentServer()
      running.push(server)
      const r = await karpTlsRun(['--connect', server.address, '--name', 'kubernetes', '--ca', caFile, '--timeout', '0.5'])
      assert.equal(r.code, EXIT.timeout)
      assert.equal(r.stderr, 'karp-tls: timed out in the TLS handshake\n')
    })

    it('ends a verified server that never answers at --timeout: exit 5, and the request did arrive', async () => {
      const server = await tlsServer([serverCert({dnsSans: ['kubernetes']})], {behaviour: () => undefined})
      const r = await verified(server, 'kubernetes', caFile, ['--timeout', '0.5'])
      assert.equal(r.code, EXIT.timeout)
      assert.equal(r.stderr, 'karp-tls: timed out waiting for the server to close\n')
      assert.equal(server.received(), REQUEST)
    })

    it('says exit 3 when nothing listens', async () => {
      const port = await unusedPort()
      const r = await karpTlsRun(['--connect', `127.0.0.1:${port}`, '--name', 'kubernetes', '--ca', caFile])
      assert.equal(r.code, EXIT.connect)
      assert.equal(r.stderr, `karp-tls: cannot connect to 127.0.0.1 port ${port}: Connection refused\n`)
    })
  })

  describe('--get: the request written by karp-tls itself', () => {
    const tokenFile = writeTempFile('token', `${TOKEN}\n`)
    const getRequest = (host: string, token?: string) =>
      `GET /api/v1/nodes/node1 HTTP/1.0\r\nHost: ${host}\r\n${token ? `Authorization: Bearer ${token}\r\n` : ''}Connection: close\r\n\r\n`

    it('sends GET PATH over HTTP/1.0 with Host and the first line of --token-file as a bearer token, ignoring stdin', async () => {
      const server = await tlsServer([serverCert({dnsSans: ['kubernetes']})])
      const r = await verified(server, 'kubernetes', caFile, [
        '--get',
        '/api/v1/nodes/node1',
        '--host',
        '10.96.0.1:443',
        '--token-file',
        tokenFile,
      ])
      assert.equal(r.code, EXIT.done, r.stderr)
      assert.equal(r.stdout.toString('latin1'), ANSWER)
      assert.equal(server.received(), getRequest('10.96.0.1:443', TOKEN))
    })

    it('sends no Authorization header when the token file cannot be read (no token mounted)', async () => {
      const server = await tlsServer([serverCert({dnsSans: ['kubernetes']})])
      const r = await verified(server, 'kubernetes', caFile, [
        '--get',
        '/api/v1/nodes/node1',
        '--host',
        'kubernetes',
        '--token-file',
        '/nonexistent/token',
      ])
      assert.equal(r.code, EXIT.done, r.stderr)
      assert.equal(server.received(), getRequest('kubernetes'))
    })

    it('never sends the token to a server that did not verify: exit 4, no byte received', async () => {
      const server = await tlsServer([serverCert({dnsSans: ['kubernetes'], issuer: otherCa})])
      const r = await verified(server, 'kubernetes', caFile, ['--get', '/readyz', '--host', 'kubernetes', '--token-file', tokenFile])
      assert.equal(r.code, EXIT.handshake, r.stderr)
      assert.equal(server.received(), '')
    })

    it('refuses a token whose first line carries a byte a header cannot, with exit 2 and no request', async () => {
      const server = await tlsServer([serverCert({dnsSans: ['kubernetes']})])
      const r = await verified(server, 'kubernetes', caFile, [
        '--get',
        '/readyz',
        '--host',
        'kubernetes',
        '--token-file',
        writeTempFile('bad-token', 'abc def\n'),
      ])
      assert.equal(r.code, EXIT.usage, r.stderr)
      assert.match(r.stderr, /--token-file/)
      assert.equal(server.received(), '')
    })

    it('writes the request without TLS for --plain', async () => {
      const server = await plainServer()
      const r = await karpTlsRun(
        ['--connect', server.address, '--plain', '--get', '/api/v1/nodes/node1', '--host', server.address],
        'stdin is not read',
      )
      assert.equal(r.code, EXIT.done, r.stderr)
      assert.equal(r.stdout.toString('latin1'), ANSWER)
      assert.equal(server.received(), getRequest(server.address))
    })
  })

  describe('--plain (http:// health URLs, which never carry a token)', () => {
    it('pipes stdin to the server and its answer to stdout, without TLS', async () => {
      const server = await plainServer()
      const request = 'GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'
      const r = await karpTlsRun(['--connect', server.address, '--plain', '--timeout', '5'], request)
      assert.equal(r.code, EXIT.done, r.stderr)
      assert.equal(r.stdout.toString('latin1'), ANSWER)
      assert.equal(server.received(), request)
    })
  })

  describe('usage', () => {
    let server: Recorder
    before(async () => {
      server = await tlsServer([serverCert({dnsSans: ['kubernetes']})])
    })

    const bad: [string, string[]][] = [
      ['no --ca', ['--connect', '127.0.0.1:1', '--name', 'kubernetes']],
      ['--plain with --name', ['--connect', '127.0.0.1:1', '--plain', '--name', 'kubernetes']],
      ['an IPv6 address without brackets', ['--connect', '::1:443', '--plain']],
      ['port 0', ['--connect', '127.0.0.1:0', '--plain']],
      ['a timeout of 0', ['--connect', '127.0.0.1:1', '--plain', '--timeout', '0']],
      ['a timeout with a unit', ['--connect', '127.0.0.1:1', '--plain', '--timeout', '5s']],
      ['an unknown option', ['--connect', '127.0.0.1:1', '--plain', '--insecure']],
      ['--get without --host', ['--connect', '127.0.0.1:1', '--plain', '--get', '/readyz']],
      ['--get with a path that is not absolute', ['--connect', '127.0.0.1:1', '--plain', '--get', 'readyz', '--host', 'a']],
      ['--get with a space in the path', ['--connect', '127.0.0.1:1', '--plain', '--get', '/a b', '--host', 'a']],
      ['--host with a line break', ['--connect', '127.0.0.1:1', '--plain', '--get', '/readyz', '--host', 'a\r\nX-Evil: 1']],
      [
        '--token-file without --get',
        ['--connect', '127.0.0.1:1', '--name', 'kubernetes', '--ca', '/dev/null', '--token-file', '/dev/null'],
      ],
      [
        '--token-file with --plain (a token never goes out unencrypted)',
        ['--connect', '127.0.0.1:1', '--plain', '--get', '/readyz', '--host', 'a', '--token-file', '/dev/null'],
      ],
    ]
    for (const [what, args] of bad) {
      it(`refuses ${what} with exit 2`, async () => {
        const r = await karpTlsRun(args)
        assert.equal(r.code, EXIT.usage, r.stderr)
        assert.match(r.stderr, /^karp-tls: /)
      })
    }

    it('refuses a --ca file without a certificate with exit 2, before connecting', async () => {
      const r = await verified(server, 'kubernetes', writeTempFile('empty.crt', 'not a certificate\n'))
      assert.equal(r.code, EXIT.usage)
      assert.match(r.stderr, /holds no PEM certificate/)
      assert.deepEqual(server.serverNames, [])
    })
  })
})
