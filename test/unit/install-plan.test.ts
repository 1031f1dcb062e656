import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import type {V1Namespace} from '@kubernetes/client-node'

import {validateVipInput} from '../../src/lib/config/vip-config.js'
import {applyWave, type ClusterFacts, installPermissionNeeds, planInstall} from '../../src/lib/install/install.js'
import {checkInstallNamespace, checkRenderNamespace, isCreatedByKarp, podSecurityProblem} from '../../src/lib/install/namespace.js'
import type {NodeFacts} from '../../src/lib/install/preflight.js'
import {CheckFailedError} from '../../src/lib/errors.js'
import {CREATED_BY_ANNOTATION, DEFAULT_SUBNET_PREFIX, MANAGED_BY, MANAGED_BY_LABEL} from '../../src/lib/constants.js'

const node = (name: string, ip: string): NodeFacts => ({
  name,
  labels: {'node-role.kubernetes.io/control-plane': ''},
  internalIPv4: [ip],
  addresses: [ip],
})
const nodes = [node('cp1', '192.168.1.11'), node('cp2', '192.168.1.12'), node('cp3', '192.168.1.13')]
const config = (namespace = 'karp-system') => ({...validateVipInput({namespace}).settings, vip: '192.168.1.250', password: 's3cret'})
const facts = (overrides: Partial<ClusterFacts> = {}): ClusterFacts => ({
  nodes,
  installs: [],
  staticAgents: [],
  namespace: null,
  admissionPolicies: true,
  ...overrides,
})
const namespace = (name: string, labels: Record<string, string> = {}, annotations: Record<string, string> = {}): V1Namespace => ({
  metadata: {name, labels, annotations},
})

describe('planInstall: the namespace', () => {
  it('creates a namespace that does not exist, and leaves out one that does, whatever its labels', () => {
    assert.equal(planInstall(config(), 'flag', facts(), DEFAULT_SUBNET_PREFIX).objects[0]?.kind, 'Namespace')
    const existing = [
      namespace('karp-system'),
      namespace('karp-system', {[MANAGED_BY_LABEL]: MANAGED_BY, 'pod-security.kubernetes.io/enforce': 'privileged'}),
      namespace('karp-system', {}, {[CREATED_BY_ANNOTATION]: MANAGED_BY}),
    ]
    for (const ns of existing) {
      const plan = planInstall(config(), 'flag', facts({namespace: ns}), DEFAULT_SUBNET_PREFIX)
      assert.ok(!plan.objects.some((o) => o.kind === 'Namespace'), JSON.stringify(ns))
      assert.equal(plan.namespaceExists, true)
    }
  })

  it('refuses an existing namespace whose Pod Security level rejects the agent, with the kubectl command', () => {
    for (const level of ['baseline', 'restricted']) {
      assert.throws(
        () =>
          planInstall(
            config('team'),
            'flag',
            facts({namespace: namespace('team', {'pod-security.kubernetes.io/enforce': level})}),
            DEFAULT_SUBNET_PREFIX,
          ),
        (error: Error) =>
          error instanceof CheckFailedError &&
          error.message ===
            'preflight failed, nothing was applied:\n' +
              `  - namespace team enforces Pod Security level "${level}", which rejects the agent (host network, NET_ADMIN and NET_RAW need "privileged"); ` +
              'allow it with: kubectl label namespace team pod-security.kubernetes.io/enforce=privileged --overwrite',
      )
    }
    // Privileged, or no level of its own (the cluster default, privileged unless configured otherwise): fine.
    assert.equal(podSecurityProblem(namespace('team', {'pod-security.kubernetes.io/enforce': 'privileged'})), undefined)
    assert.equal(podSecurityProblem(namespace('team', {'pod-security.kubernetes.io/warn': 'restricted'})), undefined)
  })

  it("deletes on uninstall only what it created: the annotation, not karp's labels", () => {
    assert.equal(isCreatedByKarp(namespace('x', {}, {[CREATED_BY_ANNOTATION]: MANAGED_BY})), true)
    assert.equal(isCreatedByKarp(namespace('x', {[MANAGED_BY_LABEL]: MANAGED_BY})), false)
    assert.equal(isCreatedByKarp(null), false)
  })

  it('refuses system namespaces unless allowed; render prints the Namespace only for karp-system or when asked', () => {
    for (const ns of ['kube-system', 'kube-public', 'kube-node-lease', 'default']) {
      assert.equal(checkInstallNamespace(ns, false).ok, false)
      assert.deepEqual(checkInstallNamespace(ns, true), {ok: true, value: ns})
      assert.equal(checkRenderNamespace(ns, true).ok, false)
      assert.deepEqual(checkRenderNamespace(ns, undefined), {ok: true, value: false})
    }
    assert.deepEqual(checkInstallNamespace('kube-system-2', false), {ok: true, value: 'kube-system-2'})
    assert.deepEqual(checkRenderNamespace('karp-system', undefined), {ok: true, value: true})
    assert.deepEqual(checkRenderNamespace('karp-system', false), {ok: true, value: false})
    assert.deepEqual(checkRenderNamespace('infra', undefined), {ok: true, value: false})
    assert.deepEqual(checkRenderNamespace('infra', true), {ok: true, value: true})
  })
})

describe('planInstall: clusters without ValidatingAdmissionPolicy (before 1.30)', () => {
  it('leaves the policy out, says what the token can still do, and asks for no permission on it', () => {
    const plan = planInstall(config(), 'flag', facts({admissionPolicies: false}), DEFAULT_SUBNET_PREFIX)
    assert.deepEqual(
      plan.objects.map((o) => o.kind),
      ['Namespace', 'ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding', 'Secret', 'DaemonSet'],
    )
    assert.match(
      plan.warnings.join('\n'),
      /no ValidatingAdmissionPolicy \(Kubernetes before 1\.30\): the agent's token still cannot change any pod's spec or read anything, but it can patch the status, labels and annotations of any pod in namespace karp-system, not only its own; upgrade to 1\.30 or newer/,
    )
    assert.ok(!installPermissionNeeds('karp-system', false).some((n) => n.group === 'admissionregistration.k8s.io'))
  })

  it('asks permission for the cluster-wide ClusterRole and its binding, on every cluster', () => {
    for (const admissionPolicies of [false, true]) {
      const needs = installPermissionNeeds('karp-system', admissionPolicies).filter((n) => n.resource.startsWith('clusterrole'))
      assert.deepEqual(
        needs.map((n) => [n.verb, n.group, n.resource, n.namespace]),
        [
          ['create', 'rbac.authorization.k8s.io', 'clusterroles', undefined],
          ['patch', 'rbac.authorization.k8s.io', 'clusterroles', undefined],
          ['create', 'rbac.authorization.k8s.io', 'clusterrolebindings', undefined],
          ['patch', 'rbac.authorization.k8s.io', 'clusterrolebindings', undefined],
        ],
      )
    }
  })

  it('ships and asks permission for the policy where the API server has it', () => {
    const plan = planInstall(config(), 'flag', facts(), DEFAULT_SUBNET_PREFIX)
    assert.deepEqual(
      plan.objects.filter((o) => o.kind.startsWith('ValidatingAdmissionPolicy')).map((o) => o.metadata.name),
      ['karp-agent.karp-system.karp', 'karp-agent.karp-system.karp'],
    )
    assert.deepEqual(plan.warnings, [])
    const needs = installPermissionNeeds('karp-system', true).filter((n) => n.group === 'admissionregistration.k8s.io')
    assert.deepEqual(
      needs.map((n) => [n.verb, n.resource, n.namespace]),
      [
        ['create', 'validatingadmissionpolicies', undefined],
        ['patch', 'validatingadmissionpolicies', undefined],
        ['create', 'validatingadmissionpolicybindings', undefined],
        ['patch', 'validatingadmissionpolicybindings', undefined],
      ],
    )
  })
})

describe('install: what it asks and in which order it applies', () => {
  it('asks for every read it makes and a create and a patch of each kind, nothing it does not do', () => {
    const needs = installPermissionNeeds('team', true).map((n) => `${n.verb} ${n.resource}${n.namespace ? ` in ${n.namespace}` : ''}`)
    const writes = ['create', 'patch'].flatMap((verb) =>
      [
        'namespaces',
        'serviceaccounts in team',
        'roles in team',
        'rolebindings in team',
        'clusterroles',
        'clusterrolebindings',
        'secrets in team',
        'daemonsets in team',
        'validatingadmissionpolicies',
        'validatingadmissionpolicybindings',
      ].map((r) => `${verb} ${r}`),
    )
    assert.deepEqual(
      [...needs].sort(),
      [
        ...writes,
        'list nodes',
        'list daemonsets',
        'list pods in kube-system',
        'get namespaces',
        'get secrets in team',
        'get daemonsets in team',
      ].sort(),
    )
  })

  it('applies the admission policy before any permission it confines, and the DaemonSet after everything', () => {
    const plan = planInstall(config(), 'flag', facts(), DEFAULT_SUBNET_PREFIX)
    const wave = Object.fromEntries(plan.objects.map((o) => [o.kind, applyWave(o)]))
    for (const rbac of ['Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding']) {
      assert.ok((wave[rbac] as number) > (wave.ValidatingAdmissionPolicy as number), rbac)
      assert.ok((wave[rbac] as number) > (wave.ValidatingAdmissionPolicyBinding as number), rbac)
    }
    for (const kind of plan.objects.map((o) => o.kind).filter((k) => k !== 'DaemonSet'))
      assert.ok((wave.DaemonSet as number) > (wave[kind] as number), kind)
    assert.equal(wave.Secret, wave.ServiceAccount)
  })
})
