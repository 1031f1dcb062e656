import {PatchStrategy, type V1Namespace, type V1PodSpec} from '@kubernetes/client-node'

import {generatePassword, type VipConfig} from '../config/vip-config.js'
import {checkPassword} from '../config/validate.js'
import {ApiException} from '@kubernetes/client-node'

import {CheckFailedError} from '../errors.js'
import {describeObject, applyObjects, type AppliedObject, FIELD_MANAGER} from '../kube/apply.js'
import {type PermissionNeed, requirePermissions} from '../kube/access.js'
import {type Kube, toKarpError} from '../kube/client.js'
import {resourceOf} from '../kube/resources.js'
import {listKarpInstalls, type KarpInstall} from '../kube/karp-installs.js'
import {waitForRollout, type RolloutStatus} from '../kube/rollout.js'
import {CONTROL_PLANE_SELECTION, podSpecSelectsNode} from '../manifests/node-selection.js'
import {manifestKinds, renderManifests, type ManifestObject} from '../manifests/render.js'
import {isAdmissionPolicyKind, noAdmissionPolicyWarning} from './admission-policy.js'
import {podSecurityProblem} from './namespace.js'
import {checkPlacement, nodeFacts, type NodeFacts} from './preflight.js'

export type PasswordSource = 'flag' | 'cluster' | 'generated'

/** What install learns from the cluster before deciding anything. */
export interface ClusterFacts {
  nodes: NodeFacts[]
  installs: KarpInstall[]
  namespace: V1Namespace | null
  /** Whether the API server serves ValidatingAdmissionPolicy (Kubernetes 1.30+). */
  admissionPolicies: boolean
  /** The password in this install's Secret, when one exists and is usable. */
  existingPassword?: string
}

/** Reads what every install decision depends on; needs only read access. */
export async function gatherClusterFacts(kube: Kube, target: {namespace: string; name: string}, admissionPolicies: boolean): Promise<ClusterFacts> {
  const [nodes, installs, namespace] = await Promise.all([
    kube.call('listing nodes', () => kube.core.listNode()),
    listKarpInstalls(kube),
    kube.nullIfNotFound(`reading namespace ${target.namespace}`, () => kube.core.readNamespace({name: target.namespace})),
  ])
  const secret = namespace
    ? await kube.nullIfNotFound(`reading Secret ${target.namespace}/${target.name}`, () => kube.core.readNamespacedSecret(target))
    : null
  const stored = secret?.data?.password === undefined ? undefined : Buffer.from(secret.data.password, 'base64').toString('utf8')
  const existingPassword = stored !== undefined && checkPassword(stored).ok ? stored : undefined
  return {nodes: nodes.items.map(nodeFacts), installs, namespace, admissionPolicies, ...(existingPassword ? {existingPassword} : {})}
}

export function choosePassword(given: string | undefined, facts: ClusterFacts): {password: string; source: PasswordSource} {
  if (given !== undefined) return {password: given, source: 'flag'}
  if (facts.existingPassword !== undefined) return {password: facts.existingPassword, source: 'cluster'}
  return {password: generatePassword(), source: 'generated'}
}

function daemonSetPodSpec(objects: ManifestObject[]): V1PodSpec {
  const ds = objects.find((o) => o.kind === 'DaemonSet') as {spec: {template: {spec: V1PodSpec}}} | undefined
  if (!ds) throw new Error('rendered manifests hold no DaemonSet')
  return ds.spec.template.spec
}

/** The nodes the rendered DaemonSet will run on, judged from its own pod spec. */
export function selectedNodes(objects: ManifestObject[], nodes: NodeFacts[]): NodeFacts[] {
  const spec = daemonSetPodSpec(objects)
  return nodes.filter((n) => podSpecSelectsNode(spec, n.labels))
}

export const describeSelection = (config: Pick<VipConfig, 'nodeSelector'>) =>
  config.nodeSelector
    ? `--node-selector ${config.nodeSelector.key}=${config.nodeSelector.value}`
    : `control-plane nodes: ${CONTROL_PLANE_SELECTION}`

export interface InstallPlan {
  config: VipConfig
  passwordSource: PasswordSource
  /** Objects to apply, in order; the Namespace only when it does not exist (an existing one is never touched). */
  objects: ManifestObject[]
  /** The namespace exists already: install leaves it as it is. */
  namespaceExists: boolean
  selected: NodeFacts[]
  warnings: string[]
}

/** Decides everything install will do, and refuses with every problem at once before any write. */
export function planInstall(config: VipConfig, passwordSource: PasswordSource, facts: ClusterFacts, subnetPrefix: number): InstallPlan {
  const rendered = renderManifests(config)
  const objects = rendered.filter(
    (o) => (o.kind !== 'Namespace' || facts.namespace === null) && (facts.admissionPolicies || !isAdmissionPolicyKind(o.kind)),
  )
  const selected = selectedNodes(rendered, facts.nodes)
  const verdict = checkPlacement({
    vip: config.vip,
    vhid: config.vhid,
    namespace: config.namespace,
    name: config.name,
    subnetPrefix,
    selected,
    allNodes: facts.nodes,
    installs: facts.installs,
    selection: describeSelection(config),
  })
  const podSecurity = facts.namespace ? podSecurityProblem(facts.namespace) : undefined
  const problems = [...verdict.problems, ...(podSecurity ? [podSecurity] : [])]
  if (problems.length > 0) {
    throw new CheckFailedError(`preflight failed, nothing was applied:\n  - ${problems.join('\n  - ')}`)
  }
  const warnings = [
    ...verdict.warnings,
    ...(facts.admissionPolicies ? [] : [noAdmissionPolicyWarning(config.namespace)]),
  ]
  return {config, passwordSource, objects, namespaceExists: facts.namespace !== null, selected, warnings}
}

/** Everything install reads or writes, for one access review before any of it. */
export function installPermissionNeeds(namespace: string, admissionPolicies: boolean): PermissionNeed[] {
  const reads: PermissionNeed[] = [
    {verb: 'list', group: '', resource: 'nodes'},
    {verb: 'list', group: 'apps', resource: 'daemonsets'},
  ]
  const writes = manifestKinds()
    .filter((k) => admissionPolicies || !isAdmissionPolicyKind(k.kind))
    .flatMap((k) => ['get', 'create', 'patch'].map((verb) => ({verb, ...resourceOf(k.kind), ...(k.namespaced ? {namespace} : {})})))
  return [...reads, ...writes]
}

/** Refuses up front, naming every missing permission, rather than failing half-way through an apply. */
export async function verifyPermissions(kube: Kube, namespace: string, admissionPolicies: boolean): Promise<void> {
  await requirePermissions(
    kube,
    installPermissionNeeds(namespace, admissionPolicies),
    'nothing was applied',
    'karp install needs to read nodes and karp DaemonSets, and to create and patch its objects; use a cluster-admin context or ask for these permissions',
  )
}

/**
 * Proves the apply would succeed without writing: a server-side dry run of every object whose namespace
 * exists already (admission, validation, RBAC escalation rules).
 */
export async function dryRunApply(kube: Kube, plan: InstallPlan): Promise<void> {
  // A dry run writes nothing, so the objects need no order among themselves.
  await Promise.all(
    plan.objects
      .filter((object) => !object.metadata.namespace || plan.namespaceExists)
      .map((object) =>
        kube.call(`dry-run apply of ${describeObject(object)} (nothing was applied)`, () =>
          kube.objects.patch(object, undefined, 'All', FIELD_MANAGER, true, PatchStrategy.ServerSideApply),
        ),
      ),
  )
}

export interface InstallResult {
  name: string
  namespace: string
  vip: string
  vhid: number
  passwordSource: PasswordSource
  nodes: string[]
  objects: AppliedObject[]
  rollout: RolloutStatus | null
  warnings: string[]
}

/**
 * Creates the namespace, never applies it: should it have appeared since karp looked, the create fails
 * instead of taking over someone else's namespace.
 */
async function createNamespace(kube: Kube, namespace: ManifestObject): Promise<AppliedObject> {
  try {
    await kube.core.createNamespace({body: namespace})
  } catch (error) {
    if (error instanceof ApiException && error.code === 409) {
      throw new CheckFailedError(
        `namespace ${namespace.metadata.name} was created by someone else while karp was installing; karp leaves it as it is and applied nothing`,
        'run karp install again: it checks the namespace and installs into it without changing it',
      )
    }
    throw toKarpError(error, `creating namespace ${namespace.metadata.name}`, kube.server)
  }
  return {kind: 'Namespace', name: namespace.metadata.name, action: 'created'}
}

export async function executeInstall(
  kube: Kube,
  plan: InstallPlan,
  options: {wait: boolean; timeoutMs: number; onProgress: (status: RolloutStatus) => void},
): Promise<InstallResult> {
  const namespace = plan.objects.find((o) => o.kind === 'Namespace')
  const created = namespace
    ? await createNamespace(kube, namespace)
    : ({kind: 'Namespace', name: plan.config.namespace, action: 'unchanged'} satisfies AppliedObject)
  const objects = [created, ...(await applyObjects(kube, plan.objects.filter((o) => o.kind !== 'Namespace')))]
  const rollout = options.wait
    ? await waitForRollout(kube, {namespace: plan.config.namespace, name: plan.config.name}, options.timeoutMs, options.onProgress, plan.selected.length)
    : null
  return {
    name: plan.config.name,
    namespace: plan.config.namespace,
    vip: plan.config.vip,
    vhid: plan.config.vhid,
    passwordSource: plan.passwordSource,
    nodes: plan.selected.map((n) => n.name),
    objects,
    rollout,
    warnings: plan.warnings,
  }
}
