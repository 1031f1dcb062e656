import {PatchStrategy, type V1Namespace} from '@kubernetes/client-node'

import {generatePassword, type VipConfig, type VipSettings} from '../config/vip-config.js'
import {checkPassword} from '../config/validate.js'
import {ApiException} from '@kubernetes/client-node'

import {CheckFailedError, type CommandResult, ExitCode} from '../errors.js'
import {describeObject, applyObjects, type AppliedObject, FIELD_MANAGER, settleAll} from '../kube/apply.js'
import {forbidden, missingPermissions, type PermissionNeed} from '../kube/access.js'
import {type Kube, toKarpError} from '../kube/client.js'
import {resourceOf} from '../kube/resources.js'
import {listKarpInstalls, type KarpInstall} from '../kube/karp-installs.js'
import {listStaticAgents, STATIC_AGENT_PERMISSION, type StaticAgent} from '../kube/static-agents.js'
import {waitForRollout, type RolloutStatus} from '../kube/rollout.js'
import {agentSelectsNode, CONTROL_PLANE_SELECTION} from '../manifests/node-selection.js'
import {manifestKinds, renderManifests, type ManifestObject} from '../manifests/render.js'
import {ADMISSION_POLICY_GROUP, isAdmissionPolicyKind, noAdmissionPolicyWarning, supportsAdmissionPolicies} from './admission-policy.js'
import {handoverPlan, type HandoverPlan} from './handover.js'
import {podSecurityProblem} from './namespace.js'
import {checkPlacement, nodeFacts, type NodeFacts} from './preflight.js'

export type PasswordSource = 'flag' | 'cluster' | 'generated'

/** What install learns from the cluster before deciding anything. */
export interface ClusterFacts {
  nodes: NodeFacts[]
  installs: KarpInstall[]
  /** Static-pod agents (karp bootstrap) this install takes over from. */
  staticAgents: StaticAgent[]
  namespace: V1Namespace | null
  /** Whether the API server serves ValidatingAdmissionPolicy (Kubernetes 1.30+). */
  admissionPolicies: boolean
  /** The password in this install's Secret, when one exists and is usable. */
  existingPassword?: string
}

/**
 * What install learns from the cluster before deciding anything, in one round of concurrent requests:
 * whether the API server serves admission policies, which of install's permissions the current identity
 * lacks (one SelfSubjectAccessReview each), and what preflight judges. A missing permission is reported
 * before any failed read, naming every one, rather than the first read it broke.
 */
export async function inspectCluster(kube: Kube, target: {namespace: string; name: string}): Promise<ClusterFacts> {
  const [discovery, review, reads] = await Promise.allSettled([
    supportsAdmissionPolicies(kube),
    missingPermissions(kube, installPermissionNeeds(target.namespace, true)),
    readClusterFacts(kube, target),
  ])
  if (discovery.status === 'rejected') throw discovery.reason
  const admissionPolicies = discovery.value
  if (review.status === 'rejected') throw review.reason
  const missing = review.value.filter((need) => admissionPolicies || need.group !== ADMISSION_POLICY_GROUP)
  if (missing.length > 0) {
    throw forbidden(
      kube,
      missing,
      'nothing was applied',
      `karp install needs to read nodes, karp DaemonSets and the static-pod agents' pods in ${STATIC_AGENT_PERMISSION.namespace}, and to create and patch its objects; use a cluster-admin context or ask for these permissions`,
    )
  }
  if (reads.status === 'rejected') throw reads.reason
  return {...reads.value, admissionPolicies}
}

/** The reads preflight and the password choice depend on; needs only read access. */
async function readClusterFacts(kube: Kube, target: {namespace: string; name: string}): Promise<Omit<ClusterFacts, 'admissionPolicies'>> {
  // The Secret is asked for even when its namespace may not exist: a 404 answers that as well, in the same round.
  const [nodes, installs, staticAgents, namespace, secret] = await Promise.all([
    kube.call('listing nodes', () => kube.core.listNode()),
    listKarpInstalls(kube),
    listStaticAgents(kube),
    kube.nullIfNotFound(`reading namespace ${target.namespace}`, () => kube.core.readNamespace({name: target.namespace})),
    kube.nullIfNotFound(`reading Secret ${target.namespace}/${target.name}`, () => kube.core.readNamespacedSecret(target)),
  ])
  const stored =
    namespace && secret?.data?.password !== undefined ? Buffer.from(secret.data.password, 'base64').toString('utf8') : undefined
  const existingPassword = stored !== undefined && checkPassword(stored).ok ? stored : undefined
  return {nodes: nodes.items.map(nodeFacts), installs, staticAgents, namespace, ...(existingPassword ? {existingPassword} : {})}
}

export function choosePassword(given: string | undefined, facts: ClusterFacts): {password: string; source: PasswordSource} {
  if (given !== undefined) return {password: given, source: 'flag'}
  if (facts.existingPassword !== undefined) return {password: facts.existingPassword, source: 'cluster'}
  return {password: generatePassword(), source: 'generated'}
}

/** The nodes the DaemonSet rendered for these settings will run the agent on. */
export function selectedNodes(settings: Pick<VipSettings, 'nodeSelector'>, nodes: NodeFacts[]): NodeFacts[] {
  return nodes.filter((n) => agentSelectsNode(settings, n.labels))
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
  /** When static-pod agents run: the order to remove their manifests in once the DaemonSet runs. */
  handover?: HandoverPlan
}

/** Decides everything install will do, and refuses with every problem at once before any write. */
export function planInstall(config: VipConfig, passwordSource: PasswordSource, facts: ClusterFacts, subnetPrefix: number): InstallPlan {
  const objects = renderManifests(config).filter(
    (o) => (o.kind !== 'Namespace' || facts.namespace === null) && (facts.admissionPolicies || !isAdmissionPolicyKind(o.kind)),
  )
  const selected = selectedNodes(config, facts.nodes)
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
    staticAgentNodes: facts.staticAgents.filter((a) => a.vip === config.vip).map((a) => a.node),
  })
  const podSecurity = facts.namespace ? podSecurityProblem(facts.namespace) : undefined
  const problems = [...verdict.problems, ...(podSecurity ? [podSecurity] : [])]
  if (problems.length > 0) {
    throw new CheckFailedError(`preflight failed, nothing was applied:\n  - ${problems.join('\n  - ')}`)
  }
  const warnings = [...verdict.warnings, ...(facts.admissionPolicies ? [] : [noAdmissionPolicyWarning(config.namespace)])]
  const handover =
    facts.staticAgents.length > 0
      ? handoverPlan(facts.staticAgents, config.vip, facts.nodes, new Set(selected.map((n) => n.name)))
      : undefined
  return {config, passwordSource, objects, namespaceExists: facts.namespace !== null, selected, warnings, ...(handover ? {handover} : {})}
}

/**
 * Everything install does, for the access reviews before any of it: the reads of preflight and of the
 * rollout wait, and a create and a patch of each kind (a server-side apply, dry run or not, is a patch that
 * creates what does not exist).
 */
export function installPermissionNeeds(namespace: string, admissionPolicies: boolean): PermissionNeed[] {
  const reads: PermissionNeed[] = [
    {verb: 'list', group: '', resource: 'nodes'},
    {verb: 'list', group: 'apps', resource: 'daemonsets'},
    {verb: 'get', group: '', resource: 'namespaces'},
    {verb: 'get', group: '', resource: 'secrets', namespace},
    {verb: 'get', group: 'apps', resource: 'daemonsets', namespace},
    STATIC_AGENT_PERMISSION,
  ]
  const writes = manifestKinds()
    .filter((k) => admissionPolicies || !isAdmissionPolicyKind(k.kind))
    .flatMap((k) => ['create', 'patch'].map((verb) => ({verb, ...resourceOf(k.kind), ...(k.namespaced ? {namespace} : {})})))
  return [...reads, ...writes]
}

/**
 * What each object holds now, as the dry run saw it: its resourceVersion, or null when it does not exist.
 * An object that could not be dry-run (its namespace is created by this install) is missing.
 */
export type StoredVersions = Map<ManifestObject, string | null>

/**
 * Proves the apply would succeed without writing: a server-side dry run of every object whose namespace
 * exists already (admission, validation, RBAC escalation rules), all at once; any failure stops the
 * install before its first write. Returns what each object holds now, so the apply's answer alone tells
 * whether it changed anything.
 */
export async function dryRunApply(kube: Kube, plan: InstallPlan): Promise<StoredVersions> {
  const objects = plan.objects.filter((object) => !object.metadata.namespace || plan.namespaceExists)
  const answers = await settleAll(
    objects.map((object) =>
      kube.call(`dry-run apply of ${describeObject(object)} (nothing was applied)`, () =>
        kube.objects.patch(object, undefined, 'All', FIELD_MANAGER, true, PatchStrategy.ServerSideApply),
      ),
    ),
  )
  // A dry run stores nothing, so the resourceVersion it answers with is the stored object's, none if absent.
  return new Map(objects.map((object, i) => [object, answers[i]?.metadata?.resourceVersion ?? null]))
}

/**
 * When each object is applied: the objects of a wave together, each wave once the one before is stored.
 * Permissions (RBAC) only after the admission policy that confines what they grant; the DaemonSet, whose
 * pods use all the rest, last.
 */
export function applyWave(object: {kind: string}): number {
  if (object.kind === 'DaemonSet') return 2
  return resourceOf(object.kind).group === 'rbac.authorization.k8s.io' ? 1 : 0
}

/** What `karp install --json` prints. */
export interface InstallResult extends CommandResult {
  name: string
  namespace: string
  vip: string
  vhid: number
  passwordSource: PasswordSource
  nodes: string[]
  objects: AppliedObject[]
  rollout: RolloutStatus | null
  warnings: string[]
  /** The static-pod agents (karp bootstrap) the DaemonSet takes over from; only when there are any. */
  staticAgents?: Array<{node: string; manifest?: string}>
  /** The order to remove their manifests in, one node at a time; holder: the node known to hold the VIP (last). */
  handover?: {order: string[]; holder?: string}
  /** 0: every object applied (and, with --wait, rolled out); what stops short of that is thrown instead. */
  exitCode: typeof ExitCode.ok
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
  stored: StoredVersions,
  options: {wait: boolean; timeoutMs: number; onProgress: (status: RolloutStatus) => void},
): Promise<InstallResult> {
  const namespace = plan.objects.find((o) => o.kind === 'Namespace')
  const created = namespace
    ? await createNamespace(kube, namespace)
    : ({kind: 'Namespace', name: plan.config.namespace, action: 'unchanged'} satisfies AppliedObject)
  const applied = await applyObjects(
    kube,
    plan.objects.filter((o) => o.kind !== 'Namespace'),
    applyWave,
    (o) => stored.get(o) ?? null,
  )
  const objects = [created, ...applied]
  const rollout = options.wait
    ? await waitForRollout(
        kube,
        {namespace: plan.config.namespace, name: plan.config.name},
        options.timeoutMs,
        options.onProgress,
        plan.selected.length,
      )
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
    ...(plan.handover
      ? {
          staticAgents: plan.handover.order.map((s) => ({node: s.node, ...(s.manifest ? {manifest: s.manifest} : {})})),
          handover: {order: plan.handover.order.map((s) => s.node), ...(plan.handover.holder ? {holder: plan.handover.holder} : {})},
        }
      : {}),
    exitCode: ExitCode.ok,
  }
}
