import {ApiException, type CoreV1Event, type V1DaemonSet, type V1Node, type V1Pod} from '@kubernetes/client-node'

import {AGENT_REPORTING_COMPONENT, KARP_SELECTOR} from '../constants.js'
import {type PermissionNeed, requirePermissions} from '../kube/access.js'
import {type Kube, toKarpError} from '../kube/client.js'
import {nodeLabelSelectors} from '../manifests/node-selection.js'
import {reportedRole} from './verdict.js'

/** Where each kubelet renews its Lease, named after its node. */
const NODE_LEASE_NAMESPACE = 'kube-node-lease'

export interface ClusterSnapshot {
  daemonSets: V1DaemonSet[]
  pods: V1Pod[]
  /** The nodes the DaemonSets may select, and those the agent pods run on; not every node of the cluster. */
  nodes: V1Node[]
  events: CoreV1Event[]
  /**
   * When more than one agent reports master: when each such node's kubelet last renewed its Lease in
   * kube-node-lease (every 10 s while it runs), by node name. Missing when unreadable.
   */
  heartbeats?: Record<string, string>
}

/** What status reads: lists of each kind, cluster-wide. */
export const STATUS_PERMISSIONS: PermissionNeed[] = [
  {verb: 'list', group: 'apps', resource: 'daemonsets'},
  {verb: 'list', group: '', resource: 'pods'},
  {verb: 'list', group: '', resource: 'nodes'},
  {verb: 'list', group: '', resource: 'events'},
]

/** One list of nodes: by label selector ('' is every node) or by name. */
export type NodeQuery = {labelSelector: string} | {fieldSelector: string}

/**
 * The node lists that hold every node the DaemonSets may select: one per distinct label selector of their
 * node-affinity terms (the default install: three, one per control-plane label). A cluster of thousands of
 * workers then answers with its few control-plane nodes, not with all of them.
 */
export function selectedNodeQueries(daemonSets: V1DaemonSet[]): NodeQuery[] {
  const selectors = new Set(daemonSets.flatMap((ds) => (ds.spec?.template.spec ? nodeLabelSelectors(ds.spec.template.spec) : [])))
  return selectors.has('') ? [{labelSelector: ''}] : [...selectors].map((labelSelector) => ({labelSelector}))
}

/** Nodes that agent pods run on but that no list of `nodes` holds (a pod that outlived a change of selection). */
export function unlistedNodeQueries(pods: V1Pod[], nodes: Pick<V1Node, 'metadata'>[]): NodeQuery[] {
  const listed = new Set(nodes.map((n) => n.metadata?.name))
  const missing = new Set(pods.flatMap((p) => (p.spec?.nodeName && !listed.has(p.spec.nodeName) ? [p.spec.nodeName] : [])))
  return [...missing].map((name) => ({fieldSelector: `metadata.name=${name}`}))
}

/**
 * Reads what status judges: karp DaemonSets and pods by label and agent Events by reporting component
 * (one list each, at once), then only the nodes those DaemonSets may select, by label selector, and any
 * other node an agent runs on, by name.
 */
export async function takeSnapshot(kube: Kube): Promise<ClusterSnapshot> {
  const list = async <T>(doing: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await call()
    } catch (error) {
      // One refusal seldom comes alone: name every permission status lacks, not just the first one hit.
      if (error instanceof ApiException && error.code === 403) {
        await requirePermissions(
          kube,
          STATUS_PERMISSIONS,
          'nothing could be read',
          'karp status lists DaemonSets, pods, nodes and events in all namespaces; ask a cluster admin, or use a context that may',
        )
      }
      throw toKarpError(error, doing, kube.server)
    }
  }
  const listNodes = async (queries: NodeQuery[]) =>
    (await Promise.all(queries.map(async (query) => (await list('listing nodes', () => kube.core.listNode(query))).items))).flat()
  const [daemonSets, pods, events] = await Promise.all([
    list('listing karp DaemonSets', () => kube.apps.listDaemonSetForAllNamespaces({labelSelector: KARP_SELECTOR})),
    list('listing karp pods', () => kube.core.listPodForAllNamespaces({labelSelector: KARP_SELECTOR})),
    list('listing karp agent Events', () =>
      kube.core.listEventForAllNamespaces({fieldSelector: `reportingComponent=${AGENT_REPORTING_COMPONENT}`}),
    ),
  ])
  const [selected, heartbeats] = await Promise.all([
    listNodes(selectedNodeQueries(daemonSets.items)),
    heartbeatsOfMasters(kube, pods.items),
  ])
  const byName = new Map(selected.map((n) => [n.metadata?.name, n]))
  for (const n of await listNodes(unlistedNodeQueries(pods.items, selected))) byName.set(n.metadata?.name, n)
  return {daemonSets: daemonSets.items, pods: pods.items, nodes: [...byName.values()], events: events.items, heartbeats}
}

/**
 * Two agents reporting master are a split brain, or one of them is on a node that went down after it
 * reported (its pod still shows Running until the node controller notices, about 40 s). The kubelet's
 * Lease tells them apart; read only in that case (one GET per such node), and optional: a user who may not
 * read Leases gets the split brain as before.
 */
export async function heartbeatsOfMasters(kube: Kube, pods: V1Pod[]): Promise<Record<string, string>> {
  const masters = nodesReportingMaster(pods)
  if (masters.length < 2) return {}
  const beats = await Promise.all(
    masters.map(async (node) => {
      try {
        const renewed = (await kube.coordination.readNamespacedLease({name: node, namespace: NODE_LEASE_NAMESPACE})).spec?.renewTime
        return renewed ? ([node, new Date(renewed).toISOString()] as const) : undefined
      } catch {
        return undefined
      }
    }),
  )
  return Object.fromEntries(beats.filter((b) => b !== undefined))
}

/** Nodes whose karp agent last reported master, each once. */
export function nodesReportingMaster(pods: V1Pod[]): string[] {
  return [...new Set(pods.filter((p) => reportedRole(p) === 'master').flatMap((p) => (p.spec?.nodeName ? [p.spec.nodeName] : [])))]
}
