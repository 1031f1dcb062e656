import assert from 'node:assert/strict'
import {createHash, scryptSync} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {describe, it} from 'node:test'

import type {V1DaemonSet, V1Namespace, V1PodSpec} from '@kubernetes/client-node'

import {AGENT_ENV, KUBERNETES_ENV, TERMINATION_GRACE_PERIOD_SECONDS} from '../../agent/env.js'
import {renderStaticPod} from '../../src/lib/bootstrap/static-pod.js'
import {validateVipInput, type VipConfig} from '../../src/lib/config/vip-config.js'
import {isControlPlaneLabels, podSpecSelectsNode} from '../../src/lib/manifests/node-selection.js'
import {manifestHeaders, manifestKinds, renderManifests} from '../../src/lib/manifests/render.js'
import {passwordFingerprint} from '../../src/lib/manifests/password-fingerprint.js'
import * as constants from '../../src/lib/constants.js'
import {
  AGENT_COMPONENT,
  API_PORT_ANNOTATION,
  APP_NAME,
  COMPONENT_LABEL,
  CREATED_BY_ANNOTATION,
  DEFAULT_API_PORT,
  ELIGIBLE_CONDITION,
  INSTANCE_LABEL,
  instanceSelector,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  NAME_LABEL,
  PASSWORD_FINGERPRINT_ANNOTATION,
  ROLE_CONDITION,
  VERSION_LABEL,
  VHID_ANNOTATION,
  VIP_ANNOTATION,
} from '../../src/lib/constants.js'
import {isCreatedByKarp} from '../../src/lib/install/namespace.js'
import {describeInstall} from '../../src/lib/kube/karp-installs.js'
import {KARP_VERSION} from '../../src/lib/version.js'
import {INSTALL_KINDS} from '../helpers/install-kinds.js'

function config(overrides: Partial<VipConfig> = {}): VipConfig {
  return {...validateVipInput({}).settings, vip: '192.168.1.250', password: 's3cret', ...overrides}
}

const daemonSet = (objects: ReturnType<typeof renderManifests>) => objects.find((o) => o.kind === 'DaemonSet') as unknown as V1DaemonSet
const envOf = (ds: V1DaemonSet) =>
  Object.fromEntries((ds.spec?.template.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]))

describe('renderManifests', () => {
  it('renders the objects in dependency order', () => {
    assert.deepEqual(
      renderManifests(config()).map((o) => o.kind),
      INSTALL_KINDS,
    )
    assert.deepEqual(
      manifestKinds().map((k) => [k.kind, k.namespaced]),
      [
        ['Namespace', false],
        ['ServiceAccount', true],
        ['ValidatingAdmissionPolicy', false],
        ['ValidatingAdmissionPolicyBinding', false],
        ['Role', true],
        ['RoleBinding', true],
        ['ClusterRole', false],
        ['ClusterRoleBinding', false],
        ['Secret', true],
        ['DaemonSet', true],
      ],
    )
  })

  it('is deterministic for the same input', () => {
    assert.equal(JSON.stringify(renderManifests(config())), JSON.stringify(renderManifests(config())))
  })

  it('leaves no placeholder behind', () => {
    assert.doesNotMatch(JSON.stringify(renderManifests(config({interface: 'eth0'}))), /\$\(karp\./)
  })

  it('names and places every object after --name and --namespace', () => {
    const objects = renderManifests(config({name: 'vip2', namespace: 'infra'}))
    for (const o of objects) {
      if (o.kind === 'Namespace') assert.equal(o.metadata.name, 'infra')
      // Cluster-scoped, so the name carries the namespace: one policy per install, dots keep them apart.
      else if (o.kind.startsWith('ValidatingAdmissionPolicy') || o.kind.startsWith('Cluster')) {
        assert.deepEqual([o.metadata.name, o.metadata.namespace], ['karp-agent.infra.vip2', undefined])
      } else assert.deepEqual([o.metadata.name, o.metadata.namespace], ['vip2', 'infra'])
    }
    assert.deepEqual(
      manifestHeaders({namespace: 'infra', name: 'vip2'}),
      objects.map((o) => ({
        apiVersion: o.apiVersion,
        kind: o.kind,
        metadata: {name: o.metadata.name, ...(o.metadata.namespace ? {namespace: o.metadata.namespace} : {})},
      })),
    )
  })

  it('passes the agent contract through env, with the password only in the Secret', () => {
    const objects = renderManifests(config({vhid: 42, advbase: 2, preempt: true}))
    const ds = daemonSet(objects)
    const env = envOf(ds)
    assert.equal(env.KARP_VIP, '192.168.1.250')
    assert.equal(env.KARP_VHID, '42')
    assert.equal(env.KARP_ADVBASE, '2')
    assert.equal(env.KARP_PREEMPT, 'true')
    assert.equal(env.KARP_HEALTH_URL, `https://127.0.0.1:${DEFAULT_API_PORT}/readyz`)
    assert.equal(env.KARP_PASSWORD_FILE, '/etc/karp/password')
    assert.deepEqual(env.NODE_NAME, {fieldRef: {fieldPath: 'spec.nodeName'}})
    assert.ok(!('KARP_INTERFACE' in env), 'unset interface is left to the agent')
    assert.doesNotMatch(JSON.stringify(ds), /s3cret/)
    const secret = objects.find((o) => o.kind === 'Secret') as unknown as {data: {password: string}}
    assert.equal(Buffer.from(secret.data.password, 'base64').toString(), 's3cret')
    assert.equal(ds.metadata?.annotations?.[VIP_ANNOTATION], '192.168.1.250')
    assert.equal(ds.metadata?.annotations?.[VHID_ANNOTATION], '42')
  })

  it('drops the health URL with --no-health-check and sets the interface when given', () => {
    const env = envOf(daemonSet(renderManifests(config({healthCheck: false, interface: 'bond0', apiPort: 8443}))))
    assert.ok(!('KARP_HEALTH_URL' in env))
    assert.equal(env.KARP_INTERFACE, 'bond0')
  })

  it("speaks the agent's env contract and gives a stopping agent its handover time", () => {
    const ds = daemonSet(renderManifests(config({interface: 'eth0'})))
    const known = new Set([...AGENT_ENV.map((v) => v.name), ...KUBERNETES_ENV])
    const names = (ds.spec?.template.spec?.containers[0]?.env ?? []).map((e) => e.name)
    for (const name of names) assert.ok(known.has(name), `${name} is not in agent/env.ts`)
    for (const v of AGENT_ENV.filter((e) => e.required)) assert.ok(names.includes(v.name), `required ${v.name} missing`)
    assert.equal(ds.spec?.template.spec?.terminationGracePeriodSeconds, TERMINATION_GRACE_PERIOD_SECONDS)
    assert.deepEqual(ds.spec?.template.spec?.containers[0]?.command, ['/usr/local/lib/karp/entrypoint.sh'])
  })

  it('follows the pod security contract', () => {
    const spec = daemonSet(renderManifests(config())).spec?.template.spec
    const container = spec?.containers[0]
    assert.equal(spec?.hostNetwork, true)
    assert.equal(spec?.priorityClassName, 'system-node-critical')
    assert.deepEqual(container?.securityContext?.capabilities, {drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW']})
    assert.equal(container?.securityContext?.readOnlyRootFilesystem, true)
    assert.equal(container?.securityContext?.allowPrivilegeEscalation, false)
    assert.equal(container?.securityContext?.seccompProfile?.type, 'RuntimeDefault')
    assert.ok(container?.resources?.requests && container.resources.limits)
    assert.ok(container?.livenessProbe && container.readinessProbe)
    assert.equal(daemonSet(renderManifests(config())).spec?.updateStrategy?.rollingUpdate?.maxUnavailable, 1)
  })

  it('rolls the pods when the password changes, and only then', () => {
    const hash = (c: VipConfig) => daemonSet(renderManifests(c)).spec?.template.metadata?.annotations?.[PASSWORD_FINGERPRINT_ANNOTATION]
    assert.equal(hash(config()), hash(config({vip: '192.168.1.251'})))
    assert.notEqual(hash(config()), hash(config({password: 'other'})))
  })

  it('annotates a salted scrypt digest of the password, not its plain hash', () => {
    const annotation = daemonSet(renderManifests(config())).spec?.template.metadata?.annotations?.[PASSWORD_FINGERPRINT_ANNOTATION] ?? ''
    // scrypt(N=2^14, r=8, p=1) salted with the annotation's name and the install, first 8 bytes: computed here independently.
    const expected = scryptSync('s3cret', `${PASSWORD_FINGERPRINT_ANNOTATION}\0karp-system/karp`, 8, {N: 16384, r: 8, p: 1}).toString('hex')
    assert.equal(annotation, `scrypt:${expected}`)
    // What an unsalted digest would give away, in any length or case, appears nowhere in the output.
    const rendered = JSON.stringify(renderManifests(config())).toLowerCase()
    for (const algorithm of ['sha256', 'sha1', 'md5', 'sha512']) {
      assert.ok(!rendered.includes(createHash(algorithm).update('s3cret').digest('hex').slice(0, 8)), algorithm)
    }
    // Another install with the same password gets another digest: no table computed once serves every cluster.
    const of = (c: VipConfig) => daemonSet(renderManifests(c)).spec?.template.metadata?.annotations?.[PASSWORD_FINGERPRINT_ANNOTATION]
    assert.notEqual(of(config({namespace: 'other'})), annotation)
    assert.notEqual(of(config({name: 'karp2'})), annotation)
    assert.equal(passwordFingerprint('s3cret', {namespace: 'karp-system', name: 'karp'}), annotation)
  })

  it('keeps hostile values as plain strings: no input changes the structure', () => {
    const hostile = 'x\n---\nkind: Secret\nmetadata: {name: pwned}'
    const objects = renderManifests(config({image: hostile, password: 'a: b\n- c'}))
    assert.equal(objects.length, 10)
    assert.equal(daemonSet(objects).spec?.template.spec?.containers[0]?.image, hostile)
  })

  it('selects control-plane nodes of every distribution by default, and only them', () => {
    const spec: V1PodSpec = daemonSet(renderManifests(config())).spec?.template.spec ?? {containers: []}
    assert.ok(podSpecSelectsNode(spec, {'node-role.kubernetes.io/control-plane': ''}), 'kubeadm')
    assert.ok(
      podSpecSelectsNode(spec, {'node-role.kubernetes.io/control-plane': 'true', 'node-role.kubernetes.io/master': 'true'}),
      'k3s/RKE2',
    )
    assert.ok(podSpecSelectsNode(spec, {'node-role.kubernetes.io/master': ''}), 'older kubeadm')
    assert.ok(podSpecSelectsNode(spec, {'node-role.kubernetes.io/controlplane': 'true'}), 'RKE')
    assert.ok(!podSpecSelectsNode(spec, {'node-role.kubernetes.io/worker': 'true'}))
    assert.ok(!podSpecSelectsNode(spec, {}))
    const samples: Array<Record<string, string>> = [
      {'node-role.kubernetes.io/control-plane': ''},
      {'node-role.kubernetes.io/master': 'true'},
      {'node-role.kubernetes.io/controlplane': 'true'},
      {'node-role.kubernetes.io/controlplane': 'false'},
      {'node-role.kubernetes.io/worker': 'true'},
      {},
    ]
    for (const labels of samples) assert.equal(isControlPlaneLabels(labels), podSpecSelectsNode(spec, labels), JSON.stringify(labels))
  })

  it('replaces the control-plane affinity with --node-selector', () => {
    const spec: V1PodSpec = daemonSet(renderManifests(config({nodeSelector: {key: 'karp', value: 'on'}}))).spec?.template.spec ?? {
      containers: [],
    }
    assert.deepEqual(spec.nodeSelector, {karp: 'on'})
    assert.equal(spec.affinity, undefined)
    assert.ok(podSpecSelectsNode(spec, {karp: 'on'}))
    assert.ok(!podSpecSelectsNode(spec, {karp: 'off', 'node-role.kubernetes.io/control-plane': ''}))
  })

  it('gives the agent only what it needs in RBAC', () => {
    type Rules = {rules: Array<{apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[]}>}
    type Binding = {roleRef: {kind: string; name: string}; subjects: Array<{kind: string; name: string; namespace: string}>}
    const objects = renderManifests(config({name: 'vip2', namespace: 'infra'}))
    const role = objects.find((o) => o.kind === 'Role') as unknown as Rules
    // In its namespace: a list of the pods (its peers, to rank itself), its own pod's status, Events.
    assert.deepEqual(
      role.rules.map((r) => [r.resources, r.verbs]),
      [
        [['pods'], ['list']],
        [['pods/status'], ['patch']],
        [['events'], ['create']],
      ],
    )
    // Cluster-wide, the agent reads Nodes one by one (its own, to notice a cordon): get, not list or watch.
    const clusterRole = objects.find((o) => o.kind === 'ClusterRole') as unknown as Rules
    assert.deepEqual(clusterRole.rules, [{apiGroups: [''], resources: ['nodes'], verbs: ['get']}])
    const binding = objects.find((o) => o.kind === 'ClusterRoleBinding') as unknown as Binding
    assert.deepEqual(binding.roleRef, {apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'karp-agent.infra.vip2'})
    assert.deepEqual(binding.subjects, [{kind: 'ServiceAccount', name: 'vip2', namespace: 'infra'}])
    // The node the agent reads is the one the downward API names, the one it runs on.
    const env = envOf(daemonSet(objects))
    assert.deepEqual(env.NODE_NAME, {fieldRef: {fieldPath: 'spec.nodeName'}})
    // Its peers: the pods of the DaemonSet's selector, of its own revision.
    assert.equal(env.KARP_PEER_SELECTOR, 'app.kubernetes.io/name=karp,app.kubernetes.io/instance=vip2')
    assert.deepEqual(daemonSet(objects).spec?.selector.matchLabels, {[NAME_LABEL]: APP_NAME, [INSTANCE_LABEL]: 'vip2'})
    assert.deepEqual(env.KARP_REVISION, {fieldRef: {fieldPath: "metadata.labels['controller-revision-hash']"}})
    const agent = readFileSync(new URL('../../agent/entrypoint.sh', import.meta.url), 'utf8')
    assert.match(agent, /api_get_start "\/api\/v1\/nodes\/\$NODE_NAME" node;/)
  })

  it("confines the agent to its own pod with a policy bound to exactly this install's ServiceAccount", () => {
    const objects = renderManifests(config({name: 'vip2', namespace: 'infra'}))
    type Policy = {
      spec: {failurePolicy: string; matchConditions: Array<{expression: string}>; variables: Array<{name: string; expression: string}>}
    }
    const policy = objects.find((o) => o.kind === 'ValidatingAdmissionPolicy') as unknown as Policy
    const binding = objects.find((o) => o.kind === 'ValidatingAdmissionPolicyBinding') as unknown as {
      spec: {policyName: string; validationActions: string[]}
    }
    assert.equal(policy.spec.failurePolicy, 'Fail')
    assert.deepEqual(
      policy.spec.matchConditions.map((c) => c.expression),
      ["request.userInfo.username == 'system:serviceaccount:infra:vip2'"],
    )
    assert.deepEqual(binding.spec, {policyName: 'karp-agent.infra.vip2', validationActions: ['Deny']})
    // The conditions the policy lets through: the role, which karp status reads, and the eligibility the
    // agents rank themselves by.
    assert.equal(
      policy.spec.variables.find((v) => v.name === 'agentConditions')?.expression,
      `['${ROLE_CONDITION}', '${ELIGIBLE_CONDITION}']`,
    )
    const agent = readFileSync(new URL('../../agent/lib.sh', import.meta.url), 'utf8')
    assert.match(
      agent,
      new RegExp(
        `PATCH "\\$api/pods/\\$POD_NAME/status" application/strategic-merge-patch\\+json[^\\n]*\\n[^\\n]*\\\\"type\\\\":\\\\"${ROLE_CONDITION}\\\\"`,
      ),
    )
  })

  it('marks the Namespace as created by karp, which uninstall requires before deleting one', () => {
    const ns = renderManifests(config()).find((o) => o.kind === 'Namespace') as unknown as {
      metadata: {annotations: Record<string, string>; labels: Record<string, string>}
    }
    assert.equal(ns.metadata.annotations[CREATED_BY_ANNOTATION], MANAGED_BY)
    assert.equal(ns.metadata.labels['pod-security.kubernetes.io/enforce'], 'privileged')
  })

  it('uses exactly the label and annotation keys of src/lib/constants.ts: the templates and the static pod spell them out', () => {
    const staticPod = renderStaticPod({
      ...config({name: 'vip2', vhid: 42, apiPort: 7443}),
      manifestFile: '/etc/kubernetes/manifests/vip2.yaml',
      passwordFile: '/etc/karp/password',
      caFile: '/etc/kubernetes/pki/ca.crt',
    })
    const objects = [...renderManifests(config({name: 'vip2', namespace: 'infra', vhid: 42, apiPort: 7443})), staticPod]
    const keys = new Set<string>()
    const collect = (node: unknown): void => {
      if (typeof node === 'string') for (const [key] of node.matchAll(/(?:app\.kubernetes\.io|karp\.io)\/[-A-Za-z0-9]+/g)) keys.add(key)
      else if (Array.isArray(node)) node.forEach(collect)
      else if (node !== null && typeof node === 'object') {
        for (const [k, v] of Object.entries(node)) {
          collect(k)
          collect(v)
        }
      }
    }
    collect(objects)
    // Every key constant but the Events' reporting component, which only the agent writes.
    const declared = Object.entries(constants)
      .filter(([name, value]) => typeof value === 'string' && /(?:LABEL|ANNOTATION|CONDITION)$/.test(name))
      .map(([, value]) => value)
    assert.deepEqual([...keys].sort(), [...declared].sort())
  })

  it('labels and annotates every object the way karp finds and reads installs back', () => {
    const objects = renderManifests(config({name: 'vip2', namespace: 'infra', vhid: 42, apiPort: 7443}))
    for (const o of objects) {
      const labels = o.metadata.labels ?? {}
      assert.equal(labels[NAME_LABEL], APP_NAME, `${o.kind} ${NAME_LABEL}`)
      assert.equal(labels[MANAGED_BY_LABEL], MANAGED_BY, `${o.kind} ${MANAGED_BY_LABEL}`)
      // The Namespace may hold other installs: it is no one install's.
      assert.equal(labels[INSTANCE_LABEL], o.kind === 'Namespace' ? undefined : 'vip2', `${o.kind} ${INSTANCE_LABEL}`)
    }
    const ds = daemonSet(objects)
    assert.equal(ds.metadata?.labels?.[COMPONENT_LABEL], AGENT_COMPONENT)
    assert.equal(ds.metadata?.labels?.[VERSION_LABEL], KARP_VERSION)
    assert.deepEqual(ds.metadata?.annotations, {[VIP_ANNOTATION]: '192.168.1.250', [VHID_ANNOTATION]: '42', [API_PORT_ANNOTATION]: '7443'})
    const found = describeInstall(ds)
    assert.deepEqual([found.namespace, found.name, found.vip, found.vhid, found.apiPort], ['infra', 'vip2', '192.168.1.250', 42, 7443])
    assert.deepEqual(ds.spec?.selector.matchLabels, {[NAME_LABEL]: APP_NAME, [INSTANCE_LABEL]: 'vip2'})
    assert.deepEqual(ds.spec?.template.metadata?.labels, {
      [NAME_LABEL]: APP_NAME,
      [INSTANCE_LABEL]: 'vip2',
      [COMPONENT_LABEL]: AGENT_COMPONENT,
    })
    assert.equal(envOf(ds).KARP_PEER_SELECTOR, instanceSelector('vip2'))
    assert.deepEqual(Object.keys(ds.spec?.template.metadata?.annotations ?? {}), [PASSWORD_FINGERPRINT_ANNOTATION])
    const ns = objects.find((o) => o.kind === 'Namespace') as unknown as V1Namespace
    assert.deepEqual(ns.metadata?.annotations, {[CREATED_BY_ANNOTATION]: MANAGED_BY})
    assert.ok(isCreatedByKarp(ns))
  })
})

describe('podSpecSelectsNode operators', () => {
  const term = (operator: string, values?: string[]) => ({
    affinity: {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{matchExpressions: [{key: 'k', operator, ...(values ? {values} : {})}]}],
        },
      },
    },
  })
  it('evaluates In, NotIn, Exists, DoesNotExist, Gt and Lt as the scheduler does', () => {
    assert.ok(podSpecSelectsNode(term('In', ['a', 'b']), {k: 'b'}))
    assert.ok(!podSpecSelectsNode(term('In', ['a']), {}))
    assert.ok(podSpecSelectsNode(term('NotIn', ['a']), {}))
    assert.ok(!podSpecSelectsNode(term('NotIn', ['a']), {k: 'a'}))
    assert.ok(podSpecSelectsNode(term('DoesNotExist'), {}))
    assert.ok(podSpecSelectsNode(term('Gt', ['3']), {k: '4'}))
    assert.ok(!podSpecSelectsNode(term('Lt', ['3']), {k: '4'}))
  })
})
