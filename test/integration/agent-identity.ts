// Acting as the karp agent of one pod against the real API server: its ServiceAccount's token from the
// TokenRequest API, bound to the pod as the kubelet's projected volume binds it (the API server then puts
// the pod's name into the user's extra info), and the role report agent/lib.sh sends.
import {CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, type V1Pod} from '@kubernetes/client-node'

import type {ClusterEnv} from './cluster-env.js'
import {ROLE_CONDITION} from '../../src/lib/constants.js'

/** A token for the pod's ServiceAccount; bound to the pod unless bound is false (as `kubectl create token`). */
export async function serviceAccountToken(admin: CoreV1Api, pod: V1Pod, bound = true): Promise<string> {
  const request = await admin.createNamespacedServiceAccountToken({
    name: pod.spec?.serviceAccountName ?? 'default',
    namespace: pod.metadata?.namespace as string,
    body: {
      spec: {
        audiences: [],
        expirationSeconds: 600,
        ...(bound ? {boundObjectRef: {apiVersion: 'v1', kind: 'Pod', name: pod.metadata?.name, uid: pod.metadata?.uid}} : {}),
      },
    },
  })
  const token = request.status?.token
  if (!token) throw new Error('TokenRequest returned no token')
  return token
}

/** A client that authenticates with nothing but this bearer token. */
export function clientWithToken(cluster: ClusterEnv, token: string): {kc: KubeConfig; core: CoreV1Api} {
  const kc = new KubeConfig()
  kc.loadFromOptions({
    clusters: [{name: 'test', server: cluster.server, caFile: cluster.caFile}],
    users: [{name: 'agent', token}],
    contexts: [{name: 'agent', cluster: 'test', user: 'agent'}],
    currentContext: 'agent',
  })
  return {kc, core: kc.makeApiClient(CoreV1Api)}
}

export const strategicMerge = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch)

/** The role report agent/lib.sh sends: the karp.io/role condition, by strategic merge patch on pods/status. */
export function roleCondition(role: 'master' | 'backup', at = new Date()) {
  return {
    type: ROLE_CONDITION,
    status: 'True',
    reason: role === 'master' ? 'Master' : 'Backup',
    message: `is ${role}`,
    // Whole seconds, as the agent's `date -u +%Y-%m-%dT%H:%M:%SZ` and the API server keep them.
    lastTransitionTime: new Date(Math.floor(at.getTime() / 1000) * 1000),
  }
}

export async function reportRole(
  agent: CoreV1Api,
  pod: {name: string; namespace: string},
  role: 'master' | 'backup',
  at?: Date,
): Promise<V1Pod> {
  return agent.patchNamespacedPodStatus({...pod, body: {status: {conditions: [roleCondition(role, at)]}}}, strategicMerge)
}
