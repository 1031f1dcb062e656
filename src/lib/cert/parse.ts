import {createHash, X509Certificate} from 'node:crypto'

import ipaddr from 'ipaddr.js'
import forge from 'node-forge'

/** What karp reads from one certificate; JSON-ready (dates as ISO 8601). */
export interface CertificateFacts {
  /** Distinguished name attributes as written, e.g. "CN=kube-apiserver". */
  subject: string
  issuer: string
  /** Hex, as `openssl x509 -serial` prints it. */
  serialNumber: string
  notBefore: string
  notAfter: string
  /** IP SANs, IPv6 in RFC 5952 form. */
  ipSans: string[]
  dnsSans: string[]
  isCa: boolean
  sha256Fingerprint: string
}

interface ParsedExtension {
  name?: string
  cA?: boolean
  altNames?: Array<{type: number; value: string; ip?: string}>
}

interface RdnAttribute {
  type: string
  value: string
  shortName?: string
  name?: string
}

// Exported by node-forge's x509 module but missing from @types/node-forge.
const forgePki = forge.pki as unknown as {
  certificateExtensionsFromAsn1(extensions: forge.asn1.Asn1): ParsedExtension[]
  RDNAttributesAsArray(rdn: forge.asn1.Asn1): RdnAttribute[]
}

const {Class, Type} = forge.asn1
// Compared as numbers: forge's typings declare tagClass and type as enums, but parsing gives plain numbers.
const CONTEXT_SPECIFIC = Number(Class.CONTEXT_SPECIFIC)
const GENERAL_NAME_DNS = 2
const GENERAL_NAME_IP = 7

function children(node: forge.asn1.Asn1 | undefined, what: string): forge.asn1.Asn1[] {
  if (!node || !Array.isArray(node.value)) throw new Error(`not an X.509 certificate: ${what} is missing`)
  return node.value
}

function distinguishedName(rdn: forge.asn1.Asn1): string {
  return forgePki
    .RDNAttributesAsArray(rdn)
    .map((a) => `${a.shortName ?? a.name ?? a.type}=${a.value}`)
    .join(', ')
}

function asnTime(node: forge.asn1.Asn1 | undefined): Date {
  if (node?.type === Type.UTCTIME) return forge.asn1.utcTimeToDate(node.value as string)
  if (node?.type === Type.GENERALIZEDTIME) return forge.asn1.generalizedTimeToDate(node.value as string)
  throw new Error('not an X.509 certificate: validity is not a UTCTime or GeneralizedTime')
}

function normalizeIp(ip: string): string {
  try {
    return ipaddr.parse(ip).toString()
  } catch {
    return ip
  }
}

/**
 * Parses a DER certificate with node-forge. The TBSCertificate is walked field by field rather than through
 * forge.pki.certificateFromAsn1, which throws on any key that is not RSA, and k3s, RKE2 and Talos serve
 * ECDSA certificates by default.
 */
export function parseCertificate(der: Uint8Array): CertificateFacts {
  const bytes = Buffer.from(der)
  const certificate = forge.asn1.fromDer(forge.util.createBuffer(bytes.toString('binary')))
  let fields = children(children(certificate, 'the certificate')[0], 'TBSCertificate')
  const first = fields[0]
  const explicitVersion = first !== undefined && Number(first.tagClass) === CONTEXT_SPECIFIC && Number(first.type) === 0
  if (explicitVersion) fields = fields.slice(1)
  const [serial, , issuer, validity, subject, , ...optional] = fields
  if (!serial || !issuer || !subject) throw new Error('not an X.509 certificate: TBSCertificate is incomplete')
  const [notBefore, notAfter] = children(validity, 'validity')
  const wrappedExtensions = optional.find((f) => Number(f.tagClass) === CONTEXT_SPECIFIC && Number(f.type) === 3)
  const extensions = wrappedExtensions ? forgePki.certificateExtensionsFromAsn1(wrappedExtensions) : []
  const altNames = extensions.find((e) => e.name === 'subjectAltName')?.altNames ?? []
  return {
    subject: distinguishedName(subject),
    issuer: distinguishedName(issuer),
    serialNumber: forge.util.bytesToHex(serial.value as string).toUpperCase(),
    notBefore: asnTime(notBefore).toISOString(),
    notAfter: asnTime(notAfter).toISOString(),
    ipSans: altNames.filter((n) => n.type === GENERAL_NAME_IP && n.ip).map((n) => normalizeIp(n.ip as string)),
    dnsSans: altNames.filter((n) => n.type === GENERAL_NAME_DNS).map((n) => n.value),
    isCa: extensions.find((e) => e.name === 'basicConstraints')?.cA === true,
    sha256Fingerprint: createHash('sha256')
      .update(bytes)
      .digest('hex')
      .toUpperCase()
      .replace(/(..)(?!$)/g, '$1:'),
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g

/** Every certificate in a PEM bundle (a kubeconfig's CA may hold several), as DER. */
export function pemCertificates(pem: string): Buffer[] {
  return (pem.match(PEM_CERTIFICATE) ?? []).map((block) => Buffer.from(new X509Certificate(block).raw))
}
