// What a kubelet would ask the container runtime for, given a pod template: the CRI PodSandboxConfig and
// ContainerConfig (as the JSON crictl reads: snake_case names, enums as numbers), the host directories the
// kubelet would prepare for the volumes, and the exec probes it would run. Lets a test run a rendered
// DaemonSet's pod under containerd through CRI with exactly the settings its template asks for.
//
// Strict on purpose: a field it does not know throws, so a field added to the template cannot be dropped
// silently and make the runtime test prove less than it claims. Fields that only decide where a pod runs
// (affinity, tolerations, node selector) are accepted and have no effect here.
import {join} from 'node:path'

export interface PodContext {
  podName: string
  namespace: string
  nodeName: string
  uid: string
  /** The kubelet's directory for this pod (volumes go under <podDir>/volumes, as the kubelet lays them out). */
  podDir: string
  /** CRI log_directory of the sandbox. */
  logDirectory: string
  /** cgroupfs parent of the pod's cgroups (the kubelet's kubepods/.../pod<uid>). */
  cgroupParent: string
  /** The pod's labels, for env from metadata.labels['KEY'] (none: empty values). */
  labels?: Record<string, string>
  /** What the kubelet adds for the cluster's services: KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT, ... */
  serviceEnv: Record<string, string>
  /** The kubelet's clusterDNS and clusterDomain, for dnsPolicy ClusterFirst*. */
  clusterDns: string[]
  clusterDomain: string
}

export type VolumePlan =
  | {name: string; kind: 'secret'; hostPath: string; secretName: string; items: Array<{key: string; path: string; mode: number}>}
  | {name: string; kind: 'emptyDir'; hostPath: string; medium: 'Memory' | ''; sizeLimitBytes?: number}
  /** The service-account token volume the kubelet adds to every pod that automounts one. */
  | {name: string; kind: 'serviceAccount'; hostPath: string; serviceAccountName: string; namespace: string; mode: number}
  /** A single file the kubelet writes itself (etc-hosts, termination-log). */
  | {name: string; kind: 'file'; hostPath: string; copyOf?: string; mode: number}

export interface ContainerPlan {
  name: string
  /** CRI ContainerConfig. */
  config: Record<string, unknown>
  /** exec probes, as `crictl exec --sync --timeout` runs them. */
  probes: Array<{kind: 'liveness' | 'readiness' | 'startup'; command: string[]; timeoutSeconds: number}>
}

export interface PodPlan {
  /** CRI PodSandboxConfig. */
  sandbox: Record<string, unknown>
  containers: ContainerPlan[]
  volumes: VolumePlan[]
  terminationGracePeriodSeconds: number
}

/** CRI NamespaceMode. */
const NamespaceMode = {POD: 0, CONTAINER: 1, NODE: 2} as const
/** CRI SecurityProfile.ProfileType. */
const ProfileType = {RuntimeDefault: 0, Unconfined: 1} as const

export const SERVICE_ACCOUNT_MOUNT = '/var/run/secrets/kubernetes.io/serviceaccount'
const DEFAULT_FILE_MODE = 0o644
const DEFAULT_GRACE_SECONDS = 30
const DEFAULT_PROBE_TIMEOUT_SECONDS = 1
/** The kubelet's OOM score for pods of the system-node-critical priority class (as for Guaranteed pods). */
const NODE_CRITICAL_OOM_SCORE_ADJ = -997
// What the kubelet sends for procMount Default; containerd would mask much the same on its own.
const MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
]
const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger']
const FIELD_REFS = ['metadata.name', 'metadata.namespace', 'metadata.uid', 'spec.nodeName', 'spec.serviceAccountName'] as const

type Json = Record<string, unknown>

class Fields {
  private readonly seen = new Set<string>()
  constructor(
    private readonly object: Json,
    readonly path: string,
  ) {
    if (typeof object !== 'object' || object === null || Array.isArray(object)) throw new Error(`${path}: expected an object`)
  }

  get<T = unknown>(key: string): T | undefined {
    this.seen.add(key)
    return this.object[key] as T | undefined
  }

  /** Marks keys that are understood and have no effect on the runtime. */
  ignore(...keys: string[]): void {
    for (const key of keys) this.seen.add(key)
  }

  /** Throws for every key nobody asked for: a field the translation does not know. */
  done(): void {
    const unknown = Object.keys(this.object).filter((k) => !this.seen.has(k))
    if (unknown.length > 0) throw new Error(`${this.path}: no CRI translation for ${unknown.map((k) => `${this.path}.${k}`).join(', ')}`)
  }

  sub(key: string): Fields | undefined {
    const value = this.get<Json>(key)
    return value === undefined ? undefined : new Fields(value, `${this.path}.${key}`)
  }
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], path: string): T {
  if (!allowed.includes(value as T)) throw new Error(`${path}: ${JSON.stringify(value)} is not supported (only ${allowed.join(', ')})`)
  return value as T
}

const BINARY_SUFFIXES: Record<string, number> = {Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40}
const DECIMAL_SUFFIXES: Record<string, number> = {'': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12}

/** A Kubernetes memory quantity in bytes ("32Mi", "64M", "1048576"). */
export function memoryBytes(quantity: unknown, path: string): number {
  const match = /^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T|)$/.exec(String(quantity))
  if (!match?.[1]) throw new Error(`${path}: unsupported memory quantity ${JSON.stringify(quantity)}`)
  const suffix = match[2] ?? ''
  return Number(match[1]) * (BINARY_SUFFIXES[suffix] ?? DECIMAL_SUFFIXES[suffix] ?? 1)
}

/** A Kubernetes CPU quantity in millicores ("10m", "0.5", "2"). */
export function milliCpu(quantity: unknown, path: string): number {
  const text = String(quantity)
  const milli = /^(\d+)m$/.exec(text)
  if (milli?.[1]) return Number(milli[1])
  if (/^\d+(\.\d{1,3})?$/.test(text)) return Math.round(Number(text) * 1000)
  throw new Error(`${path}: unsupported CPU quantity ${JSON.stringify(quantity)}`)
}

function mode(value: unknown, path: string): number {
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 0o777)
    throw new Error(`${path}: a file mode must be 0-0777, got ${JSON.stringify(value)}`)
  return value as number
}

function volumePlans(spec: Fields, ctx: PodContext): VolumePlan[] {
  const volumes = (spec.get<Json[]>('volumes') ?? []).map((raw, i): VolumePlan => {
    const v = new Fields(raw, `spec.volumes[${i}]`)
    const name = String(v.get('name'))
    const dir = (plugin: string) => join(ctx.podDir, 'volumes', plugin, name)
    let plan: VolumePlan
    const secret = v.sub('secret')
    const emptyDir = v.sub('emptyDir')
    if (secret) {
      const defaultMode =
        secret.get('defaultMode') === undefined ? DEFAULT_FILE_MODE : mode(secret.get('defaultMode'), `${secret.path}.defaultMode`)
      const items = secret.get<Json[]>('items')
      if (!items) throw new Error(`${secret.path}: only secrets with items are supported (the kubelet would project every key)`)
      plan = {
        name,
        kind: 'secret',
        hostPath: dir('kubernetes.io~secret'),
        secretName: String(secret.get('secretName')),
        items: items.map((rawItem, j) => {
          const item = new Fields(rawItem, `${secret.path}.items[${j}]`)
          const result = {
            key: String(item.get('key')),
            path: String(item.get('path')),
            mode: item.get('mode') === undefined ? defaultMode : mode(item.get('mode'), `${item.path}.mode`),
          }
          item.done()
          return result
        }),
      }
      secret.done()
    } else if (emptyDir) {
      const medium = emptyDir.get('medium') ?? ''
      const sizeLimit = emptyDir.get('sizeLimit')
      plan = {
        name,
        kind: 'emptyDir',
        hostPath: dir('kubernetes.io~empty-dir'),
        medium: oneOf(medium, ['Memory', ''] as const, `${emptyDir.path}.medium`),
        ...(sizeLimit === undefined ? {} : {sizeLimitBytes: memoryBytes(sizeLimit, `${emptyDir.path}.sizeLimit`)}),
      }
      emptyDir.done()
    } else {
      throw new Error(`spec.volumes[${i}] (${name}): only secret and emptyDir volumes are supported`)
    }
    v.done()
    return plan
  })
  if (spec.get('automountServiceAccountToken') !== false) {
    volumes.push({
      name: 'kube-api-access',
      kind: 'serviceAccount',
      hostPath: join(ctx.podDir, 'volumes', 'kubernetes.io~projected', 'kube-api-access'),
      serviceAccountName: String(spec.get('serviceAccountName') ?? 'default'),
      namespace: ctx.namespace,
      mode: DEFAULT_FILE_MODE,
    })
  }
  return volumes
}

function containerEnv(c: Fields, ctx: PodContext, serviceAccountName: string): Array<{key: string; value: string}> {
  const fieldValues: Record<(typeof FIELD_REFS)[number], string> = {
    'metadata.name': ctx.podName,
    'metadata.namespace': ctx.namespace,
    'metadata.uid': ctx.uid,
    'spec.nodeName': ctx.nodeName,
    'spec.serviceAccountName': serviceAccountName,
  }
  const envs = (c.get<Json[]>('env') ?? []).map((raw, i) => {
    const e = new Fields(raw, `${c.path}.env[${i}]`)
    const key = String(e.get('name'))
    const valueFrom = e.sub('valueFrom')
    let value: string
    if (valueFrom) {
      const fieldRef = valueFrom.sub('fieldRef')
      if (!fieldRef) throw new Error(`${valueFrom.path}: only fieldRef is supported`)
      // A label of the pod, as the kubelet gives it: its value, or empty when the pod has no such label.
      const label = /^metadata\.labels\['([^']+)'\]$/.exec(String(fieldRef.get('fieldPath')))
      if (label) {
        value = ctx.labels?.[label[1] as string] ?? ''
      } else {
        value = fieldValues[oneOf(fieldRef.get('fieldPath'), FIELD_REFS, `${fieldRef.path}.fieldPath`)]
      }
      fieldRef.ignore('apiVersion')
      fieldRef.done()
      valueFrom.done()
    } else {
      value = String(e.get('value') ?? '')
    }
    e.done()
    return {key, value}
  })
  const own = new Set(envs.map((e) => e.key))
  return [
    ...envs,
    ...Object.entries(ctx.serviceEnv)
      .filter(([k]) => !own.has(k))
      .map(([key, value]) => ({key, value})),
  ]
}

function securityContext(c: Fields): Json {
  const sc = c.sub('securityContext')
  if (!sc) throw new Error(`${c.path}: no securityContext (the runtime test is about the one the template sets)`)
  const result: Json = {masked_paths: MASKED_PATHS, readonly_paths: READONLY_PATHS}
  const runAsUser = sc.get('runAsUser')
  if (runAsUser !== undefined) result.run_as_user = {value: runAsUser}
  const runAsGroup = sc.get('runAsGroup')
  if (runAsGroup !== undefined) result.run_as_group = {value: runAsGroup}
  const privileged = sc.get('privileged') === true
  if (privileged) throw new Error(`${sc.path}.privileged: privileged containers are not supported`)
  result.privileged = false
  result.readonly_rootfs = sc.get('readOnlyRootFilesystem') === true
  // The kubelet sets no_new_privs unless escalation is allowed (unset counts as allowed).
  result.no_new_privs = sc.get('allowPrivilegeEscalation') === false
  const caps = sc.sub('capabilities')
  if (caps) {
    result.capabilities = {add_capabilities: caps.get<string[]>('add') ?? [], drop_capabilities: caps.get<string[]>('drop') ?? []}
    caps.done()
  }
  const seccomp = sc.sub('seccompProfile')
  if (seccomp) {
    const type = oneOf(seccomp.get('type'), ['RuntimeDefault', 'Unconfined'] as const, `${seccomp.path}.type`)
    result.seccomp = {profile_type: ProfileType[type]}
    seccomp.done()
  } else {
    result.seccomp = {profile_type: ProfileType.Unconfined}
  }
  sc.done()
  return result
}

function resources(c: Fields, oomScoreAdj: number): Json {
  const result: Json = {oom_score_adj: oomScoreAdj}
  const res = c.sub('resources')
  if (!res) return {...result, cpu_shares: 2}
  const requests = res.sub('requests')
  const limits = res.sub('limits')
  const requestCpu = requests?.get('cpu') ?? limits?.get('cpu')
  // The kubelet's cgroupfs numbers: shares from the request (at least 2), a CFS quota from the limit.
  result.cpu_shares =
    requestCpu === undefined ? 2 : Math.max(2, Math.floor((milliCpu(requestCpu, `${res.path}.requests.cpu`) * 1024) / 1000))
  if (limits?.get('cpu') !== undefined) {
    result.cpu_period = 100_000
    result.cpu_quota = Math.floor((milliCpu(limits.get('cpu'), `${limits.path}.cpu`) * 100_000) / 1000)
  }
  if (limits?.get('memory') !== undefined) result.memory_limit_in_bytes = memoryBytes(limits.get('memory'), `${limits.path}.memory`)
  // A memory request only informs scheduling and eviction on cgroup v1.
  if (requests?.get('memory') !== undefined) memoryBytes(requests.get('memory'), `${requests.path}.memory`)
  requests?.done()
  limits?.done()
  res.done()
  return result
}

function probes(c: Fields): ContainerPlan['probes'] {
  const result: ContainerPlan['probes'] = []
  for (const kind of ['liveness', 'readiness', 'startup'] as const) {
    const probe = c.sub(`${kind}Probe`)
    if (!probe) continue
    const exec = probe.sub('exec')
    if (!exec) throw new Error(`${probe.path}: only exec probes are supported`)
    const command = exec.get<string[]>('command')
    if (!Array.isArray(command) || command.length === 0) throw new Error(`${exec.path}.command: must be a non-empty list`)
    exec.done()
    const timeout = probe.get<number>('timeoutSeconds') ?? DEFAULT_PROBE_TIMEOUT_SECONDS
    // Timing fields decide when the kubelet probes, not what a probe is.
    probe.ignore('periodSeconds', 'failureThreshold', 'successThreshold', 'initialDelaySeconds', 'terminationGracePeriodSeconds')
    probe.done()
    result.push({kind, command, timeoutSeconds: timeout})
  }
  return result
}

function containerPlan(
  raw: Json,
  index: number,
  spec: Fields,
  ctx: PodContext,
  volumes: VolumePlan[],
  podLabels: Json,
  oomScoreAdj: number,
): ContainerPlan {
  const c = new Fields(raw, `spec.containers[${index}]`)
  const name = String(c.get('name'))
  const image = c.get('image')
  if (typeof image !== 'string' || image === '') throw new Error(`${c.path}.image: missing`)
  oneOf(c.get('imagePullPolicy') ?? 'IfNotPresent', ['IfNotPresent', 'Never'] as const, `${c.path}.imagePullPolicy`)
  const serviceAccountName = String(spec.get('serviceAccountName') ?? 'default')

  const mounts = (c.get<Json[]>('volumeMounts') ?? []).map((rawMount, i) => {
    const m = new Fields(rawMount, `${c.path}.volumeMounts[${i}]`)
    const volumeName = String(m.get('name'))
    const volume = volumes.find((v) => v.name === volumeName)
    if (!volume) throw new Error(`${m.path}: no volume ${volumeName}`)
    const mount = {container_path: String(m.get('mountPath')), host_path: volume.hostPath, readonly: m.get('readOnly') === true}
    m.done()
    return mount
  })
  const account = volumes.find((v) => v.kind === 'serviceAccount')
  if (account) mounts.push({container_path: SERVICE_ACCOUNT_MOUNT, host_path: account.hostPath, readonly: true})
  // Files the kubelet mounts into every container on its own: the node's hosts file (host network) and
  // the termination-message file.
  const hosts: VolumePlan = {
    name: `${name}-etc-hosts`,
    kind: 'file',
    hostPath: join(ctx.podDir, 'etc-hosts'),
    copyOf: '/etc/hosts',
    mode: 0o644,
  }
  const terminationLog: VolumePlan = {
    name: `${name}-termination-log`,
    kind: 'file',
    hostPath: join(ctx.podDir, 'containers', name, 'termination-log'),
    mode: 0o666,
  }
  if (!volumes.some((v) => v.hostPath === hosts.hostPath)) volumes.push(hosts)
  volumes.push(terminationLog)
  mounts.push({container_path: '/etc/hosts', host_path: hosts.hostPath, readonly: false})
  mounts.push({container_path: '/dev/termination-log', host_path: terminationLog.hostPath, readonly: false})

  const config: Json = {
    metadata: {name, attempt: 0},
    image: {image, user_specified_image: image},
    ...(c.get('command') === undefined ? {} : {command: c.get('command')}),
    ...(c.get('args') === undefined ? {} : {args: c.get('args')}),
    envs: containerEnv(c, ctx, serviceAccountName),
    mounts,
    labels: {...podLabels, 'io.kubernetes.container.name': name},
    annotations: {'io.kubernetes.container.terminationMessagePath': '/dev/termination-log'},
    log_path: `${name}/0.log`,
    linux: {resources: resources(c, oomScoreAdj), security_context: {...securityContext(c), namespace_options: namespaceOptions(spec)}},
  }
  const plan = {name, config, probes: probes(c)}
  c.done()
  return plan
}

/** The OOM score the kubelet gives the pod's containers; other classes would depend on the node's memory. */
function oomScoreAdj(spec: Fields): number {
  const priorityClassName = spec.get('priorityClassName')
  if (priorityClassName !== 'system-node-critical') {
    throw new Error(`spec.priorityClassName: only system-node-critical is supported, got ${JSON.stringify(priorityClassName)}`)
  }
  return NODE_CRITICAL_OOM_SCORE_ADJ
}

function namespaceOptions(spec: Fields): Json {
  return {
    network: spec.get('hostNetwork') === true ? NamespaceMode.NODE : NamespaceMode.POD,
    pid: NamespaceMode.CONTAINER,
    ipc: NamespaceMode.POD,
  }
}

function dnsConfig(spec: Fields, ctx: PodContext): Json | undefined {
  const policy = oneOf(
    spec.get('dnsPolicy') ?? 'ClusterFirst',
    ['ClusterFirst', 'ClusterFirstWithHostNet', 'Default'] as const,
    'spec.dnsPolicy',
  )
  // The kubelet hands a host-network pod the node's resolver unless it asks for the cluster's explicitly.
  if (policy === 'Default' || (policy === 'ClusterFirst' && spec.get('hostNetwork') === true)) return undefined
  const domain = ctx.clusterDomain
  return {servers: ctx.clusterDns, searches: [`${ctx.namespace}.svc.${domain}`, `svc.${domain}`, domain], options: ['ndots:5']}
}

/** The CRI requests a kubelet would make for `template` (a pod template, e.g. a DaemonSet's spec.template). */
export function podToCri(template: unknown, ctx: PodContext): PodPlan {
  const t = new Fields(template as Json, 'template')
  const meta = t.sub('metadata')
  const labels = meta?.get<Record<string, string>>('labels') ?? {}
  const annotations = meta?.get<Record<string, string>>('annotations') ?? {}
  meta?.done()
  const spec = t.sub('spec')
  if (!spec) throw new Error('template: no spec')
  t.done()

  const podLabels = {'io.kubernetes.pod.name': ctx.podName, 'io.kubernetes.pod.namespace': ctx.namespace, 'io.kubernetes.pod.uid': ctx.uid}
  const volumes = volumePlans(spec, ctx)
  const oom = oomScoreAdj(spec)
  const containers = (spec.get<Json[]>('containers') ?? []).map((c, i) => containerPlan(c, i, spec, ctx, volumes, podLabels, oom))
  if (containers.length === 0) throw new Error('template.spec.containers: none')
  const dns = dnsConfig(spec, ctx)
  const sandbox: Json = {
    metadata: {name: ctx.podName, namespace: ctx.namespace, uid: ctx.uid, attempt: 0},
    log_directory: ctx.logDirectory,
    ...(dns ? {dns_config: dns} : {}),
    labels: {...labels, ...podLabels},
    annotations,
    linux: {cgroup_parent: ctx.cgroupParent, security_context: {namespace_options: namespaceOptions(spec)}},
  }
  const grace = spec.get<number>('terminationGracePeriodSeconds') ?? DEFAULT_GRACE_SECONDS
  spec.ignore('affinity', 'tolerations', 'nodeSelector')
  spec.done()
  return {sandbox, containers, volumes, terminationGracePeriodSeconds: grace}
}
