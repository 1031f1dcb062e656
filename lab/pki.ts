// The test cluster's PKI: one CA, serving and client certificates signed by it. Keys come from node:crypto
// (native, fast); node-forge only builds and signs the certificates.
import {generateKeyPairSync, randomBytes} from 'node:crypto'
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
  cert.setSubject([
    ...organizations.map((value) => ({shortName: 'O', value})),
    {shortName: 'CN', value: commonName},
  ])
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
  cert.sign(key, forge.md.sha256.create())
  return {cert, key, certPem: forge.pki.certificateToPem(cert), keyPem: privatePem}
}

function signedBy(ca: CertificateAuthority, cert: forge.pki.Certificate, extensions: object[]): string {
  cert.setIssuer(ca.cert.subject.attributes)
  cert.setExtensions([
    {name: 'basicConstraints', cA: false},
    {name: 'authorityKeyIdentifier', keyIdentifier: ca.cert.generateSubjectKeyIdentifier().getBytes()},
    ...extensions,
  ])
  cert.sign(ca.key, forge.md.sha256.create())
  return forge.pki.certificateToPem(cert)
}

/** A TLS server certificate; each SAN goes in as an IP address when it parses as one, else as a DNS name. */
export function issueServingCert(ca: CertificateAuthority, commonName: string, sans: string[]): KeyPair {
  const {privatePem, publicPem} = rsaKeyPem()
  const altNames = [...new Set(sans)].map((san) => (isIP(san) ? {type: 7, ip: san} : {type: 2, value: san}))
  const certPem = signedBy(ca, newCertificate(publicPem, commonName, []), [
    {name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true},
    {name: 'extKeyUsage', serverAuth: true},
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
