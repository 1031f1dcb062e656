// What `karp install` asks the API server, request by request, seen through a loopback proxy that forwards
// everything to the real test control plane (test/helpers/api-proxy.ts): the permission checks and
// preflight reads, every dry run before the first write, no read of an object before its apply (the
// action is told from the answers), and what a refused dry run or a missing permission leaves behind:
// nothing. The nodes are plain Node objects (test/cluster/plain-nodes.ts): nothing runs, so --no-wait.
import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'

import {
  AdmissionregistrationV1Api,
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  RbacAuthorizationV1Api,
  type V1ClusterRoleBinding,
} from '@kubernetes/client-node'

import {controlPlaneNode, createNodes, deleteNodes} from '../cluster/plain-nodes.js'
import {type ApiProxy, type HeldRequest, startApiProxy} from '../helpers/api-proxy.js'
import {karp} from '../helpers/karp.js'
import {clusterOrSkip, uniqueName} from './cluster-env.js'
import {KARP_SELECTOR, STATIC_POD_NAMESPACE} from '../../src/lib/constants.js'
import {STATIC_AGENT_SELECTOR} from '../../src/lib/kube/static-agents.js'
import {INSTALL_KINDS} from '../helpers/install-kinds.js'

const cluster = clusterOrSkip()
const LABEL = 'karp-test/install-requests'
const group = uniqueName('rq')
const nodes = [1, 2, 3].map((i) => controlPlaneNode(`${group}-cp${i}`, `10.81.0.1${i}`, {[LABEL]: 'yes'}))
const KINDS = INSTALL_KINDS
/** The policy that makes the API server refuse one object of an install, dry run or not. */
const DENY = 'karp-test-install-requests-deny'
/** An install into a namespace that exists, whose DaemonSet the policy refuses. */
const DENIED_DAEMONSET_NS = `${group}-ds`
/** A fresh install whose ClusterRoleBinding (cluster-wide: dry-run before the namespace exists) the policy refuses. */
const DENIED_BINDING_NS = `${group}-crb`
const deniedBinding = `karp-agent.${DENIED_BINDING_NS}.karp`
/** Namespaces of their own on every run: the deletions of an earlier run's may still be under way. */
const FRESH = `${group}-fresh`
const RBAC_NS = `${group}-rbac`

type Applied = {kind: string; name: string; namespace?: string; action: string}
type InstallJson = {objects: Applied[]}

const errorOf = (run: {json: unknown}) => (run.json as {error?: {message?: string}} | undefined)?.error?.message ?? ''
const isDryRun = (r: HeldRequest) => r.path.includes('dryRun=All')
const isWrite = (r: HeldRequest) => r.method !== 'GET' && !r.path.startsWith('/apis/authorization.k8s.io/')

describe('karp install, request by request', {skip: cluster.skip}, () => {
  let kc: KubeConfig
  let proxy: ApiProxy
  const installArgs = (namespace: string, vhid: number, kubeconfig = proxy.kubeconfig) => [
    'install',
    '--kubeconfig',
    kubeconfig,
    '-n',
    namespace,
    '--vip',
    `10.81.0.${100 + vhid}`,
    '--vhid',
    String(vhid),
    '--node-selector',
    `${LABEL}=yes`,
    '--password',
    'rq-secret',
    '--no-wait',
    '--json',
  ]
  /** Runs karp install through the proxy; the requests it made, in order. */
  async function installThroughProxy(namespace: string, vhid: number, extra: string[] = []) {
    const from = proxy.seen.length
    const run = await karp([...installArgs(namespace, vhid), ...extra])
    return {run, requests: proxy.seen.slice(from)}
  }
  const namespaceExists = async (name: string) =>
    (await kc.makeApiClient(CoreV1Api).listNamespace({fieldSelector: `metadata.name=${name}`})).items.length > 0
  /**
   * What any write to each object of the install in namespace ns changes, by kind: its resourceVersion; for
   * the DaemonSet its generation and labels, as the DaemonSet controller writes its status at any time.
   */
  async function versions(ns: string): Promise<Record<string, string | undefined>> {
    const objects = KubernetesObjectApi.makeApiClient(kc)
    const scoped = `karp-agent.${ns}.karp`
    const headers: Array<[string, string, string, string | undefined]> = [
      ['v1', 'Namespace', ns, undefined],
      ['v1', 'ServiceAccount', 'karp', ns],
      ['admissionregistration.k8s.io/v1', 'ValidatingAdmissionPolicy', scoped, undefined],
      ['admissionregistration.k8s.io/v1', 'ValidatingAdmissionPolicyBinding', scoped, undefined],
      ['rbac.authorization.k8s.io/v1', 'Role', 'karp', ns],
      ['rbac.authorization.k8s.io/v1', 'RoleBinding', 'karp', ns],
      ['rbac.authorization.k8s.io/v1', 'ClusterRole', scoped, undefined],
      ['rbac.authorization.k8s.io/v1', 'ClusterRoleBinding', scoped, undefined],
      ['v1', 'Secret', 'karp', ns],
      ['apps/v1', 'DaemonSet', 'karp', ns],
    ]
    const read = await Promise.all(
      headers.map(([apiVersion, kind, name, namespace]) =>
        objects.read({apiVersion, kind, metadata: {name, ...(namespace ? {namespace} : {})}}),
      ),
    )
    return Object.fromEntries(
      read.map((o: KubernetesObject): [string, string | undefined] => [
        String(o.kind),
        o.kind === 'DaemonSet'
          ? JSON.stringify([o.metadata?.generation, o.metadata?.labels, o.metadata?.annotations])
          : o.metadata?.resourceVersion,
      ]),
    )
  }
  const uninstall = (ns: string) => karp(['uninstall', '--kubeconfig', cluster.kubeconfig, '-n', ns, '--yes', '--no-wait'])

  before(async () => {
    kc = new KubeConfig()
    kc.loadFromFile(cluster.kubeconfig)
    await createNodes(kc, nodes)
    proxy = await startApiProxy(cluster.kubeconfig)
  })

  after(async () => {
    await proxy?.close()
    if (!kc) return
    const admission = kc.makeApiClient(AdmissionregistrationV1Api)
    await admission.deleteValidatingAdmissionPolicyBinding({name: DENY}).catch(() => undefined)
    await admission.deleteValidatingAdmissionPolicy({name: DENY}).catch(() => undefined)
    for (const ns of [FRESH, DENIED_DAEMONSET_NS, DENIED_BINDING_NS, RBAC_NS]) await uninstall(ns)
    await kc
      .makeApiClient(CoreV1Api)
      .deleteNamespace({name: DENIED_DAEMONSET_NS})
      .catch(() => undefined)
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api)
    await rbac.deleteClusterRoleBinding({name: 'karp-test-install-requests'}).catch(() => undefined)
    await rbac.deleteClusterRole({name: 'karp-test-install-requests'}).catch(() => undefined)
    await deleteNodes(
      kc,
      nodes.map((n) => n.name),
    )
  })

  it('checks, reads and dry-runs before its first write, reads no object before applying it, and reports from the answers', async () => {
    const fresh = await installThroughProxy(FRESH, 61)
    assert.equal(fresh.run.exitCode, 0, fresh.run.stderr)
    assert.deepEqual(
      (fresh.run.json as InstallJson).objects.map((o) => [o.kind, o.action]),
      KINDS.map((k) => [k, 'created']),
    )
    const stored = await versions(FRESH)

    const daemonSetVersion = async () =>
      (await kc.makeApiClient(AppsV1Api).readNamespacedDaemonSet({namespace: FRESH, name: 'karp'})).metadata?.resourceVersion
    const statusBefore = await daemonSetVersion()
    const again = await installThroughProxy(FRESH, 61)
    assert.equal(again.run.exitCode, 0, again.run.stderr)
    // The DaemonSet controller updating the status between karp's dry run and its apply moves the
    // resourceVersion too, and karp reports "configured": then only versions() can tell.
    const statusMoved = (await daemonSetVersion()) !== statusBefore
    const againActions = (again.run.json as InstallJson).objects.map((o) => [o.kind, o.action])
    assert.deepEqual(
      againActions,
      KINDS.map((k) => [k, k === 'DaemonSet' && statusMoved ? againActions.at(-1)?.[1] : 'unchanged']),
    )
    assert.deepEqual(await versions(FRESH), stored, 'nothing was written')

    for (const {requests} of [fresh, again]) {
      // The only reads: API discovery for the admission policy, and preflight's nodes, installs, static-pod agents,
      // namespace and Secret.
      const reads = requests
        .filter((r) => r.method === 'GET')
        .map((r) => r.path)
        .sort()
      assert.deepEqual(reads, [
        `/api/v1/namespaces/${STATIC_POD_NAMESPACE}/pods?labelSelector=${encodeURIComponent(STATIC_AGENT_SELECTOR)}`,
        `/api/v1/namespaces/${FRESH}`,
        `/api/v1/namespaces/${FRESH}/secrets/karp`,
        '/api/v1/nodes',
        '/apis/admissionregistration.k8s.io/v1',
        `/apis/apps/v1/daemonsets?labelSelector=${encodeURIComponent(KARP_SELECTOR)}`,
      ])
      const writes = requests.filter(isWrite)
      const firstWrite = writes.findIndex((r) => !isDryRun(r))
      assert.ok(firstWrite > 0, 'dry runs come first')
      assert.ok(
        writes.slice(firstWrite).every((r) => !isDryRun(r)),
        'every dry run before the first write',
      )
      const accessReviews = requests.filter((r) => r.path.startsWith('/apis/authorization.k8s.io/v1/selfsubjectaccessreviews'))
      assert.ok(
        requests.indexOf(accessReviews.at(-1) as HeldRequest) < requests.indexOf(writes[0] as HeldRequest),
        'every access review before the first dry run',
      )
      // 26 access reviews, 6 reads, a dry run and an apply per object: a read per object would pass this.
      assert.ok(requests.length <= 50, `${requests.length} requests: ${requests.map((r) => `${r.method} ${r.path}`).join('\n')}`)
    }
    // Fresh, the namespaced objects could not be dry-run before their namespace was created; again, all were.
    assert.equal(again.requests.filter(isDryRun).length, KINDS.length - 1)

    const changed = await installThroughProxy(FRESH, 61, ['--advbase', '2'])
    assert.equal(changed.run.exitCode, 0, changed.run.stderr)
    const actions = Object.fromEntries((changed.run.json as InstallJson).objects.map((o) => [o.kind, o.action]))
    assert.deepEqual(actions, Object.fromEntries(KINDS.map((k) => [k, k === 'DaemonSet' ? 'configured' : 'unchanged'])))
    const after = await versions(FRESH)
    assert.notEqual(after.DaemonSet, stored.DaemonSet)
    assert.deepEqual({...after, DaemonSet: ''}, {...stored, DaemonSet: ''})
  })

  it('applies nothing when the API server refuses the dry run of one object', async () => {
    const admission = kc.makeApiClient(AdmissionregistrationV1Api)
    await admission.createValidatingAdmissionPolicy({
      body: {
        metadata: {name: DENY},
        spec: {
          failurePolicy: 'Fail',
          matchConstraints: {
            resourceRules: [
              {apiGroups: ['apps'], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['daemonsets']},
              {
                apiGroups: ['rbac.authorization.k8s.io'],
                apiVersions: ['v1'],
                operations: ['CREATE', 'UPDATE'],
                resources: ['clusterrolebindings'],
              },
            ],
          },
          validations: [
            {
              expression: `object.metadata.name != '${deniedBinding}' && !(namespaceObject != null && namespaceObject.metadata.name == '${DENIED_DAEMONSET_NS}')`,
              message: 'refused by the test policy',
            },
          ],
        },
      },
    })
    await admission.createValidatingAdmissionPolicyBinding({
      body: {metadata: {name: DENY}, spec: {policyName: DENY, validationActions: ['Deny']}},
    })
    // A new policy takes effect once the API server has loaded it: until a dry run of the binding is refused.
    const probe: V1ClusterRoleBinding = {
      metadata: {name: deniedBinding},
      roleRef: {apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view'},
      subjects: [{kind: 'User', name: 'nobody', apiGroup: 'rbac.authorization.k8s.io'}],
    }
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api)
    for (let refused = false, start = Date.now(); !refused;) {
      assert.ok(Date.now() - start < 30_000, 'the test policy took effect within 30 s')
      refused = await rbac.createClusterRoleBinding({body: probe, dryRun: 'All'}).then(
        () => false,
        () => true,
      )
      if (!refused) await new Promise((resolve) => setTimeout(resolve, 200))
    }

    const fresh = await installThroughProxy(DENIED_BINDING_NS, 62)
    assert.notEqual(fresh.run.exitCode, 0, fresh.run.stderr)
    assert.match(
      errorOf(fresh.run),
      new RegExp(
        `dry-run apply of ClusterRoleBinding ${deniedBinding.replaceAll('.', '\\.')} \\(nothing was applied\\): .*refused by the test policy`,
      ),
    )
    assert.deepEqual(
      fresh.requests.filter((r) => isWrite(r) && !isDryRun(r)),
      [],
      'no write but dry runs',
    )
    assert.equal(await namespaceExists(DENIED_BINDING_NS), false)

    await kc.makeApiClient(CoreV1Api).createNamespace({body: {metadata: {name: DENIED_DAEMONSET_NS}}})
    const existing = await installThroughProxy(DENIED_DAEMONSET_NS, 63)
    assert.notEqual(existing.run.exitCode, 0, existing.run.stderr)
    assert.match(
      errorOf(existing.run),
      new RegExp(`dry-run apply of DaemonSet ${DENIED_DAEMONSET_NS}/karp \\(nothing was applied\\): .*refused by the test policy`),
    )
    assert.deepEqual(
      existing.requests.filter((r) => isWrite(r) && !isDryRun(r)),
      [],
      'no write but dry runs',
    )
    // Every other object's dry run was sent too, and passed: the policy refused only the DaemonSet.
    assert.equal(existing.requests.filter(isDryRun).length, KINDS.length - 1)
    const accounts = await kc
      .makeApiClient(CoreV1Api)
      .listNamespacedServiceAccount({namespace: DENIED_DAEMONSET_NS, labelSelector: KARP_SELECTOR})
    assert.deepEqual(accounts.items, [])
  })

  it('refuses before any write when permissions are missing, naming each, though a preflight read fails for one of them', async () => {
    // Everything install does but create DaemonSets and list them (which preflight does, to find other installs).
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api)
    const groups = ['', 'apps', 'rbac.authorization.k8s.io', 'admissionregistration.k8s.io']
    await rbac.createClusterRole({
      body: {
        metadata: {name: 'karp-test-install-requests'},
        rules: [
          {
            apiGroups: groups,
            resources: [
              'namespaces',
              'serviceaccounts',
              'secrets',
              'roles',
              'rolebindings',
              'clusterroles',
              'clusterrolebindings',
              'validatingadmissionpolicies',
              'validatingadmissionpolicybindings',
            ],
            verbs: ['get', 'create', 'patch'],
          },
          {apiGroups: ['apps'], resources: ['daemonsets'], verbs: ['get', 'patch']},
          {apiGroups: [''], resources: ['nodes'], verbs: ['list']},
          {apiGroups: [''], resources: ['pods'], verbs: ['list']},
        ],
      },
    })
    await rbac.createClusterRoleBinding({
      body: {
        metadata: {name: 'karp-test-install-requests'},
        roleRef: {apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'karp-test-install-requests'},
        subjects: [{kind: 'User', name: cluster.userName, apiGroup: 'rbac.authorization.k8s.io'}],
      },
    })
    const run = await karp(installArgs(RBAC_NS, 64, cluster.userKubeconfig))
    assert.equal(run.exitCode, 3, run.stderr + run.stdout)
    const message = (run.json as {error: {message: string}}).error.message
    assert.match(
      message,
      /^forbidden: .* may not list daemonsets\.apps \(cluster-wide\); create daemonsets\.apps in namespace [a-z0-9-]+-rbac; nothing was applied$/,
    )
    assert.equal(await namespaceExists(RBAC_NS), false)
  })
})
