import ipaddr from 'ipaddr.js'

import {echo} from '../echo.js'
import {parseImageReference} from './image-reference.js'

/**
 * Each validator takes the raw text a user gave for one flag and returns the typed value or a problem
 * sentence that names the flag, the value and what is allowed. Prompts and flags share them.
 */
export type Checked<T> = {ok: true; value: T} | {ok: false; problem: string}

const ok = <T>(value: T): Checked<T> => ({ok: true, value})
const bad = <T>(flag: string, value: string, allowed: string): Checked<T> => ({
  ok: false,
  problem: `invalid --${flag} ${echo(value)}: ${allowed}`,
})

// Ranges a floating API server address can never sit in (ipaddr.js range names).
const UNUSABLE_VIP_RANGES = new Set(['unspecified', 'broadcast', 'multicast', 'linkLocal', 'loopback', 'reserved'])

export function checkVip(value: string, flag = 'vip'): Checked<string> {
  const allowed = 'expected one IPv4 unicast address such as 192.168.1.250 (no prefix length, not IPv6)'
  if (!ipaddr.IPv4.isValidFourPartDecimal(value)) return bad(flag, value, allowed)
  const address = ipaddr.IPv4.parse(value)
  const range = address.range()
  if (UNUSABLE_VIP_RANGES.has(range)) return bad(flag, value, `${range} addresses cannot be a VIP; ${allowed}`)
  return ok(address.toString())
}

function checkInteger(flag: string, value: string, min: number, max: number): Checked<number> {
  const allowed = `expected a whole number from ${min} to ${max}`
  if (!/^\d+$/.test(value.trim())) return bad(flag, value, allowed)
  const n = Number(value.trim())
  return n >= min && n <= max ? ok(n) : bad(flag, value, allowed)
}

export const checkVhid = (value: string) => checkInteger('vhid', value, 1, 255)
export const checkAdvbase = (value: string) => checkInteger('advbase', value, 1, 255)
export const checkPort = (value: string, flag = 'port') => checkInteger(flag, value, 1, 65535)
// A /31 or /32 leaves no room for a VIP beside the nodes' own addresses.
export const checkSubnetPrefix = (value: string) => checkInteger('subnet-prefix', value, 1, 30)

/** ucarp reads at most 19 bytes of password from its --passfile, up to the first newline. */
export const MAX_PASSWORD_BYTES = 19

export function checkPassword(value: string): Checked<string> {
  // A secret, even a mistyped one, is never echoed: the message says what is wrong with it instead.
  const refuse = (why: string): Checked<string> => ({ok: false, problem: `invalid --password (value not shown): ${why}`})
  if (value === '') return refuse(`it is empty; expected 1 to ${MAX_PASSWORD_BYTES} printable ASCII characters`)
  const unprintable = [...value].findIndex((c) => !/^[\x20-\x7e]$/.test(c))
  if (unprintable >= 0) {
    return refuse(
      `character ${unprintable + 1} is not printable ASCII; expected 1 to ${MAX_PASSWORD_BYTES} printable ASCII characters (no newline or control character)`,
    )
  }
  if (Buffer.byteLength(value) > MAX_PASSWORD_BYTES)
    return refuse(`${Buffer.byteLength(value)} bytes is too long; ucarp accepts at most ${MAX_PASSWORD_BYTES}`)
  return ok(value)
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/

export function checkDnsLabel(flag: string, value: string): Checked<string> {
  return DNS_LABEL.test(value)
    ? ok(value)
    : bad(flag, value, 'expected a DNS label: at most 63 lowercase letters, digits and "-", starting and ending with a letter or digit')
}

const LABEL_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$/
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/

export interface NodeSelector {
  key: string
  value: string
}

export function checkNodeSelector(value: string): Checked<NodeSelector> {
  const allowed = 'expected key=value with a Kubernetes label key and value, e.g. node-role.kubernetes.io/control-plane='
  const eq = value.indexOf('=')
  if (eq < 0) return bad('node-selector', value, allowed)
  const key = value.slice(0, eq)
  const labelValue = value.slice(eq + 1)
  const slash = key.lastIndexOf('/')
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined
  const name = slash >= 0 ? key.slice(slash + 1) : key
  const keyOk = LABEL_NAME.test(name) && (prefix === undefined || (prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix)))
  if (!keyOk || !LABEL_VALUE.test(labelValue)) return bad('node-selector', value, allowed)
  return ok({key, value: labelValue})
}

/**
 * Linux accepts 1 to 15 bytes without "/", ":" or whitespace, other than "." and ".." (dev_valid_name);
 * karp takes the portable subset and no leading "-", so the name can never read as an option where the
 * agent passes it to ip and ucarp.
 */
export function checkInterface(value: string): Checked<string> {
  return /^[A-Za-z0-9_.@][A-Za-z0-9_.@-]{0,14}$/.test(value) && value !== '.' && value !== '..'
    ? ok(value)
    : bad('interface', value, 'expected a network interface name of 1 to 15 letters, digits, ".", "-", "_" or "@", not starting with "-"')
}

export function checkImage(value: string): Checked<string> {
  const parsed = parseImageReference(value)
  return parsed.ok
    ? ok(value)
    : bad(
        'image',
        value,
        `expected an image reference [registry[:port]/]repository[:tag][@sha256:<64 hex digits>] such as ghcr.io/karp-vip/karp-agent:v0.1.0; ${parsed.why}`,
      )
}

const DURATION_UNITS_MS: Record<string, number> = {s: 1000, m: 60_000, h: 3_600_000}
const MAX_DURATION_MS = 24 * 3_600_000
const DURATION_FORMS = 'a duration from 1s to 24h such as 90s, 1.5m, 5m or 1h30m (units h, m, s; a bare number is seconds)'

/** Milliseconds of a duration in kubectl's (Go's) notation, restricted to h, m and s; undefined if not one. */
function durationMs(text: string): number | undefined {
  if (text.length > 40) return undefined
  if (/^\d+(?:\.\d+)?$/.test(text)) return Number(text) * 1000
  if (!/^(?:\d+(?:\.\d+)?[hms])+$/.test(text)) return undefined
  let ms = 0
  for (const [, n, unit] of text.matchAll(/(\d+(?:\.\d+)?)([hms])/g)) ms += Number(n) * (DURATION_UNITS_MS[unit as string] as number)
  return ms
}

/**
 * A duration as kubectl takes it (90s, 5m, 1h30m; a bare number is seconds), in whole milliseconds.
 * Every karp timeout waits on a network or a rollout, so less than a second is refused, never rounded to 0.
 */
export function checkDuration(flag: string, value: string): Checked<number> {
  const ms = durationMs(value)
  return ms !== undefined && ms >= 1000 && ms <= MAX_DURATION_MS ? ok(Math.round(ms)) : bad(flag, value, `expected ${DURATION_FORMS}`)
}

/** --request-timeout: a duration as checkDuration, or 0 (as kubectl: no deadline); 0 comes back as 0. */
export function checkRequestTimeout(value: string): Checked<number> {
  const ms = durationMs(value)
  if (ms === 0) return ok(0)
  return ms !== undefined && ms >= 1000 && ms <= MAX_DURATION_MS
    ? ok(Math.round(ms))
    : bad('request-timeout', value, `expected ${DURATION_FORMS}, or 0 for none`)
}
