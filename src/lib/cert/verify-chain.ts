import {X509Certificate} from 'node:crypto'

import {parseCertificate} from './parse.js'

export type ChainTrust =
  /** path: subjects from the served certificate up to the CA that anchors it. */
  {trusted: true; path: string[]} | {trusted: false; reason: string}

const MAX_DEPTH = 8

function subjectOf(cert: X509Certificate): string {
  return parseCertificate(cert.raw).subject
}

// Name and signature only, as chain building matches candidates; whether the issuer may act as a CA is
// judged after, so that the message can say so.
function signs(issuer: X509Certificate, cert: X509Certificate): boolean {
  try {
    return cert.issuer === issuer.subject && cert.verify(issuer.publicKey)
  } catch {
    return false
  }
}

function timeProblem(cert: X509Certificate, now: Date): string | undefined {
  if (now < new Date(cert.validFrom)) return `is not valid before ${new Date(cert.validFrom).toISOString()}`
  if (now > new Date(cert.validTo)) return `expired on ${new Date(cert.validTo).toISOString()}`
  return undefined
}

/**
 * Whether the served chain leads to one of the CA certificates, as a client holding only that CA would
 * judge it: each link signed by the next, intermediates taken only from what the server sent and only if
 * they are CAs in their validity period. The served certificate's own validity is judged elsewhere.
 * Verified with node:crypto because node-forge verifies RSA signatures only.
 */
export function verifyChain(served: Uint8Array[], caCertificates: Uint8Array[], now: Date = new Date()): ChainTrust {
  if (served.length === 0) return {trusted: false, reason: 'the server presented no certificate'}
  if (caCertificates.length === 0) return {trusted: false, reason: 'the CA bundle holds no certificate'}
  const anchors = caCertificates.map((der) => new X509Certificate(der))
  const [leaf, ...intermediates] = served.map((der) => new X509Certificate(der))
  const path = [leaf as X509Certificate]
  const caNames = anchors
    .map(subjectOf)
    .map((s) => JSON.stringify(s))
    .join(', ')
  for (let current = leaf as X509Certificate; path.length <= MAX_DEPTH;) {
    const names = path.map(subjectOf)
    if (anchors.some((a) => a.raw.equals(current.raw))) return {trusted: true, path: names}
    const anchor = anchors.find((a) => signs(a, current))
    if (anchor) {
      const problem = timeProblem(anchor, now)
      if (problem) return {trusted: false, reason: `the CA ${JSON.stringify(subjectOf(anchor))} ${problem}`}
      return {trusted: true, path: [...names, subjectOf(anchor)]}
    }
    const next = intermediates.find((i) => !path.includes(i) && signs(i, current))
    if (!next) {
      const selfSigned = signs(current, current)
      return {
        trusted: false,
        reason: selfSigned
          ? `${JSON.stringify(subjectOf(current))} is self-signed, not issued by the CA ${caNames}`
          : `${JSON.stringify(subjectOf(current))} is issued by ${JSON.stringify(parseCertificate(current.raw).issuer)}, ` +
            `which is neither the CA ${caNames} nor a certificate the server sent`,
      }
    }
    if (!next.ca) return {trusted: false, reason: `intermediate ${JSON.stringify(subjectOf(next))} is not a CA certificate`}
    const problem = timeProblem(next, now)
    if (problem) return {trusted: false, reason: `intermediate ${JSON.stringify(subjectOf(next))} ${problem}`}
    path.push(next)
    current = next
  }
  return {trusted: false, reason: `no path to the CA within ${MAX_DEPTH} certificates`}
}
