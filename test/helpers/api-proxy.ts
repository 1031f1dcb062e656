// A TLS proxy on loopback in front of the real test API server, that can stop answering on demand: it
// forwards every request byte for byte with the admin's credentials (karp's own token is dropped), so karp
// talks to the real API server through it, until the test holds some requests or all traffic. Held
// requests get no answer at all, and answers already flowing (watch streams) stop mid-way: to karp, a
// server that went silent.
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {Agent, createServer, request} from 'node:https'
import type {IncomingMessage, ServerResponse} from 'node:http'
import type {Socket} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {KubeConfig} from '@kubernetes/client-node'

import {makeCa, makeCertificate, testKey} from './certs.js'

export interface HeldRequest {
  method: string
  path: string
}

export interface ApiProxy {
  server: string
  /** A kubeconfig for karp that points at the proxy and trusts it. */
  kubeconfig: string
  /** Every request is offered to this first; true: never answer it. */
  holdWhen(predicate: (request: HeldRequest) => boolean): void
  /** Answer nothing, and stop every answer under way. */
  holdAll(): void
  /** Forward again, answers under way included. */
  release(): void
  /** Every request seen, in order, held or not. */
  seen: HeldRequest[]
  /** TLS connections accepted so far (each a handshake the client paid for). */
  connections(): number
  close(): Promise<void>
}

const decode = (base64: string | undefined) => (base64 ? Buffer.from(base64, 'base64') : undefined)

export async function startApiProxy(upstreamKubeconfig: string): Promise<ApiProxy> {
  const kc = new KubeConfig()
  kc.loadFromFile(upstreamKubeconfig)
  const cluster = kc.getCurrentCluster()
  const user = kc.getCurrentUser()
  if (!cluster || !user) throw new Error(`no current cluster and user in ${upstreamKubeconfig}`)
  const upstream = new URL(cluster.server)
  const agent = new Agent({ca: decode(cluster.caData), cert: decode(user.certData), key: decode(user.keyData)})

  const ca = makeCa('api-proxy-ca')
  const leaf = makeCertificate({commonName: 'api-proxy', key: testKey('api-proxy'), issuer: ca, ipSans: ['127.0.0.1']})
  let hold: (request: HeldRequest) => boolean = () => false
  let all = false
  const flowing = new Map<IncomingMessage, ServerResponse>()
  const sockets = new Set<Socket>()
  const seen: HeldRequest[] = []
  let connections = 0

  const server = createServer({cert: leaf.certPem + ca.certPem, key: leaf.key.privatePem}, (req, res) => {
    const asked = {method: req.method ?? 'GET', path: req.url ?? '/'}
    seen.push(asked)
    if (all || hold(asked)) return
    const headers = {...req.headers, host: upstream.host}
    delete headers.authorization
    const up = request({host: upstream.hostname, port: upstream.port, method: asked.method, path: asked.path, headers, agent}, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      flowing.set(answer, res)
      answer.on('close', () => flowing.delete(answer))
      if (!all) answer.pipe(res)
    })
    up.on('error', () => res.destroy())
    res.on('close', () => up.destroy())
    req.pipe(up)
  })
  server.on('connection', (socket: Socket) => sockets.add(socket.on('close', () => sockets.delete(socket))))
  server.on('secureConnection', () => connections++)
  server.on('tlsClientError', () => undefined)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `https://127.0.0.1:${(server.address() as {port: number}).port}`

  const dir = mkdtempSync(join(tmpdir(), 'karp-api-proxy-'))
  const kubeconfig = join(dir, 'kubeconfig')
  writeFileSync(
    kubeconfig,
    `apiVersion: v1
kind: Config
clusters: [{name: proxy, cluster: {server: "${url}", certificate-authority-data: ${Buffer.from(ca.certPem).toString('base64')}}}]
users: [{name: through-proxy, user: {token: dropped-by-the-proxy}}]
contexts: [{name: proxy, context: {cluster: proxy, user: through-proxy}}]
current-context: proxy
`,
  )

  return {
    server: url,
    kubeconfig,
    seen,
    connections: () => connections,
    holdWhen: (predicate) => (hold = predicate),
    holdAll: () => {
      all = true
      for (const [answer, res] of flowing) {
        answer.unpipe(res)
        answer.pause()
      }
    },
    release: () => {
      all = false
      for (const [answer, res] of flowing) answer.pipe(res)
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        agent.destroy()
        rmSync(dir, {recursive: true, force: true})
        server.close(() => resolve())
      }),
  }
}
