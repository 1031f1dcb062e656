import {ux} from '@oclif/core'

import {escapeControl} from '../echo.js'
import {formatTable} from '../table.js'
import type {StaticAgentReport, StatusResult, VipProbe} from './status.js'
import type {AgentStatus, InstallStatus} from './verdict.js'

/** Ages as kubectl prints them: 45s, 12m, 3h, 5d. */
export function formatAge(seconds: number): string {
  if (seconds < 120) return `${seconds}s`
  if (seconds < 2 * 3600) return `${Math.floor(seconds / 60)}m`
  if (seconds < 2 * 86_400) return `${Math.floor(seconds / 3600)}h`
  return `${Math.floor(seconds / 86_400)}d`
}

const STATE_COLOUR = {healthy: 'green', degraded: 'yellow', down: 'red'} as const

function roleCell(agent: AgentStatus): string {
  const pod = agent.pod
  if (!pod) return '-'
  if (pod.stale) return ux.colorize('yellow', `${pod.role} (stale)`)
  return pod.role === 'master' ? ux.colorize('green', 'master') : pod.role
}

function probeLine(probe: VipProbe | undefined): string {
  if (!probe) return 'not probed (--no-probe)'
  if (!probe.reachable) return ux.colorize('red', `unreachable from here: ${probe.error?.message}`)
  const timing = `TCP connect ${probe.connectMs?.toFixed(1)} ms, TLS handshake ${probe.handshakeMs?.toFixed(1)} ms`
  const san =
    probe.vipSan?.status === 'pass' ? 'certificate carries the VIP' : ux.colorize('red', probe.vipSan?.message ?? 'certificate not checked')
  return `${timing}; ${san}`
}

function installLines(install: InstallStatus, now: Date, probe: VipProbe | undefined): string[] {
  const header = `${install.namespace}/${install.name}   VIP ${install.vip ? escapeControl(install.vip) : '(unknown)'} (vhid ${install.vhid ?? '?'}, port ${install.apiPort})   ${ux.colorize(STATE_COLOUR[install.state], install.state.toUpperCase())}`
  const holder =
    install.holder === 'one'
      ? `holder: ${install.holders[0]}`
      : install.holder === 'none'
        ? ux.colorize('red', 'holder: none (outage)')
        : install.holder === 'static-pod'
          ? `holder: a static-pod agent (they report no role; \`ip -brief address show to ${escapeControl(install.vip ?? '')}/32\` on a node tells)`
          : ux.colorize('red', `holder: SPLIT BRAIN (${install.holders.join(', ')})`)
  const ds = install.daemonSet
  const lines = [
    header,
    `  ${holder}`,
    `  DaemonSet: ${ds ? `${ds.desired} desired, ${ds.ready} ready, ${ds.updated} updated, ${ds.available} available` : ux.colorize('red', 'missing')}`,
    `  VIP from here: ${probeLine(probe)}`,
    '',
  ]
  const rows = install.agents.map((a) => {
    const since = a.pod?.roleChangedAt
      ? formatAge(Math.max(0, Math.round((now.getTime() - new Date(a.pod.roleChangedAt).getTime()) / 1000)))
      : '-'
    // As kubectl get nodes shows a cordoned node.
    const nodeReady =
      a.nodeReady === null
        ? 'gone'
        : (a.nodeReady ? 'Ready' : ux.colorize('red', 'NotReady')) + (a.cordoned ? ux.colorize('yellow', ',SchedulingDisabled') : '')
    return [
      a.selected ? a.node : `${a.node} (not selected)`,
      nodeReady,
      a.pod?.name ?? ux.colorize('red', '<none>'),
      a.pod ? (a.pod.crashLooping ? ux.colorize('red', 'CrashLoopBackOff') : a.pod.phase) : '-',
      a.pod ? (a.pod.ready ? 'true' : ux.colorize('yellow', 'false')) : '-',
      a.pod ? String(a.pod.restarts) : '-',
      a.pod ? formatAge(a.pod.age) : '-',
      roleCell(a),
      since,
    ]
  })
  lines.push(
    ...formatTable(['NODE', 'STATUS', 'POD', 'PHASE', 'READY', 'RESTARTS', 'AGE', 'ROLE', 'ROLE SINCE'], rows).map((l) => `  ${l}`),
  )
  if (install.problems.length > 0) {
    lines.push('', '  Problems:', ...install.problems.map((p) => `  - ${escapeControl(p)}`))
  }
  if (install.warnings) {
    lines.push('', '  Warnings:', ...install.warnings.map((w) => ux.colorize('yellow', `  - ${escapeControl(w)}`)))
  }
  if (install.events.length > 0) {
    lines.push(
      '',
      '  Recent agent events:',
      ...formatTable(
        ['TIME', 'POD', 'REASON', 'MESSAGE'],
        install.events.map((e) => [e.time, e.pod, e.reason, e.message].map((cell) => escapeControl(String(cell)))),
      ).map((l) => `  ${l}`),
    )
  }
  return lines
}

/** Static-pod agents have no API credentials: their pods say where they run, not which one holds the VIP. */
function staticAgentLines(agents: StaticAgentReport[]): string[] {
  const rows = agents.map((a) => [
    escapeControl(a.node),
    escapeControl(a.pod) + (a.mirror ? '' : ux.colorize('yellow', ' (no mirror pod)')),
    escapeControl(a.phase),
    a.ready ? 'true' : ux.colorize('yellow', 'false'),
    formatAge(a.age),
    a.vip ? `${escapeControl(a.vip)} (vhid ${a.vhid ?? '?'})` : '-',
    escapeControl(a.manifest ?? '-'),
    a.install ?? '-',
  ])
  return [
    'Static-pod agents (karp bootstrap; without API credentials they report no role):',
    ...formatTable(['NODE', 'POD', 'PHASE', 'READY', 'AGE', 'VIP', 'MANIFEST', 'INSTALL'], rows).map((l) => `  ${l}`),
    '',
  ]
}

/** The human report: one block per install, the static-pod agents, then the overall verdict. */
export function formatStatus(result: StatusResult, now: Date): string[] {
  const lines = result.installs.flatMap((install) => [...installLines(install, now, install.vipProbe), ''])
  if (result.staticAgents) lines.push(...staticAgentLines(result.staticAgents))
  // It may quote the static-pod agents' annotations, which anyone who can create a pod in kube-system writes.
  lines.push(escapeControl(result.summary))
  return lines
}
