import type {V1Pod} from '@kubernetes/client-node'

import {
  MANAGED_BY,
  MANAGED_BY_LABEL,
  STATIC_MANIFEST_ANNOTATION,
  STATIC_PASSWORD_FILE_ANNOTATION,
  STATIC_POD_LABEL,
  STATIC_POD_NAMESPACE,
} from '../constants.js'
import type {PermissionNeed} from './access.js'
import type {Kube} from './client.js'
import {vipAnnotations} from './karp-installs.js'

/*
 * Static-pod agents (`karp bootstrap`): a kubelet runs them from a manifest file before the cluster exists,
 * and once it can reach the API server it publishes each as a mirror pod in STATIC_POD_NAMESPACE. That pod is
 * all the API knows of them: they have no credentials and report no role.
 */

/** The label selector of static-pod agents' mirror pods. */
export const STATIC_AGENT_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY},${STATIC_POD_LABEL}=true`

/** The annotation a kubelet puts on the mirror pod of each static pod. */
const MIRROR_ANNOTATION = 'kubernetes.io/config.mirror'

/** What listing static-pod agents takes. */
export const STATIC_AGENT_PERMISSION: PermissionNeed = {verb: 'list', group: '', resource: 'pods', namespace: STATIC_POD_NAMESPACE}

export interface StaticAgent {
  node: string
  pod: string
  vip?: string
  vhid?: number
  apiPort?: number
  /** Host path of the manifest on the node, from its annotation. */
  manifest?: string
  /** Host path of the password file on the node, from its annotation. */
  passwordFile?: string
  ready: boolean
  phase: string
  /** A kubelet's mirror pod; false for a pod of that shape created through the API, which no kubelet runs as a static pod. */
  mirror: boolean
  createdAt?: string
}

/** Whether a pod is a static-pod agent's, by the labels and namespace its manifest gives it. */
export function isStaticAgentPod(pod: V1Pod): boolean {
  const labels = pod.metadata?.labels ?? {}
  return pod.metadata?.namespace === STATIC_POD_NAMESPACE && labels[STATIC_POD_LABEL] === 'true' && labels[MANAGED_BY_LABEL] === MANAGED_BY
}

export function staticAgentOf(pod: V1Pod): StaticAgent {
  const annotations = pod.metadata?.annotations ?? {}
  const {vip, vhid, apiPort} = vipAnnotations(annotations)
  const manifest = annotations[STATIC_MANIFEST_ANNOTATION]
  const passwordFile = annotations[STATIC_PASSWORD_FILE_ANNOTATION]
  const created = pod.metadata?.creationTimestamp
  return {
    node: pod.spec?.nodeName ?? '',
    pod: pod.metadata?.name ?? '',
    ...(vip !== undefined ? {vip} : {}),
    ...(vhid !== undefined ? {vhid} : {}),
    ...(apiPort !== undefined ? {apiPort} : {}),
    ...(manifest ? {manifest} : {}),
    ...(passwordFile ? {passwordFile} : {}),
    ready: pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    phase: pod.metadata?.deletionTimestamp ? 'Terminating' : (pod.status?.phase ?? 'Unknown'),
    mirror: annotations[MIRROR_ANNOTATION] !== undefined,
    ...(created ? {createdAt: new Date(created).toISOString()} : {}),
  }
}

/** Static-pod agents in node order, from any list of pods (status lists every karp pod at once). */
export function staticAgentsIn(pods: V1Pod[]): StaticAgent[] {
  return pods
    .filter(isStaticAgentPod)
    .map(staticAgentOf)
    .sort((a, b) => a.node.localeCompare(b.node) || a.pod.localeCompare(b.pod))
}

/** Every static-pod agent the API shows: one list of STATIC_POD_NAMESPACE's pods by label. */
export async function listStaticAgents(kube: Kube): Promise<StaticAgent[]> {
  const list = await kube.call(`listing static-pod agents in namespace ${STATIC_POD_NAMESPACE}`, () =>
    kube.core.listNamespacedPod({namespace: STATIC_POD_NAMESPACE, labelSelector: STATIC_AGENT_SELECTOR}),
  )
  return staticAgentsIn(list.items)
}
