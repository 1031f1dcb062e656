// Servers that are not a working Kubernetes API server, for real, on loopback: one that completes the TLS
// handshake and never answers, and others that answer something else entirely. Every command that talks to
// a cluster must end with exit 3 and one line naming the server and what was wrong: no hang, no exit 1, no
// stack trace, no "forbidden", no raw bytes of the answer on the terminal.
import assert from 'node:assert/strict'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {createServer as createHttpsServer} from 'node:https'
import {createServer as createTcpServer, type Server, type Socket} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {createServer as createTlsServer, type TlsOptions} from 'node:tls'
import {after, before, describe, it} from 'node:test'

import {makeCa, makeCertificate, testKey} from '../helpers/certs.js'
import {assertJsonOutput} from '../helpers/json-schema.js'
import {karp} from '../helpers/karp.js'

const ca = makeCa('unresponsive-test-ca')
const leaf = makeCertificate({commonName: 'not-kubernetes', key: testKey('not-kubernetes'), issuer: ca, ipSans: ['127.0.0.1']})
const tls: TlsOptions = {cert: leaf.certPem + ca.certPem, key: leaf.key.privatePem}

// Bytes no terminal should receive: ESC, BEL, NUL and other C0 controls, DEL, C1 CSI.
const HOSTILE = '\x1b[2J\x1b]0;owned\x07\x00\x9b'

interface Variant {
  name: string
  start: () => Server
  /** What the one error line must say after naming the server. */
  says: RegExp
}

const answer = (status: number, type: string | undefined, body: string) => () =>
  createHttpsServer(tls, (_req, res) => {
    res.writeHead(status, type ? {'content-type': type} : {})
    res.end(body)
  })

const variants: Variant[] = [
  {
    name: 'completes TLS and never answers',
    start: () => createTlsServer(tls, (socket) => socket.on('error', () => undefined)),
    says: /no answer from https:\/\/127\.0\.0\.1:\d+ within 2 s$/,
  },
  {
    name: 'speaks plain HTTP on the https port',
    start: () =>
      createTcpServer((socket) =>
        socket.on('error', () => undefined).on('data', () => socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n')),
      ),
    says: /the TLS handshake with https:\/\/127\.0\.0\.1:\d+ failed: the server does not speak TLS on this port \(plain HTTP\?\)/,
  },
  {
    name: 'offers only TLS 1.0 and 1.1',
    start: () =>
      createTlsServer({...tls, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0'}, (socket) => socket.end()),
    says: /the TLS handshake with https:\/\/127\.0\.0\.1:\d+ failed: no TLS version in common/,
  },
  {
    name: 'serves an HTML page',
    start: answer(200, 'text/html', `<!doctype html><title>Router login${HOSTILE}</title>`),
    says: /https:\/\/127\.0\.0\.1:\d+ does not answer like a Kubernetes API server: HTTP 200 with content type "text\/html" and a body starting "<!doctype html>/,
  },
  {
    name: 'answers 404 to everything',
    start: answer(404, 'text/plain', '404 page not found\n'),
    says: /does not answer like a Kubernetes API server: HTTP 404 with content type "text\/plain" and a body starting "404 page not found"/,
  },
  {
    name: 'answers 500 with control characters',
    start: answer(500, 'text/plain', `internal error${HOSTILE}`),
    says: /does not answer like a Kubernetes API server: HTTP 500 .*"internal error\\x1b\[2J\\x1b\]0;owned\\x07\\x00\\x9b"/,
  },
  {
    name: 'answers JSON that is no Kubernetes object',
    start: answer(200, 'application/json', '{}'),
    says: /does not answer like a Kubernetes API server: HTTP 200 with JSON that is no Kubernetes object/,
  },
  {
    name: 'sends garbage bytes instead of HTTP',
    start: () =>
      createTlsServer(tls, (socket) =>
        socket.on('error', () => undefined).on('data', () => socket.end(Buffer.from(`${HOSTILE}garbage\xff\xfe\r\n\r\n`, 'latin1'))),
      ),
    says: /https:\/\/127\.0\.0\.1:\d+ does not answer like a Kubernetes API server: its answer is not HTTP/,
  },
]

const commands: Array<{name: string; args: string[]}> = [
  {name: 'status', args: ['status', '--no-probe']},
  {name: 'install', args: ['install', '--vip', '10.0.0.5', '--yes']},
  {name: 'uninstall', args: ['uninstall', '--yes']},
]

// What must never reach the terminal: C0 controls but tab and newline, DEL, C1.
const UNPRINTABLE = /(?![\t\n])\p{Cc}/u

function kubeconfigFor(port: number): string {
  const file = join(mkdtempSync(join(tmpdir(), 'karp-unresponsive-')), 'kubeconfig')
  const caData = Buffer.from(ca.certPem).toString('base64')
  writeFileSync(
    file,
    `apiVersion: v1
kind: Config
clusters: [{name: odd, cluster: {server: "https://127.0.0.1:${port}", certificate-authority-data: ${caData}}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: odd, context: {cluster: odd, user: u}}]
current-context: odd
`,
  )
  return file
}

describe('a server that is not a working Kubernetes API server', () => {
  const running: Array<{server: Server; sockets: Set<Socket>; kubeconfig: string; port: number}> = []

  before(async () => {
    for (const variant of variants) {
      const server = variant.start()
      const sockets = new Set<Socket>()
      server.on('connection', (s: Socket) => sockets.add(s.on('close', () => sockets.delete(s))))
      server.on('tlsClientError', () => undefined)
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      const port = (server.address() as {port: number}).port
      running.push({server, sockets, kubeconfig: kubeconfigFor(port), port})
    }
  })

  after(() => {
    for (const {server, sockets} of running) {
      for (const s of sockets) s.destroy()
      server.close()
    }
  })

  for (const [i, variant] of variants.entries()) {
    describe(variant.name, () => {
      for (const command of commands) {
        it(`${command.name} exits 3 with one line naming the server`, async () => {
          const {kubeconfig, port} = running[i] as (typeof running)[number]
          // The guard bound: far above the 2 s request timeout, far below forever.
          const run = await karp([...command.args, '--kubeconfig', kubeconfig, '--request-timeout', '2s'], {timeoutMs: 30_000})
          const output = run.stdout + run.stderr
          assert.equal(run.exitCode, 3, output)
          const errors = run.stderr.split('\n').filter((l) => l.startsWith('error: '))
          assert.equal(errors.length, 1, run.stderr)
          assert.ok((errors[0] as string).includes(`https://127.0.0.1:${port}`), errors[0])
          assert.match(errors[0] as string, variant.says)
          assert.doesNotMatch(output, /forbidden|is not iterable|TypeError|\n\s+at /i)
          assert.doesNotMatch(output, UNPRINTABLE, 'no raw control characters')
        })
      }
    })
  }

  it('gives the same line as JSON under --json', async () => {
    const {kubeconfig, port} = running[3] as (typeof running)[number]
    const run = await karp(['status', '--json', '--kubeconfig', kubeconfig], {timeoutMs: 30_000})
    assert.equal(run.exitCode, 3, run.stderr)
    assertJsonOutput('status', run)
    const error = (run.json as {error: {message: string; exitCode: number}}).error
    assert.ok(error.message.includes(`https://127.0.0.1:${port} does not answer like a Kubernetes API server`), error.message)
    assert.doesNotMatch(run.stdout, /\\u001b|\\u0007/, "the answer's control characters were escaped before JSON")
  })

  it('check-cert, finding the VIP through the cluster, ends the same way', async () => {
    const {kubeconfig, port} = running[0] as (typeof running)[number]
    const run = await karp(['check-cert', '--kubeconfig', kubeconfig, '--request-timeout', '2s'], {timeoutMs: 30_000})
    assert.equal(run.exitCode, 3, run.stderr)
    assert.match(run.stderr, new RegExp(`^error: .*no answer from https://127\\.0\\.0\\.1:${port} within 2 s$`, 'm'))
  })
})
