// The lab's and the test cluster's PKI: CAs, and serving and client certificates signed by them. Keys come from node:crypto
// (native, fast); node-forge only builds and signs the certificates.
import {constants, generateKeyPairSync, privateEncrypt, randomBytes} from 'node:crypto'
import {writeFileSync} from 'node:fs'
import {isIP} from 'node:net'
import forge from 'node-forge'

export interface KeyPair {
  certPem: string
  keyPem: string
}

export interface CertificateAuthority extends KeyPair {
  cert: forge.pki.Certificate
  key: forge.pki.rsa.PrivateKey
}

export function rsaKeyPem(): {privatePem: string; publicPem: string} {
  const {privateKey, publicKey} = generateKeyPairSync('rsa', {modulusLength: 2048})
  return {
    privatePem: privateKey.export({type: 'pkcs8', format: 'pem'}).toString(),
    publicPem: publicKey.export({type: 'spki', format: 'pem'}).toString(),
  }
}

function newCertificate(publicPem: string, commonName: string, organizations: string[]): forge.pki.Certificate {
  const cert = forge.pki.createCertificate()
  cert.publicKey = forge.pki.publicKeyFromPem(publicPem)
  // A positive serial: the leading byte keeps the DER INTEGER's sign bit clear.
  cert.serialNumber = '01' + randomBytes(15).toString('hex')
  const now = Date.now()
  cert.validity.notBefore = new Date(now - 60 * 60 * 1000)
  cert.validity.notAfter = new Date(now + 365 * 24 * 60 * 60 * 1000)
  cert.setSubject([...organizations.map((value) => ({shortName: 'O', value})), {shortName: 'CN', value: commonName}])
  return cert
}

export function createCa(commonName = 'karp-test-ca'): CertificateAuthority {
  const {privatePem, publicPem} = rsaKeyPem()
  const cert = newCertificate(publicPem, commonName, [])
  cert.setIssuer(cert.subject.attributes)
  cert.setExtensions([
    {name: 'basicConstraints', cA: true, critical: true},
    {name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true},
    {name: 'subjectKeyIdentifier'},
  ])
  const key = forge.pki.privateKeyFromPem(privatePem)
  cert.sign(nativeSigner(privatePem), forge.md.sha256.create())
  return {cert, key, certPem: forge.pki.certificateToPem(cert), keyPem: privatePem}
}

// RFC 8017 9.2, note 1: the DER DigestInfo of a SHA-256 digest, up to the digest itself.
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex')

/**
 * What forge's cert.sign() needs of a key: sign(md), an RSASSA-PKCS1-v1_5 signature of md's digest. forge
 * computes it in plain JavaScript (about 40 ms here); node:crypto does the same padding and RSA natively.
 */
function nativeSigner(keyPem: string): forge.pki.rsa.PrivateKey {
  const sign = (md: forge.md.MessageDigest) => {
    const digestInfo = Buffer.concat([SHA256_DIGEST_INFO, Buffer.from(md.digest().getBytes(), 'binary')])
    return privateEncrypt({key: keyPem, padding: constants.RSA_PKCS1_PADDING}, digestInfo).toString('binary')
  }
  return {sign} as unknown as forge.pki.rsa.PrivateKey
}

function signedBy(ca: CertificateAuthority, cert: forge.pki.Certificate, extensions: object[]): string {
  cert.setIssuer(ca.cert.subject.attributes)
  cert.setExtensions([
    {name: 'basicConstraints', cA: false},
    {name: 'authorityKeyIdentifier', keyIdentifier: ca.cert.generateSubjectKeyIdentifier().getBytes()},
    ...extensions,
  ])
  cert.sign(nativeSigner(ca.keyPem), forge.md.sha256.create())
  return forge.pki.certificateToPem(cert)
}

export interface ServingCertOptions {
  /** Also valid as a client certificate (etcd's server and peer certificates: members dial each other with them). */
  clientAuth?: boolean
}

/** A TLS server certificate; each SAN goes in as an IP address when it parses as one, else as a DNS name. */
export function issueServingCert(ca: CertificateAuthority, commonName: string, sans: string[], opts: ServingCertOptions = {}): KeyPair {
  const {privatePem, publicPem} = rsaKeyPem()
  const altNames = [...new Set(sans)].map((san) => (isIP(san) ? {type: 7, ip: san} : {type: 2, value: san}))
  const certPem = signedBy(ca, newCertificate(publicPem, commonName, []), [
    {name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true},
    {name: 'extKeyUsage', serverAuth: true, clientAuth: opts.clientAuth === true},
    {name: 'subjectAltName', altNames},
  ])
  return {certPem, keyPem: privatePem}
}

/** A client certificate: Kubernetes reads the user from CN and the groups from O. */
export function issueClientCert(ca: CertificateAuthority, user: string, groups: string[] = []): KeyPair {
  const {privatePem, publicPem} = rsaKeyPem()
  const certPem = signedBy(ca, newCertificate(publicPem, user, groups), [
    {name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true},
    {name: 'extKeyUsage', clientAuth: true},
  ])
  return {certPem, keyPem: privatePem}
}

/** Writes `<base>.crt` and `<base>.key` (0600) and returns their paths. */
export function writeKeyPair(base: string, pair: KeyPair): {certFile: string; keyFile: string} {
  const certFile = `${base}.crt`
  const keyFile = `${base}.key`
  writeFileSync(certFile, pair.certPem)
  writeFileSync(keyFile, pair.keyPem, {mode: 0o600})
  return {certFile, keyFile}
}
