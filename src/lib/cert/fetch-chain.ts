import {isIP} from 'node:net'
import {connect, type DetailedPeerCertificate, type TLSSocket} from 'node:tls'

export interface Endpoint {
  host: string
  port: number
}

export type FetchFailureKind = 'refused' | 'closed' | 'timeout' | 'tls-error' | 'unresolved' | 'unreachable' | 'error'

/** How long the TCP connect (name lookup included) and then the TLS handshake took, in milliseconds. */
export interface HandshakeTiming {
  connectMs: number
  handshakeMs: number
}

export type FetchedChain =
  /** chain: DER certificates, the server's own first, then the issuers it sent. */
  {ok: true; chain: Buffer[]; protocol: string | null; timing: HandshakeTiming} | {ok: false; kind: FetchFailureKind; message: string}

/** host:port, with an IPv6 address in brackets. */
export function formatEndpoint(endpoint: Endpoint): string {
  return isIP(endpoint.host) === 6 ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}`
}

export function formatDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`
}

const round = (ms: number) => Math.round(ms * 10) / 10

function servedChain(socket: TLSSocket): Buffer[] {
  const chain: Buffer[] = []
  const seen = new Set<string>()
  // Node links each certificate to its issuer; a self-signed one links to itself.
  for (let cert: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true); cert?.raw; cert = cert.issuerCertificate) {
    if (seen.has(cert.fingerprint256)) break
    seen.add(cert.fingerprint256)
    chain.push(cert.raw)
  }
  return chain
}

function describeFailure(error: NodeJS.ErrnoException): {kind: FetchFailureKind; message: string} {
  switch (error.code) {
    case 'ECONNREFUSED':
      return {kind: 'refused', message: 'connection refused: nothing listens on that port'}
    case 'ECONNRESET':
    case 'EPIPE':
      return {kind: 'closed', message: 'the server closed the connection before the TLS handshake completed (not a TLS server?)'}
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return {kind: 'unresolved', message: `cannot resolve the host name (${error.code})`}
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return {kind: 'unreachable', message: `no route to the host (${error.code})`}
    case 'ETIMEDOUT':
      return {kind: 'timeout', message: 'the connection timed out (ETIMEDOUT)'}
  }
  if (error.code?.startsWith('ERR_SSL') || error.code?.startsWith('ERR_TLS') || /SSL|TLS/.test(error.message)) {
    return {kind: 'tls-error', message: `TLS handshake failed: ${error.message.split('\n')[0]}`}
  }
  return {kind: 'error', message: `${error.code ? `${error.code}: ` : ''}${error.message.split('\n')[0]}`}
}

/**
 * Reads the certificate chain a TLS server presents, without trusting it (judging it is the point) and
 * without sending any credential. Never rejects: an endpoint that cannot be read is an answer too.
 */
export function fetchServedChain(endpoint: Endpoint, options: {timeoutMs: number}): Promise<FetchedChain> {
  return new Promise((resolve) => {
    const started = performance.now()
    let connectedAt = started
    const socket = connect({
      host: endpoint.host,
      port: endpoint.port,
      rejectUnauthorized: false,
      // SNI carries host names only (RFC 6066); an IP address there makes some servers refuse the handshake.
      ...(isIP(endpoint.host) ? {} : {servername: endpoint.host}),
    })
    let settled = false
    const finish = (result: FetchedChain) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      resolve(result)
    }
    const timer = setTimeout(
      () => finish({ok: false, kind: 'timeout', message: `no TLS handshake within ${formatDuration(options.timeoutMs)}`}),
      options.timeoutMs,
    )
    socket.once('connect', () => (connectedAt = performance.now()))
    socket.once('secureConnect', () => {
      const timing = {connectMs: round(connectedAt - started), handshakeMs: round(performance.now() - connectedAt)}
      finish({ok: true, chain: servedChain(socket), protocol: socket.getProtocol(), timing})
    })
    socket.once('error', (error: NodeJS.ErrnoException) => finish({ok: false, ...describeFailure(error)}))
    socket.once('close', () =>
      finish({
        ok: false,
        kind: 'closed',
        message: 'the server closed the connection before the TLS handshake completed (not a TLS server?)',
      }),
    )
  })
}
