// Certificates and servers for the check-cert tests: real TLS servers on loopback presenting certificates
// made here. node-forge lays out each certificate; node:crypto makes the keys and signs, so RSA and ECDSA
// keys work alike (k3s, RKE2 and Talos serve ECDSA) and any validity period or SAN can be written.
import {generateKeyPairSync, type KeyObject, randomBytes, sign} from 'node:crypto'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {createServer as createTcpServer, type Server, type Socket} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {createServer as createTlsServer} from 'node:tls'

import forge from 'node-forge'

export type KeyKind = 'rsa' | 'ec'

export interface TestKey {
  kind: KeyKind
  privateKey: KeyObject
  publicKey: KeyObject
  privatePem: string
}

const keys = new Map<string, TestKey>()

/** One key per label, made once per process: RSA key generation is the slow part of these tests. */
export function testKey(label: string, kind: KeyKind = 'rsa'): TestKey {
  const id = `${kind}:${label}`
  let key = keys.get(id)
  if (!key) {
    const {privateKey, publicKey} =
      kind === 'rsa' ? generateKeyPairSync('rsa', {modulusLength: 2048}) : generateKeyPairSync('ec', {namedCurve: 'prime256v1'})
    key = {kind, privateKey, publicKey, privatePem: privateKey.export({type: 'pkcs8', format: 'pem'}).toString()}
    keys.set(id, key)
  }
  return key
}

export interface TestCertificate {
  commonName: string
  key: TestKey
  der: Buffer
  certPem: string
}

export interface CertificateSpec {
  commonName: string
  key: TestKey
  /** Absent: self-signed. */
  issuer?: TestCertificate
  ca?: boolean
  ipSans?: string[]
  dnsSans?: string[]
  notBefore?: Date
  notAfter?: Date
}

const DAY = 24 * 60 * 60 * 1000
const {asn1} = forge
const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2'

function algorithmIdentifier(kind: KeyKind): forge.asn1.Asn1 {
  const oid = kind === 'rsa' ? forge.pki.oids.sha256WithRSAEncryption : ECDSA_WITH_SHA256
  const parts = [asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(oid as string).getBytes())]
  // RFC 4055 wants NULL parameters for RSA; RFC 5758 wants none for ECDSA.
  if (kind === 'rsa') parts.push(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''))
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, parts)
}

const binary = (bytes: forge.util.ByteStringBuffer) => Buffer.from(bytes.getBytes(), 'binary')

export function toPem(der: Buffer): string {
  return `-----BEGIN CERTIFICATE-----\n${der
    .toString('base64')
    .match(/.{1,64}/g)
    ?.join('\n')}\n-----END CERTIFICATE-----\n`
}

export function makeCertificate(spec: CertificateSpec): TestCertificate {
  const now = Date.now()
  const cert = forge.pki.createCertificate()
  // forge lays out RSA keys only; the real key goes into the TBSCertificate below.
  cert.publicKey = forge.pki.publicKeyFromPem(testKey('layout').publicKey.export({type: 'spki', format: 'pem'}).toString())
  cert.serialNumber = '01' + randomBytes(15).toString('hex')
  cert.validity.notBefore = spec.notBefore ?? new Date(now - DAY)
  cert.validity.notAfter = spec.notAfter ?? new Date(now + 365 * DAY)
  const subject = [{shortName: 'CN', value: spec.commonName}]
  cert.setSubject(subject)
  cert.setIssuer(spec.issuer ? [{shortName: 'CN', value: spec.issuer.commonName}] : subject)
  const altNames = [...(spec.dnsSans ?? []).map((value) => ({type: 2, value})), ...(spec.ipSans ?? []).map((ip) => ({type: 7, ip}))]
  cert.setExtensions([
    {name: 'basicConstraints', cA: spec.ca === true, critical: true},
    spec.ca
      ? {name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true}
      : {name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true},
    ...(spec.ca ? [] : [{name: 'extKeyUsage', serverAuth: true}]),
    ...(altNames.length > 0 ? [{name: 'subjectAltName', altNames}] : []),
  ])
  const signer = spec.issuer?.key ?? spec.key
  cert.siginfo.algorithmOid = signer.kind === 'rsa' ? (forge.pki.oids.sha256WithRSAEncryption as string) : ECDSA_WITH_SHA256
  const tbs = (forge.pki as unknown as {getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1}).getTBSCertificate(cert)
  const fields = tbs.value as forge.asn1.Asn1[]
  // TBSCertificate: [0] version, serial, signature algorithm, issuer, validity, subject, public key, [3] extensions.
  fields[2] = algorithmIdentifier(signer.kind)
  fields[6] = asn1.fromDer(spec.key.publicKey.export({type: 'spki', format: 'der'}).toString('binary'))
  const signature = sign('sha256', binary(asn1.toDer(tbs)), signer.privateKey)
  const certificate = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    tbs,
    algorithmIdentifier(signer.kind),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, '\0' + signature.toString('binary')),
  ])
  const der = binary(asn1.toDer(certificate))
  return {commonName: spec.commonName, key: spec.key, der, certPem: toPem(der)}
}

export function makeCa(commonName: string, options: Partial<CertificateSpec> = {}): TestCertificate {
  return makeCertificate({commonName, key: testKey(commonName, options.key?.kind), ca: true, ...options})
}

export const daysFromNow = (days: number) => new Date(Date.now() + days * DAY)

/** A file holding the PEM text, in a temporary directory of its own. */
export function writeTempFile(name: string, text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'karp-cert-test-')), name)
  writeFileSync(file, text)
  return file
}

export interface RunningServer {
  host: string
  port: number
  /** host:port with IPv6 in brackets, as --server takes it. */
  address: string
  close(): Promise<void>
}

/** Listens on a free port of `host`; close() also ends the connections still open (kept in `sockets`). */
export async function listen(server: Server, host: string): Promise<RunningServer & {sockets: Set<Socket>}> {
  const sockets = new Set<Socket>()
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({host, port: 0}, resolve)
  })
  const port = (server.address() as {port: number}).port
  return {
    host,
    port,
    sockets,
    address: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
}

/** A TLS server presenting these certificates (the server's own first, then the issuers it sends). */
export function startTlsServer(chain: TestCertificate[], host = '127.0.0.1'): Promise<RunningServer> {
  const [leaf] = chain
  if (!leaf) throw new Error('startTlsServer needs a certificate')
  const server = createTlsServer({cert: chain.map((c) => c.certPem).join(''), key: leaf.key.privatePem}, (socket) => socket.end())
  // The client hangs up right after the handshake; the resets that follow are expected.
  server.on('tlsClientError', () => undefined)
  return listen(server, host)
}

/** Accepts connections and closes them at once, before any TLS. */
export function startClosingServer(host = '127.0.0.1'): Promise<RunningServer> {
  return listen(
    createTcpServer((socket) => socket.destroy()),
    host,
  )
}

/** Accepts connections and never says a word. */
export function startSilentServer(host = '127.0.0.1'): Promise<RunningServer> {
  return listen(
    createTcpServer((socket) => socket.on('error', () => undefined)),
    host,
  )
}

/** Answers in plain HTTP, as a misconfigured port would. */
export function startPlainHttpServer(host = '127.0.0.1'): Promise<RunningServer> {
  return listen(
    createTcpServer((socket) => {
      socket.on('error', () => undefined)
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n')
    }),
    host,
  )
}

/** A loopback port nothing listens on (free a moment ago). */
export async function unusedPort(host = '127.0.0.1'): Promise<number> {
  const server = await listen(createTcpServer(), host)
  await server.close()
  return server.port
}
