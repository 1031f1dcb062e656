import {Flags} from '@oclif/core'

import {DEFAULTS} from './lib/config/vip-config.js'
import {DEFAULT_API_PORT} from './lib/constants.js'

/** Flags every command that talks to a cluster takes, named as kubectl names them. */
export const clusterFlags = {
  kubeconfig: Flags.string({description: 'path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)', helpGroup: 'CLUSTER'}),
  context: Flags.string({description: 'kubeconfig context to use (default: its current context)', helpGroup: 'CLUSTER'}),
}

/**
 * kubectl's --request-timeout, for every command that calls the Kubernetes API: each request, reading its
 * answer included, must finish within it. Watches (status --watch) are meant to stay open and have their own
 * silence limit (src/lib/status/watch.ts).
 */
export const requestTimeoutFlag = {
  'request-timeout': Flags.string({
    description: 'how long to wait for each Kubernetes API request, e.g. 30s or 1m; 0 waits forever',
    default: '30s',
    helpGroup: 'CLUSTER',
  }),
}

/** Which karp install a command acts on; several may live in one cluster. */
export const instanceFlags = {
  namespace: Flags.string({char: 'n', description: 'namespace of the karp install', default: DEFAULTS.namespace}),
  name: Flags.string({description: 'name of the karp install (names its objects)', default: DEFAULTS.name}),
}

/**
 * The VIP's settings, as text: src/lib/config validates them all in one place, so every bad value gets
 * the same kind of message whichever command or prompt it came through.
 */
export const vipFlags = {
  vip: Flags.string({description: "the virtual IPv4 address for the API server, on the control-plane nodes' subnet"}),
  vhid: Flags.string({description: `CARP virtual host id, 1-255, unique per L2 segment (default: ${DEFAULTS.vhid})`}),
  password: Flags.string({description: 'CARP password, 1-19 printable ASCII bytes (default: reuse the installed one, else random)'}),
  'password-file': Flags.string({
    description: 'read the CARP password from the first line of this file; - reads stdin (instead of --password)',
  }),
  interface: Flags.string({description: 'network interface for the VIP (default: the one `ip route get VIP` picks on each node)'}),
  advbase: Flags.string({description: `seconds between CARP advertisements, 1-255 (default: ${DEFAULTS.advbase})`}),
  preempt: Flags.boolean({
    description: 'let a node with a lower skew take the VIP back from the current holder',
    default: DEFAULTS.preempt,
    allowNo: true,
  }),
  'health-check': Flags.boolean({
    description: 'give up the VIP while the local API server fails /readyz',
    default: DEFAULTS.healthCheck,
    allowNo: true,
  }),
  'api-port': Flags.string({description: `port the API server listens on, on every node and on the VIP (default: ${DEFAULT_API_PORT})`}),
  'node-selector': Flags.string({description: 'run the agent on nodes with this label, key=value (default: control-plane nodes)'}),
  image: Flags.string({description: `agent image (default: ${DEFAULTS.image.split('@')[0]}, pinned by its digest)`}),
}

/** The VIP flags, as the text validateVipInput takes. */
export function vipInputFromFlags(
  flags: {
    [K in keyof typeof vipFlags]?: unknown
  } & {namespace?: string; name?: string},
) {
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined)
  return {
    name: flags.name,
    namespace: flags.namespace,
    vip: text(flags.vip),
    vhid: text(flags.vhid),
    password: text(flags.password),
    interface: text(flags.interface),
    advbase: text(flags.advbase),
    preempt: flags.preempt as boolean | undefined,
    healthCheck: flags['health-check'] as boolean | undefined,
    apiPort: text(flags['api-port']),
    nodeSelector: text(flags['node-selector']),
    image: text(flags.image),
  }
}
