import type {CoreV1Event, V1DaemonSet, V1Node, V1Pod, V1PodCondition} from '@kubernetes/client-node'

import {DEFAULT_API_PORT, INSTANCE_LABEL, ROLE_CONDITION} from '../constants.js'
import {handoverInProgress, handoverPlan} from '../install/handover.js'
import {describeInstall} from '../kube/karp-installs.js'
import type {StaticAgent} from '../kube/static-agents.js'
import {rolloutStatus} from '../kube/rollout.js'
import {podSpecSelectsNode} from '../manifests/node-selection.js'
import type {ClusterSnapshot} from './gather.js'

const ROLE_REASONS: Record<string, Role> = {Master: 'master', Backup: 'backup'}

export type Role = 'master' | 'backup' | 'unknown'

function roleCondition(pod: V1Pod): V1PodCondition | undefined {
  return pod.status?.conditions?.find((c) => c.type === ROLE_CONDITION && c.status === 'True')
}

const roleIn = (condition: V1PodCondition | undefined): Role =>
  (condition?.reason !== undefined && ROLE_REASONS[condition.reason]) || 'unknown'

/** The role the pod's agent last reported in its condition, whatever its age. */
export function reportedRole(pod: V1Pod): Role {
  return roleIn(roleCondition(pod))
}

export interface PodStatus {
  name: string
  phase: string
  ready: boolean
  restarts: number
  /** Seconds since the pod was created. */
  age: number
  /** Waiting in CrashLoopBackOff right now. */
  crashLooping: boolean
  role: Role
  /** When the agent last reported a change of role (its condition, else its latest Event). */
  roleChangedAt?: string
  /** The role was reported by an earlier run of the container, or the container is not running: not to be believed. */
  stale: boolean
}

export interface AgentStatus {
  node: string
  /** Whether the node's Ready condition is True; null when the node object is gone. */
  nodeReady: boolean | null
  /**
   * The node is cordoned (spec.unschedulable, as kubectl cordon and drain set it): its agent hands the VIP
   * over and does not take it until the node is uncordoned.
   */
  cordoned: boolean
  /** Whether the DaemonSet selects this node (a pod can outlive a change of selection). */
  selected: boolean
  pod: PodStatus | null
}

export interface AgentEvent {
  time: string
  pod: string
  reason: string
  message: string
}

/** static-pod: no DaemonSet agent reports master, but a static-pod agent of the VIP is ready (they report no role). */
export type HolderVerdict = 'one' | 'none' | 'split-brain' | 'static-pod'
export type InstallState = 'healthy' | 'degraded' | 'down'

export interface InstallStatus {
  namespace: string
  name: string
  vip?: string
  vhid?: number
  apiPort: number
  /** null: the DaemonSet is gone while some of its pods or objects remain. */
  daemonSet: {desired: number; current: number; ready: number; updated: number; available: number} | null
  agents: AgentStatus[]
  holders: string[]
  holder: HolderVerdict
  state: InstallState
  problems: string[]
  /** What is under way and needs the user but is no failure (a handover from static-pod agents); only when there is any. */
  warnings?: string[]
  /** Newest first. */
  events: AgentEvent[]
}

const EVENTS_SHOWN = 10

/** localeCompare's order, without building a collator for each comparison. */
const byName = new Intl.Collator().compare

function nodeIsReady(node: V1Node): boolean {
  return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false
}

const nodeIsCordoned = (node: V1Node | undefined) => node?.spec?.unschedulable === true

function eventTime(e: CoreV1Event): string {
  const t = e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? e.metadata?.creationTimestamp
  return t ? new Date(t).toISOString() : ''
}

function podStatus(pod: V1Pod, latestEvent: CoreV1Event | undefined, now: Date): PodStatus {
  const container = pod.status?.containerStatuses?.[0]
  const reported = roleCondition(pod)
  const role = roleIn(reported)
  const changed = role === 'unknown' ? undefined : reported?.lastTransitionTime
  const roleChangedAt = changed ? new Date(changed).toISOString() : latestEvent ? eventTime(latestEvent) : undefined
  const startedAt = container?.state?.running?.startedAt
  const running = pod.status?.phase === 'Running' && startedAt !== undefined
  const reportedBeforeStart = roleChangedAt !== undefined && startedAt !== undefined && new Date(roleChangedAt) < new Date(startedAt)
  const created = pod.metadata?.creationTimestamp
  return {
    name: pod.metadata?.name ?? '',
    phase: pod.metadata?.deletionTimestamp ? 'Terminating' : (pod.status?.phase ?? 'Unknown'),
    ready: pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    restarts: container?.restartCount ?? 0,
    age: created ? Math.max(0, Math.round((now.getTime() - new Date(created).getTime()) / 1000)) : 0,
    crashLooping: container?.state?.waiting?.reason === 'CrashLoopBackOff',
    role,
    ...(roleChangedAt ? {roleChangedAt} : {}),
    stale: role !== 'unknown' && (!running || reportedBeforeStart),
  }
}

/** Every karp install a snapshot shows: each DaemonSet, and each group of agent pods whose DaemonSet is gone. */
export function installsIn(
  snapshot: Pick<ClusterSnapshot, 'daemonSets' | 'pods'>,
): Array<{namespace: string; name: string; daemonSet?: V1DaemonSet}> {
  const found = new Map<string, {namespace: string; name: string; daemonSet?: V1DaemonSet}>()
  for (const ds of snapshot.daemonSets) {
    const install = describeInstall(ds)
    found.set(`${install.namespace}/${install.name}`, {namespace: install.namespace, name: install.name, daemonSet: ds})
  }
  for (const pod of snapshot.pods) {
    const namespace = pod.metadata?.namespace ?? ''
    const name = pod.metadata?.labels?.[INSTANCE_LABEL]
    if (name && !found.has(`${namespace}/${name}`)) found.set(`${namespace}/${name}`, {namespace, name})
  }
  return [...found.values()].sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`))
}

/**
 * Masters whose report another master's newer one replaced while their node fell silent: the node's kubelet
 * has not renewed its Lease since the other node took the VIP (a node that lost power still shows a
 * Running pod and its last report until the node controller notices). Live nodes renew every 10 s, so a
 * real split brain shows again within that.
 */
function supersededMasters(masters: AgentStatus[], heartbeats: Record<string, string>): Map<string, string> {
  const superseded = new Map<string, string>()
  for (const old of masters) {
    const heard = heartbeats[old.node]
    const since = old.pod?.roleChangedAt
    if (heard === undefined || since === undefined) continue
    const newer = masters.find(
      (m) => m !== old && m.pod?.roleChangedAt !== undefined && m.pod.roleChangedAt > since && m.pod.roleChangedAt > heard,
    )
    if (newer) {
      superseded.set(
        old.node,
        `node ${old.node} last reported holding the VIP, but ${newer.node} took it at ${newer.pod?.roleChangedAt ?? ''} and the kubelet of ${old.node} has not been heard from since ${heard}: ${old.node} is probably down`,
      )
    }
  }
  return superseded
}

/**
 * Judges one karp install from a snapshot: who holds the VIP, and what is wrong. Pure. staticAgents: the
 * cluster's static-pod agents; those of the install's VIP are being handed over from.
 */
export function installStatus(
  target: {namespace: string; name: string; daemonSet?: V1DaemonSet},
  snapshot: Pick<ClusterSnapshot, 'pods' | 'nodes' | 'events' | 'heartbeats'>,
  now: Date,
  staticAgents: StaticAgent[] = [],
): InstallStatus {
  const {daemonSet} = target
  const install = daemonSet
    ? describeInstall(daemonSet)
    : {namespace: target.namespace, name: target.name, vip: undefined, vhid: undefined, apiPort: undefined}
  const podSpec = daemonSet?.spec?.template.spec
  const owned = snapshot.pods
    .filter((p) => p.metadata?.namespace === install.namespace && p.metadata?.labels?.[INSTANCE_LABEL] === install.name)
    // Oldest first, so that of two pods on one node (a rolling update) the newer one speaks for the node.
    .sort((a, b) => new Date(a.metadata?.creationTimestamp ?? 0).getTime() - new Date(b.metadata?.creationTimestamp ?? 0).getTime())
  const podNames = new Set(owned.map((p) => p.metadata?.name))
  const events = snapshot.events
    .filter(
      (e) =>
        e.involvedObject?.namespace === install.namespace &&
        (podNames.has(e.involvedObject.name) || e.involvedObject.name?.startsWith(`${install.name}-`)),
    )
    .sort((a, b) => eventTime(b).localeCompare(eventTime(a)))
  const nodesByName = new Map(snapshot.nodes.map((n) => [n.metadata?.name ?? '', n]))
  const selectedNodes = snapshot.nodes.filter((n) => podSpec && podSpecSelectsNode(podSpec, n.metadata?.labels ?? {}))
  // The newest Event of each pod (events are newest first).
  const latestEvent = new Map<string, CoreV1Event>()
  for (const e of events)
    if (e.involvedObject.name !== undefined && !latestEvent.has(e.involvedObject.name)) latestEvent.set(e.involvedObject.name, e)

  // By node name: every step stays linear in the number of nodes.
  const agentsByNode = new Map<string, AgentStatus>(
    selectedNodes.map((n) => [
      n.metadata?.name ?? '',
      {node: n.metadata?.name ?? '', nodeReady: nodeIsReady(n), cordoned: nodeIsCordoned(n), selected: true, pod: null},
    ]),
  )
  for (const pod of owned) {
    const nodeName = pod.spec?.nodeName ?? '(unscheduled)'
    let agent = agentsByNode.get(nodeName)
    if (!agent) {
      const node = nodesByName.get(nodeName)
      agent = {node: nodeName, nodeReady: node ? nodeIsReady(node) : null, cordoned: nodeIsCordoned(node), selected: false, pod: null}
      agentsByNode.set(nodeName, agent)
    }
    agent.pod = podStatus(pod, latestEvent.get(pod.metadata?.name ?? ''), now)
  }
  const agents = [...agentsByNode.values()].sort((a, b) => byName(a.node, b.node))

  const masters = agents.filter((a) => a.pod?.role === 'master' && !a.pod.stale)
  const superseded = supersededMasters(masters, snapshot.heartbeats ?? {})
  const holders = masters.filter((a) => !superseded.has(a.node)).map((a) => a.node)
  const handingOver = install.vip === undefined ? [] : staticAgents.filter((a) => a.vip === install.vip)
  const holder: HolderVerdict =
    holders.length === 1 ? 'one' : holders.length > 1 ? 'split-brain' : handingOver.some((a) => a.ready) ? 'static-pod' : 'none'
  const problems: string[] = []
  problems.push(...superseded.values())
  if (!daemonSet)
    problems.push(
      `DaemonSet ${install.namespace}/${install.name} is missing: ${owned.length} agent pod${owned.length === 1 ? '' : 's'} left without it; run karp install again, or karp uninstall`,
    )
  if (holder === 'none')
    problems.push(`no node holds VIP ${install.vip ?? ''}: the API server is not reachable through it`.replace('  ', ' '))
  if (holder === 'split-brain')
    problems.push(
      `split brain: ${holders.join(' and ')} all report holding VIP ${install.vip}; check that their CARP advertisements reach each other (same L2 segment, vhid, password)`,
    )
  for (const a of agents) {
    if (a.nodeReady === false && a.selected) problems.push(`node ${a.node} is NotReady`)
    // A cordoned node's agent gives the VIP up as soon as another node answers for it; one still holding
    // it found no other node to take it, or is in the middle of the handover.
    if (a.cordoned && holders.includes(a.node)) {
      problems.push(
        `node ${a.node} is cordoned but holds the VIP: its agent hands it over once another node can take it (an uncordoned node with a healthy API server)`,
      )
    }
    if (!a.pod) {
      if (a.selected) problems.push(`node ${a.node} is selected but runs no karp pod`)
      continue
    }
    if (a.pod.crashLooping) problems.push(`pod ${a.pod.name} on ${a.node} is crash-looping (${a.pod.restarts} restarts)`)
    else if (!a.pod.ready) problems.push(`pod ${a.pod.name} on ${a.node} is not ready (${a.pod.phase})`)
    if (a.pod.stale) problems.push(`pod ${a.pod.name} on ${a.node} last reported ${a.pod.role} before its container (re)started: stale`)
  }
  const rollout = daemonSet ? rolloutStatus(daemonSet) : undefined
  if (rollout && !rollout.done)
    problems.push(
      `DaemonSet ${install.namespace}/${install.name}: ${rollout.available}/${rollout.desired} agents available, ${rollout.updated} updated`,
    )
  const state: InstallState = holder === 'none' ? 'down' : problems.length > 0 ? 'degraded' : 'healthy'
  const warnings =
    handingOver.length > 0 && install.vip !== undefined
      ? [
          handoverInProgress(
            handoverPlan(
              handingOver,
              install.vip,
              snapshot.nodes.map((n) => ({name: n.metadata?.name ?? '', addresses: (n.status?.addresses ?? []).map((a) => a.address)})),
              new Set(agents.filter((a) => a.selected).map((a) => a.node)),
            ),
            handingOver,
            install.vip,
          ),
        ]
      : []
  return {
    namespace: install.namespace,
    name: install.name,
    ...(install.vip ? {vip: install.vip} : {}),
    ...(install.vhid !== undefined ? {vhid: install.vhid} : {}),
    apiPort: install.apiPort ?? DEFAULT_API_PORT,
    daemonSet: rollout
      ? {
          desired: rollout.desired,
          current: daemonSet?.status?.currentNumberScheduled ?? 0,
          ready: rollout.ready,
          updated: rollout.updated,
          available: rollout.available,
        }
      : null,
    agents,
    holders,
    holder,
    state,
    problems,
    ...(warnings.length > 0 ? {warnings} : {}),
    events: events
      .slice(0, EVENTS_SHOWN)
      .map((e) => ({time: eventTime(e), pod: e.involvedObject.name ?? '', reason: e.reason ?? '', message: e.message ?? ''})),
  }
}
