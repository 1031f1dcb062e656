// The agent's environment contract as data, for the CLI side that renders the DaemonSet and for tests.
// agent/entrypoint.sh and agent/lib.sh are the implementation; test/e2e/agent-env.test.ts checks that
// every KARP_* variable they read is listed here with the same default, and nothing else is.

export interface AgentEnvVar {
  name: string
  /** The default the scripts apply when the variable is unset; undefined when it is required or optional without one. */
  default?: string
  required?: boolean
  description: string
}

export const AGENT_ENV: readonly AgentEnvVar[] = [
  {name: 'KARP_VIP', required: true, description: 'the IPv4 address to hold'},
  {name: 'KARP_VHID', required: true, description: 'CARP virtual host id, 1-255, the same on every node'},
  {name: 'KARP_ADVBASE', default: '1', description: 'advertisement interval in seconds, 1-255'},
  {name: 'KARP_PREEMPT', default: 'false', description: '"true" lets a faster node take the VIP from a slower master'},
  {name: 'KARP_INTERFACE', description: 'interface for the VIP; default: the one `ip route get $KARP_VIP` picks'},
  {
    name: 'KARP_HEALTH_URL',
    description:
      'local API server health URL, e.g. https://127.0.0.1:6443/readyz (where to connect); https: the server must prove it is the API server (KARP_HEALTH_SERVER_NAME) before the token is sent; http: no token; unset: no health gate',
  },
  {
    name: 'KARP_HEALTH_SERVER_NAME',
    default: 'kubernetes',
    description: 'name the server behind an https KARP_HEALTH_URL must have a certificate for, signed by KARP_CA_FILE',
  },
  {name: 'KARP_PASSWORD_FILE', default: '/etc/karp/password', description: 'file whose first line (1-19 bytes) is the CARP password'},
  {name: 'KARP_STATE_DIR', default: '/run/karp', description: 'writable directory for pid and state files'},
  {
    name: 'KARP_TOKEN_FILE',
    default: '/var/run/secrets/kubernetes.io/serviceaccount/token',
    description: 'bearer token for role reports and the health check (sent only to a verified server)',
  },
  {
    name: 'KARP_CA_FILE',
    default: '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt',
    description: 'CA that signs the API server certificate (role reports and an https health check)',
  },
  {
    name: 'KARP_ADVSKEW',
    default: 'auto',
    description: 'advertisement skew 0-255, or auto: 1 + (last octet of the source address mod 8) x KARP_SKEW_STEP',
  },
  {name: 'KARP_SKEW_STEP', default: '4', description: 'step between automatic skews, 0-36'},
  {name: 'KARP_DEADRATIO', default: '3', description: 'advertisements a backup may miss before it takes over, 1-255'},
  {name: 'KARP_VIP_PREFIX', default: '32', description: 'prefix length the VIP is added with'},
  {
    name: 'KARP_VIP_LIFETIME',
    default: 'advbase x deadratio + 1',
    description:
      'seconds the VIP stays on the interface after its last renewal (the live agent renews it about every 0.5 s; the kernel removes it when nobody does); whole seconds, longer than the dead interval, KARP_DRAIN_SECONDS and one health check with its interval (the default is 1 s more than the longest of these)',
  },
  {name: 'KARP_HEALTH_INTERVAL', default: '0.5', description: 'seconds between health checks (fractions allowed)'},
  {name: 'KARP_HEALTH_TIMEOUT', default: '1', description: 'seconds one health check may take'},
  {name: 'KARP_HEALTH_FAILURES', default: '2', description: 'consecutive failed checks that make the node give the VIP up'},
  {name: 'KARP_HEALTH_SUCCESSES', default: '2', description: 'consecutive good checks before the node may take the VIP again'},
  {
    name: 'KARP_HEALTH_GATE',
    default: 'always',
    description:
      'always: no ucarp until the health check passed KARP_HEALTH_SUCCESSES times; after-first-ready (a static pod bootstrapping a cluster): ucarp at once, and failing checks take the node out of CARP only once the check has passed that many times in a row',
  },
  {
    name: 'KARP_HANDOVER_TIMEOUT',
    default: 'advbase x (deadratio + 4) + 4',
    description: 'seconds to wait for a successor before letting the VIP go anyway',
  },
  {
    name: 'KARP_DRAIN_SECONDS',
    default: '1.2',
    description:
      "the longest a master that yielded keeps the VIP while it waits for the preferred master's gratuitous ARP, so clients its last ARP reached are not stranded",
  },
  {name: 'KARP_REPORT_TIMEOUT', default: '5', description: 'seconds one request to the API server may take (role reports, node checks)'},
  {
    name: 'KARP_NODE_INTERVAL',
    default: '2',
    description: 'seconds between checks of the own Node: a cordoned node (spec.unschedulable) hands the VIP over and stays out of CARP',
  },
  {
    name: 'KARP_RANK_STEP',
    default: '4',
    description:
      'advertisement periods a backup waits, per rank, on top of the dead interval before it takes over (0-63): rank 0 is the first ready, eligible backup by node name',
  },
  {
    name: 'KARP_PEER_SELECTOR',
    description:
      'label selector of the agent pods of this DaemonSet, which the agent ranks itself among (with KARP_REVISION); unset: no ranks',
  },
  {name: 'KARP_REVISION', description: "the pod's controller-revision-hash label: only agents of the same revision rank together"},
  {
    name: 'KARP_STOP_TIMEOUT',
    default: '12',
    description: 'seconds a graceful stop may take in all (handover and last role report), 2-3600; keep it below the grace period',
  },
]

/** Set by Kubernetes, not by karp: the downward API and the in-cluster API server address. */
export const KUBERNETES_ENV = ['NODE_NAME', 'POD_NAME', 'POD_NAMESPACE', 'KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT'] as const

/**
 * Seconds the kubelet allows a stopping pod: the agent's KARP_STOP_TIMEOUT (12), which bounds the handover
 * and the last role report together, plus up to 1.3 s before a busy agent notices SIGTERM and slack to exit.
 */
export const TERMINATION_GRACE_PERIOD_SECONDS = 15
