import type {CoreV1Event, V1DaemonSet, V1Node, V1Pod} from '@kubernetes/client-node'

import type {Kube} from '../kube/client.js'
import {KARP_SELECTOR} from '../kube/karp-installs.js'

/** What the agents report Events as (agent/lib.sh). */
export const AGENT_REPORTING_COMPONENT = 'karp.io/agent'

export interface ClusterSnapshot {
  daemonSets: V1DaemonSet[]
  pods: V1Pod[]
  nodes: V1Node[]
  events: CoreV1Event[]
  /** resourceVersion of each list, where a watch can start from. */
  resourceVersions: {daemonSets?: string; pods?: string; nodes?: string; events?: string}
}

/**
 * One list call per kind, whatever the cluster size: karp DaemonSets and pods by label, agent Events by
 * reporting component, and nodes (which nodes a DaemonSet selects is only known from their labels).
 */
export async function takeSnapshot(kube: Kube): Promise<ClusterSnapshot> {
  const [daemonSets, pods, nodes, events] = await Promise.all([
    kube.call('listing karp DaemonSets', () => kube.apps.listDaemonSetForAllNamespaces({labelSelector: KARP_SELECTOR})),
    kube.call('listing karp pods', () => kube.core.listPodForAllNamespaces({labelSelector: KARP_SELECTOR})),
    kube.call('listing nodes', () => kube.core.listNode()),
    kube.call('listing karp agent Events', () => kube.core.listEventForAllNamespaces({fieldSelector: `reportingComponent=${AGENT_REPORTING_COMPONENT}`})),
  ])
  return {
    daemonSets: daemonSets.items,
    pods: pods.items,
    nodes: nodes.items,
    events: events.items,
    resourceVersions: {
      daemonSets: daemonSets.metadata?.resourceVersion,
      pods: pods.metadata?.resourceVersion,
      nodes: nodes.metadata?.resourceVersion,
      events: events.metadata?.resourceVersion,
    },
  }
}
