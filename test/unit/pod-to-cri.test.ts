// test/runtime/pod-to-cri.ts: the CRI requests a kubelet would make for the DaemonSet's pod template, and
// a refusal for every field it cannot translate.
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {validateVipInput} from '../../src/lib/config/vip-config.js'
import {renderManifests} from '../../src/lib/manifests/render.js'
import {memoryBytes, milliCpu, podToCri, type PodContext, SERVICE_ACCOUNT_MOUNT} from '../runtime/pod-to-cri.js'
import {DEFAULT_API_PORT} from '../../src/lib/constants.js'

const ctx: PodContext = {
  podName: 'karp-abcde',
  namespace: 'karp-system',
  nodeName: 'node1',
  uid: '0b5e1c4e-0000-4000-8000-000000000001',
  podDir: '/var/lib/kubelet/pods/uid1',
  logDirectory: '/var/log/pods/uid1',
  cgroupParent: '/kubepods/poduid1',
  serviceEnv: {KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443'},
  clusterDns: ['10.96.0.10'],
  clusterDomain: 'cluster.local',
}

type Obj = Record<string, unknown>

function template(): Obj {
  const objects = renderManifests({...validateVipInput({}).settings, vip: '192.168.1.250', password: 's3cret', healthCheck: true})
  const ds = objects.find((o) => o.kind === 'DaemonSet') as unknown as {spec: {template: Obj}}
  return structuredClone(ds.spec.template)
}

// The parts of the rendered template the refusal cases change.
const spec = (t: Obj) => t.spec as Obj
const container = (t: Obj) => (spec(t).containers as Obj[])[0] as Obj
const securityContext = (t: Obj) => container(t).securityContext as Obj
const env = (t: Obj) => container(t).env as Obj[]

/** The parts of the CRI configs these tests look at. */
interface CriContainer {
  command: string[]
  envs: Array<{key: string; value: string}>
  mounts: Array<{container_path: string; host_path: string; readonly: boolean}>
  linux: {resources: Record<string, number>; security_context: Obj}
}
interface CriSandbox {
  linux: {security_context: {namespace_options: {network: number}}}
}

describe('podToCri on the rendered DaemonSet', () => {
  const plan = podToCri(template(), ctx)
  const agent = plan.containers[0]
  const config = agent?.config as unknown as CriContainer
  const security = config.linux.security_context

  it('asks for the host network and the template securityContext', () => {
    assert.equal((plan.sandbox as unknown as CriSandbox).linux.security_context.namespace_options.network, 2, 'NODE')
    assert.deepEqual(security.namespace_options, {network: 2, pid: 1, ipc: 0})
    assert.deepEqual(security.capabilities, {add_capabilities: ['NET_ADMIN', 'NET_RAW'], drop_capabilities: ['ALL']})
    assert.equal(security.readonly_rootfs, true)
    assert.equal(security.no_new_privs, true)
    assert.equal(security.privileged, false)
    assert.deepEqual(security.run_as_user, {value: 0})
    assert.deepEqual(security.seccomp, {profile_type: 0}, 'RuntimeDefault')
  })

  it('passes the command, the environment with downward-API values and the service variables', () => {
    assert.deepEqual(config.command, ['/usr/local/lib/karp/entrypoint.sh'])
    const env = Object.fromEntries(config.envs.map((e) => [e.key, e.value]))
    assert.equal(env.KARP_VIP, '192.168.1.250')
    assert.equal(env.KARP_HEALTH_URL, `https://127.0.0.1:${DEFAULT_API_PORT}/readyz`)
    assert.equal(env.NODE_NAME, 'node1')
    assert.equal(env.POD_NAME, 'karp-abcde')
    assert.equal(env.POD_NAMESPACE, 'karp-system')
    assert.equal(env.KUBERNETES_SERVICE_HOST, '10.96.0.1')
    assert.equal(env.KUBERNETES_SERVICE_PORT, '443')
  })

  it('mounts the Secret read-only as a 0400 file, the emptyDir writable and the service-account token read-only', () => {
    const at = (path: string) => config.mounts.find((m) => m.container_path === path)
    assert.equal(at('/etc/karp')?.readonly, true)
    assert.equal(at('/run/karp')?.readonly, false)
    assert.equal(at(SERVICE_ACCOUNT_MOUNT)?.readonly, true)
    const secret = plan.volumes.find((v) => v.kind === 'secret')
    assert.ok(secret?.kind === 'secret')
    assert.deepEqual(secret.items, [{key: 'password', path: 'password', mode: 0o400}])
    assert.equal(at('/etc/karp')?.host_path, secret.hostPath)
    const state = plan.volumes.find((v) => v.kind === 'emptyDir')
    assert.deepEqual(
      state && {medium: state.kind === 'emptyDir' && state.medium, size: state.kind === 'emptyDir' && state.sizeLimitBytes},
      {medium: 'Memory', size: 1024 * 1024},
    )
  })

  it('turns requests and limits into the kubelet cgroup values, and the priority class into its OOM score', () => {
    const resources = config.linux.resources
    assert.equal(resources.memory_limit_in_bytes, 32 * 1024 * 1024)
    // No CPU limit (agent/README.md, Pod settings): no CFS quota, the 50m request as shares.
    assert.equal(resources.cpu_quota, undefined)
    assert.equal(resources.cpu_period, undefined)
    assert.equal(resources.cpu_shares, 51)
    assert.equal(resources.oom_score_adj, -997)
  })

  it('hands over the probes and the grace period', () => {
    assert.deepEqual(
      agent?.probes.map((p) => [p.kind, p.command]),
      [
        ['liveness', ['/usr/local/lib/karp/healthcheck.sh']],
        ['readiness', ['/usr/local/lib/karp/healthcheck.sh', 'ready']],
      ],
    )
    assert.equal(plan.terminationGracePeriodSeconds, 15)
  })
})

describe('podToCri refuses what it cannot translate', () => {
  const refuses = (what: string, edit: (t: Obj) => void, message: RegExp): void => {
    it(what, () => {
      const t = template()
      edit(t)
      assert.throws(() => podToCri(t, ctx), message)
    })
  }

  refuses('an unknown container field', (t) => (container(t).ports = [{containerPort: 80}]), /spec\.containers\[0\]\.ports/)
  refuses('an unknown securityContext field', (t) => (securityContext(t).procMount = 'Unmasked'), /securityContext\.procMount/)
  refuses(
    'an unknown capabilities field',
    (t) => ((securityContext(t).capabilities as Obj).ambient = ['NET_ADMIN']),
    /capabilities\.ambient/,
  )
  refuses(
    'a Localhost seccomp profile',
    (t) => (securityContext(t).seccompProfile = {type: 'Localhost', localhostProfile: 'x'}),
    /seccompProfile\.type/,
  )
  refuses('a privileged container', (t) => (securityContext(t).privileged = true), /privileged/)
  refuses('an env value from a Secret', (t) => env(t).push({name: 'X', valueFrom: {secretKeyRef: {name: 's', key: 'k'}}}), /only fieldRef/)
  refuses('an unknown fieldRef', (t) => env(t).push({name: 'X', valueFrom: {fieldRef: {fieldPath: 'status.podIP'}}}), /status\.podIP/)
  refuses(
    'a volumeMount subPath',
    (t) => (((container(t).volumeMounts as Obj[])[0] as Obj).subPath = 'password'),
    /volumeMounts\[0\]\.subPath/,
  )
  refuses('a hostPath volume', (t) => (spec(t).volumes as Obj[]).push({name: 'h', hostPath: {path: '/'}}), /only secret and emptyDir/)
  refuses('an unknown pod field', (t) => (spec(t).hostPID = true), /spec\.hostPID/)
  refuses('a pod securityContext', (t) => (spec(t).securityContext = {runAsNonRoot: true}), /spec\.securityContext/)
  refuses('an init container', (t) => (spec(t).initContainers = []), /spec\.initContainers/)
  refuses('an HTTP probe', (t) => (container(t).livenessProbe = {httpGet: {path: '/', port: 1}}), /only exec probes/)
  refuses('a lifecycle hook', (t) => (container(t).lifecycle = {preStop: {exec: {command: ['true']}}}), /lifecycle/)
  refuses('an image pulled on every start', (t) => (container(t).imagePullPolicy = 'Always'), /imagePullPolicy/)
  refuses('a file mode out of range', (t) => ((((spec(t).volumes as Obj[])[0] as Obj).secret as Obj).defaultMode = 0o1000), /file mode/)
  refuses('another priority class', (t) => (spec(t).priorityClassName = 'high'), /priorityClassName/)
})

describe('Kubernetes quantities', () => {
  it('reads memory and CPU the way the API does', () => {
    assert.equal(memoryBytes('32Mi', 'm'), 33_554_432)
    assert.equal(memoryBytes('64M', 'm'), 64_000_000)
    assert.equal(memoryBytes('1048576', 'm'), 1_048_576)
    assert.equal(milliCpu('10m', 'c'), 10)
    assert.equal(milliCpu('0.5', 'c'), 500)
    assert.equal(milliCpu('2', 'c'), 2000)
    assert.throws(() => memoryBytes('1.5Gi', 'm'), /unsupported memory quantity/)
    assert.throws(() => milliCpu('1e3', 'c'), /unsupported CPU quantity/)
  })
})
