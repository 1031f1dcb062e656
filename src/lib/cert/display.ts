import {formatTable} from '../table.js'
import type {CheckCertResult, TargetReport} from './check-cert.js'
import {checkEntries} from './verdict.js'

function target(report: TargetReport): string {
  if (report.role === 'vip') return 'VIP'
  if (report.role === 'node') return `node ${report.node ?? ''}`
  return 'server'
}

function vipSanCell(report: TargetReport): string {
  const check = report.checks?.vipSan
  if (!check) return '-'
  if (check.status === 'pass') return 'yes'
  return check.state === 'dns-san-only' ? 'NO (DNS only)' : 'NO'
}

function expiresCell(report: TargetReport): string {
  const check = report.checks?.validity
  if (!report.certificate || !check) return '-'
  const day = report.certificate.notAfter.slice(0, 10)
  if (check.status === 'fail') return check.state === 'expired' ? `${day} (EXPIRED)` : `${day} (NOT YET VALID)`
  if (check.status === 'warn') return `${day} (SOON)`
  return day
}

function trustCell(report: TargetReport): string {
  const status = report.checks?.trust.status
  if (status === 'pass') return 'trusted'
  if (status === 'fail') return 'UNTRUSTED'
  if (status === 'skip') return 'not checked'
  return '-'
}

const STATUS_CELL = {ok: 'ok', warning: 'warning', failed: 'FAILED', unreachable: 'UNREACHABLE'} as const

function indent(text: string, by: string): string {
  return text
    .split('\n')
    .map((line) => by + line)
    .join('\n')
}

/** The human report: one row per endpoint, then what is wrong where, then how to fix a missing VIP. */
export function formatCertReport(result: CheckCertResult): string[] {
  const lines = formatTable(
    ['ENDPOINT', 'TARGET', 'VIP SAN', 'EXPIRES', 'CA', 'STATUS'],
    result.endpoints.map((r) => [r.endpoint, target(r), vipSanCell(r), expiresCell(r), trustCell(r), STATUS_CELL[r.status]]),
  )
  const findings: string[] = []
  for (const report of result.endpoints) {
    const where = `${report.endpoint} (${target(report)})`
    if (report.error) {
      const why = report.role === 'vip' ? ' (is a karp agent holding the VIP? see karp status)' : ''
      findings.push(`${where}: unreachable: ${report.error.message}${why}`)
    }
    for (const [, check] of report.checks ? checkEntries(report.checks) : []) {
      if (check.status === 'fail' || check.status === 'warn') findings.push(`${where}: ${check.message}`)
    }
  }
  if (findings.length > 0) lines.push('', ...findings)
  if (result.advice) {
    const how = result.distribution.source === 'nodes' ? ` (${result.distribution.evidence})` : ''
    const named = result.distribution.id === 'unknown' ? 'a distribution karp does not recognise' : result.distribution.name
    lines.push('', `To add the VIP on ${named}${how}: ${result.advice.summary}`)
    result.advice.steps.forEach((step, i) => lines.push(indent(step, '     ').replace(/^ {5}/, `  ${i + 1}. `)))
    lines.push('Then run karp check-cert again.')
  }
  const {ok, warning, failed, unreachable} = result.summary
  const counts = [
    `${ok + warning} of ${result.endpoints.length} endpoints fine`,
    failed && `${failed} failed`,
    unreachable && `${unreachable} unreachable`,
  ]
  lines.push('', `VIP ${result.vip}: ${counts.filter(Boolean).join(', ')}; CA: ${result.ca.description}`)
  return lines
}
