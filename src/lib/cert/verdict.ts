import ipaddr from 'ipaddr.js'

import {type Endpoint, type FetchFailureKind, fetchServedChain, formatEndpoint, type HandshakeTiming} from './fetch-chain.js'
import {type CertificateFacts, parseCertificate, pemCertificates} from './parse.js'
import {verifyChain} from './verify-chain.js'

export const EXPIRY_WARNING_DAYS = 30
const DAY_MS = 24 * 60 * 60 * 1000

export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip'

/** How bad it is (status), what was found (state, for scripts and the report's cells), and words for people. */
export interface CheckOutcome<State extends string = string> {
  status: CheckStatus
  state: State
  message: string
}

/** No check could look at a certificate: none was presented, or it could not be parsed. */
export type NoCertificateState = 'no-certificate' | 'unparsable'
export type VipSanState = 'ip-san' | 'dns-san-only' | 'absent' | NoCertificateState
export type ValidityState = 'valid' | 'expiring-soon' | 'expired' | 'not-yet-valid' | NoCertificateState
export type TrustState = 'trusted' | 'untrusted' | 'no-ca' | 'ca-unreadable' | NoCertificateState

export type VipSanCheck = CheckOutcome<VipSanState>
export type ValidityCheck = CheckOutcome<ValidityState>
export type TrustCheck = CheckOutcome<TrustState>

export interface EndpointChecks {
  /** The VIP is an IP SAN: what a client dialling https://VIP:port matches against. */
  vipSan: VipSanCheck
  /** The served certificate is in its validity period (warn within EXPIRY_WARNING_DAYS of the end). */
  validity: ValidityCheck
  /** The chain leads to the given CA, so a kubeconfig pointed at the VIP verifies it. */
  trust: TrustCheck
}

/** ok: every check passed (or was skipped); warning: one warned; failed: one failed; unreachable: no certificate read. */
export type EndpointStatus = 'ok' | 'warning' | 'failed' | 'unreachable'

export interface EndpointReport {
  /** host:port, IPv6 in brackets. */
  endpoint: string
  host: string
  port: number
  status: EndpointStatus
  /** How long connecting and the handshake took (when a certificate was read). */
  timing?: HandshakeTiming
  /** Why no certificate could be read (status unreachable). */
  error?: {kind: FetchFailureKind; message: string}
  /** The certificate the server presented. */
  certificate?: CertificateFacts
  /** The other certificates the server sent, each the issuer of the one before. */
  chain?: CertificateFacts[]
  checks?: EndpointChecks
}

export interface CheckEndpointOptions {
  vip: string
  /** CA certificate(s) to verify the chain against, PEM; without it the trust check is skipped. */
  caPem?: string
  timeoutMs: number
  now?: Date
}

function canonicalIp(text: string): string | undefined {
  try {
    const address = ipaddr.parse(text)
    // Go's crypto/x509 treats an IPv4-mapped IPv6 SAN as the IPv4 address it maps.
    return address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress()
      ? (address as ipaddr.IPv6).toIPv4Address().toString()
      : address.toString()
  } catch {
    return undefined
  }
}

export function checkVipSan(certificate: CertificateFacts, vip: string): VipSanCheck {
  const wanted = canonicalIp(vip) ?? vip
  if (certificate.ipSans.some((san) => canonicalIp(san) === wanted))
    return {status: 'pass', state: 'ip-san', message: `VIP ${vip} is an IP SAN`}
  const ipList = certificate.ipSans.length > 0 ? `IP SANs: ${certificate.ipSans.join(', ')}` : 'the certificate has no IP SAN'
  if (certificate.dnsSans.some((san) => san.toLowerCase() === vip.toLowerCase())) {
    return {
      status: 'fail',
      state: 'dns-san-only',
      message: `VIP ${vip} is only a DNS SAN; clients match an IP address against IP SANs alone, so it must be an IP SAN (${ipList})`,
    }
  }
  return {status: 'fail', state: 'absent', message: `VIP ${vip} is not an IP SAN (${ipList})`}
}

export function checkValidity(certificate: CertificateFacts, now: Date): ValidityCheck {
  const notBefore = new Date(certificate.notBefore)
  const notAfter = new Date(certificate.notAfter)
  const day = (d: Date) => d.toISOString().slice(0, 10)
  if (now < notBefore) return {status: 'fail', state: 'not-yet-valid', message: `not valid yet: valid from ${certificate.notBefore}`}
  if (now > notAfter) return {status: 'fail', state: 'expired', message: `expired on ${certificate.notAfter}`}
  const daysLeft = Math.floor((notAfter.getTime() - now.getTime()) / DAY_MS)
  if (daysLeft < EXPIRY_WARNING_DAYS) {
    return {
      status: 'warn',
      state: 'expiring-soon',
      message: `expires in ${daysLeft} day${daysLeft === 1 ? '' : 's'}, on ${certificate.notAfter}`,
    }
  }
  return {status: 'pass', state: 'valid', message: `valid until ${day(notAfter)} (${daysLeft} days)`}
}

export function checkTrust(chain: Uint8Array[], caPem: string | undefined, now: Date): TrustCheck {
  if (caPem === undefined) return {status: 'skip', state: 'no-ca', message: 'not checked: no CA certificate to verify against'}
  let anchors: Buffer[]
  try {
    anchors = pemCertificates(caPem)
  } catch (error) {
    return {status: 'fail', state: 'ca-unreadable', message: `cannot read the CA certificate: ${(error as Error).message}`}
  }
  const trust = verifyChain(chain, anchors, now)
  if (!trust.trusted) return {status: 'fail', state: 'untrusted', message: `not trusted: ${trust.reason}`}
  const [, ...issuers] = trust.path
  const ca = issuers.at(-1)
  const through = issuers.slice(0, -1)
  return {
    status: 'pass',
    state: 'trusted',
    message: ca
      ? `issued by the CA ${JSON.stringify(ca)}${through.length ? ` through ${through.map((s) => JSON.stringify(s)).join(', ')}` : ''}`
      : 'the certificate is itself the CA',
  }
}

/** Each check with its name, typed (Object.entries of an interface would be untyped). */
export function checkEntries(checks: EndpointChecks): Array<[keyof EndpointChecks, CheckOutcome]> {
  return [
    ['vipSan', checks.vipSan],
    ['validity', checks.validity],
    ['trust', checks.trust],
  ]
}

function statusOf(checks: EndpointChecks): EndpointStatus {
  const all = checkEntries(checks).map(([, outcome]) => outcome)
  if (all.some((c) => c.status === 'fail')) return 'failed'
  if (all.some((c) => c.status === 'warn')) return 'warning'
  return 'ok'
}

/** The verdict on a chain already read (DER, served certificate first): pure, for callers with their own chain. */
export function judgeServedChain(
  chain: Uint8Array[],
  options: {vip: string; caPem?: string; now?: Date},
): Pick<EndpointReport, 'status' | 'certificate' | 'chain' | 'checks'> {
  const now = options.now ?? new Date()
  let parsed: CertificateFacts[]
  try {
    parsed = chain.map(parseCertificate)
  } catch (error) {
    const unreadable = {
      status: 'fail' as const,
      state: 'unparsable' as const,
      message: `cannot parse the served certificate: ${(error as Error).message}`,
    }
    return {status: 'failed', checks: {vipSan: unreadable, validity: unreadable, trust: unreadable}}
  }
  const [certificate, ...issuers] = parsed
  if (!certificate) {
    const none = {status: 'fail' as const, state: 'no-certificate' as const, message: 'the server presented no certificate'}
    return {status: 'failed', checks: {vipSan: none, validity: none, trust: none}}
  }
  const checks: EndpointChecks = {
    vipSan: checkVipSan(certificate, options.vip),
    validity: checkValidity(certificate, now),
    trust: checkTrust(chain, options.caPem, now),
  }
  return {status: statusOf(checks), certificate, chain: issuers, checks}
}

/**
 * Reads the certificate one API server endpoint serves and judges it for the VIP. The one check karp
 * check-cert, kubeconfig rewrite and status share; an unreachable endpoint is a report, never a throw.
 */
export async function checkEndpoint(endpoint: Endpoint, options: CheckEndpointOptions): Promise<EndpointReport> {
  const where = {endpoint: formatEndpoint(endpoint), host: endpoint.host, port: endpoint.port}
  const fetched = await fetchServedChain(endpoint, {timeoutMs: options.timeoutMs})
  if (!fetched.ok) return {...where, status: 'unreachable', error: {kind: fetched.kind, message: fetched.message}}
  return {...where, ...judgeServedChain(fetched.chain, options), timing: fetched.timing}
}
