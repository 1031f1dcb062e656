import {isIP, isIPv4} from 'node:net'

import type {V1Node} from '@kubernetes/client-node'

import {checkPort, type Checked} from '../config/validate.js'
import {KARP_SELECTOR, VIP_ANNOTATION} from '../constants.js'
import {echo} from '../echo.js'
import {UsageError} from '../errors.js'
import type {KarpInstall} from '../kube/karp-installs.js'
import {CONTROL_PLANE_SELECTION, isControlPlaneLabels} from '../manifests/node-selection.js'
import type {Endpoint} from './fetch-chain.js'

/** One API server endpoint to check, and why it is on the list. */
export interface CertTarget extends Endpoint {
  /** vip: the floating address; node: a control-plane node's InternalIP; server: given with --server. */
  role: 'vip' | 'node' | 'server'
  node?: string
}

/** The labels of API server nodes, as the agent's default affinity selects them. */
export function isControlPlaneNode(node: V1Node): boolean {
  return isControlPlaneLabels(node.metadata?.labels ?? {})
}

/**
 * The VIP and every control-plane node's InternalIP (IPv4 preferred), all on one port: any of these nodes
 * can come to hold the VIP, so each one's certificate must carry it.
 */
export function clusterTargets(vip: string, nodes: V1Node[], port: number): {targets: CertTarget[]; warnings: string[]} {
  const targets: CertTarget[] = [{role: 'vip', host: vip, port}]
  const warnings: string[] = []
  const controlPlane = nodes.filter(isControlPlaneNode).sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''))
  if (controlPlane.length === 0) warnings.push(`no control-plane node found (${CONTROL_PLANE_SELECTION}); only the VIP was checked`)
  for (const node of controlPlane) {
    const name = node.metadata?.name ?? ''
    const internal = (node.status?.addresses ?? []).filter((a) => a.type === 'InternalIP').map((a) => a.address)
    const address = internal.find((a) => isIPv4(a)) ?? internal.find((a) => isIP(a) !== 0)
    if (address === undefined) {
      warnings.push(`control-plane node ${name} has no InternalIP; its certificate was not checked`)
      continue
    }
    if (targets.some((t) => t.host === address)) continue
    targets.push({role: 'node', node: name, host: address, port})
  }
  return {targets, warnings}
}

function describeInstall(install: KarpInstall): string {
  return `${install.namespace}/${install.name} (VIP ${install.vip ?? 'unknown'})`
}

/** The karp install whose VIP to check: the only one, or the one --name and --namespace pick. */
export function chooseInstall(installs: KarpInstall[], want: {namespace?: string; name?: string}): KarpInstall & {vip: string} {
  const matching = installs.filter(
    (i) => (want.namespace === undefined || i.namespace === want.namespace) && (want.name === undefined || i.name === want.name),
  )
  const picked = [want.namespace && `--namespace ${want.namespace}`, want.name && `--name ${want.name}`].filter(Boolean).join(' ')
  if (installs.length === 0) {
    throw new UsageError(
      `no karp install found in the cluster (no DaemonSet labelled ${KARP_SELECTOR})`,
      'pass --vip to check the certificates for a VIP before installing',
    )
  }
  if (matching.length === 0) {
    throw new UsageError(`no karp install matches ${picked}; installed: ${installs.map(describeInstall).join(', ')}`)
  }
  if (matching.length > 1) {
    throw new UsageError(
      `${matching.length} karp installs found${picked ? ` for ${picked}` : ''}: ${matching.map(describeInstall).join(', ')}`,
      'choose one with --name and -n/--namespace, or pass --vip',
    )
  }
  const install = matching[0] as KarpInstall
  if (install.vip === undefined) {
    throw new UsageError(
      `karp install ${install.namespace}/${install.name} has no ${VIP_ANNOTATION} annotation on its DaemonSet`,
      'pass --vip',
    )
  }
  return {...install, vip: install.vip}
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*\.?$/i

/**
 * An API server address as kubectl users write it: host, host:port, [IPv6]:port, a bare IPv6 address, or
 * the https:// URL from a kubeconfig.
 */
export function parseServerAddress(text: string, defaultPort: number, flag = 'server'): Checked<Endpoint> {
  const bad = (why = ''): Checked<Endpoint> => ({
    ok: false,
    problem: `invalid --${flag} ${echo(text)}: ${why}expected host[:port] with an IPv6 address in brackets, e.g. 10.0.0.11:6443, [fd00::11]:6443 or https://api.example:6443`,
  })
  let rest = text.trim()
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(rest)
  if (scheme) {
    if (scheme[1]?.toLowerCase() !== 'https') return bad('the API server speaks https only; ')
    rest = rest.slice(scheme[0].length).replace(/\/.*$/, '')
  }
  let host: string
  let portText: string | undefined
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(rest)
  if (bracketed) {
    host = bracketed[1] as string
    portText = bracketed[2]
    if (isIP(host) !== 6) return bad()
  } else if (isIP(rest) === 6) {
    host = rest
  } else {
    const parts = rest.split(':')
    if (parts.length > 2) return bad()
    host = parts[0] as string
    portText = parts[1]
    if (isIP(host) === 0 && !HOST_NAME.test(host)) return bad()
  }
  if (portText === undefined) return {ok: true, value: {host, port: defaultPort}}
  const port = checkPort(portText)
  return port.ok ? {ok: true, value: {host, port: port.value}} : bad('port must be a whole number from 1 to 65535; ')
}
