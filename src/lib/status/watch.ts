import {type CoreV1Event, type KubernetesObject, type V1DaemonSet, type V1Node, type V1Pod, Watch} from '@kubernetes/client-node'

import {AGENT_REPORTING_COMPONENT, KARP_SELECTOR} from '../constants.js'
import {escapeControl} from '../echo.js'
import {UnreachableError} from '../errors.js'
import {type Kube, toKarpError} from '../kube/client.js'
import {type ListedObjects, ListWatch, WatchStatusError} from '../kube/list-watch.js'
import {RequestDeadlineError} from '../kube/request-guard.js'
import {type ClusterSnapshot, heartbeatsOfMasters, nodesReportingMaster, selectedNodeQueries, unlistedNodeQueries} from './gather.js'

/**
 * How long a watch may stay silent: the client library's own limit for opening a watch and for the silence
 * after it (Watch aborts a watch that brings nothing for 30 s, as long as the default --request-timeout).
 * A quiet cluster sends nothing for minutes, so the server is asked to end each watch after half that
 * (timeoutSeconds, which it honours with a clean end of stream) and karp resumes it from its
 * resourceVersion, losing nothing: a healthy watch is never cut. Only a dead server, or a dead connection
 * (a VIP that moved to another node leaves one behind), stays silent for the whole limit, and that is
 * noticed within it. --request-timeout does not apply to watches: they are meant to stay open.
 */
export const WATCH_SILENCE_MS = 30_000
export const WATCH_SERVER_TIMEOUT_SECONDS = WATCH_SILENCE_MS / 2000

export const WATCHING = 'watching the cluster'

/**
 * While two agents report master, how often their kubelets' Leases are read again (kubelets renew them
 * every 10 s). Leases are not watched: at 5,000 nodes that would be 500 events a second for a question that
 * only two nodes can answer.
 */
export const HEARTBEAT_REFRESH_MS = 10_000

const listed = <T>(list: {items: T[]; metadata?: {resourceVersion?: string}}): ListedObjects<T> => ({
  items: list.items,
  resourceVersion: list.metadata?.resourceVersion ?? '',
})

/**
 * Keeps a snapshot current through the watch API (src/lib/kube/list-watch.ts: one list per kind, then
 * watches with bookmarks that resume where they stopped; only an expired resourceVersion costs a new list)
 * and calls onChange after each batch of changes. Nodes are watched as takeSnapshot lists them: by the
 * label selectors of the DaemonSets' node affinity, and by name for a node an agent runs on outside them,
 * so the watches follow the DaemonSets as they change. A server that stops answering is reported through
 * onError once, and watching goes on until it answers again (onRecovered). Resolves when the signal aborts.
 */
export async function watchSnapshot(
  kube: Kube,
  onChange: (snapshot: ClusterSnapshot) => void,
  signal: AbortSignal,
  onError: (error: Error) => void,
  onRecovered: () => void = () => undefined,
): Promise<void> {
  // One report per outage, not one per watch and retry: the watches fail alike, so they say the same.
  let reported: string | undefined
  const failed = (error: unknown) => {
    const karpError = watchError(error, WATCHING, kube)
    if (karpError.message === reported) return
    reported = karpError.message
    onError(karpError)
  }
  const opened = () => {
    if (reported === undefined) return
    reported = undefined
    onRecovered()
  }
  let pending: NodeJS.Timeout | undefined
  const changed = () => {
    // Coalesce bursts (a rollout touches many objects) into one update.
    pending ??= setTimeout(() => {
      pending = undefined
      publish()
    }, 200)
  }
  const watcher = new Watch(kube.config)
  const watchOf = <T extends KubernetesObject>(path: string, query: Record<string, string>, list: () => Promise<ListedObjects<T>>) =>
    new ListWatch<T>(watcher, {path, query, list, changed, failed, opened, serverTimeoutSeconds: WATCH_SERVER_TIMEOUT_SECONDS})
  const daemonSets = watchOf<V1DaemonSet>('/apis/apps/v1/daemonsets', {labelSelector: KARP_SELECTOR}, async () =>
    listed(await kube.apps.listDaemonSetForAllNamespaces({labelSelector: KARP_SELECTOR})),
  )
  const pods = watchOf<V1Pod>('/api/v1/pods', {labelSelector: KARP_SELECTOR}, async () =>
    listed(await kube.core.listPodForAllNamespaces({labelSelector: KARP_SELECTOR})),
  )
  const eventQuery = {fieldSelector: `reportingComponent=${AGENT_REPORTING_COMPONENT}`}
  const events = watchOf<CoreV1Event>('/api/v1/events', eventQuery, async () =>
    listed(await kube.core.listEventForAllNamespaces(eventQuery)),
  )
  /** By JSON of the query: the selectors' watches, then those of single nodes. */
  const nodeWatches = new Map<string, ListWatch<V1Node>>()
  const values = <T extends KubernetesObject>(w: ListWatch<T>) => [...w.objects.values()]

  /** Starts the node watches the DaemonSets and pods now need, and stops those they no longer do. */
  const followNodes = async () => {
    const selected = selectedNodeQueries(values(daemonSets))
    const selectedNodes = selected.flatMap((q) => {
      const w = nodeWatches.get(JSON.stringify(q))
      return w ? values(w) : []
    })
    const wanted = new Map([...selected, ...unlistedNodeQueries(values(pods), selectedNodes)].map((q) => [JSON.stringify(q), q]))
    await Promise.all(
      [...nodeWatches]
        .filter(([key]) => !wanted.has(key))
        .map(async ([key, w]) => {
          nodeWatches.delete(key)
          await w.stop()
        }),
    )
    if (signal.aborted) return
    const started = [...wanted]
      .filter(([key]) => !nodeWatches.has(key))
      .map(([key, query]) => {
        const w = watchOf<V1Node>('/api/v1/nodes', query, async () => listed(await kube.core.listNode(query)))
        nodeWatches.set(key, w)
        return w.start()
      })
    await Promise.all(started)
    // A node listed by a selector now may make a watch by name needless, or the other way round.
    if (started.length > 0 && !signal.aborted) changed()
  }

  let snapshot: ClusterSnapshot | undefined
  // One update at a time, in order: each may first read the Leases of the nodes that report master (as the
  // one-shot status does), which tell a node that went down from a split brain.
  let publishing = Promise.resolve()
  const publish = () => {
    publishing = publishing
      .then(async () => {
        if (signal.aborted) return
        await followNodes()
        const nodes = new Map([...nodeWatches.values()].flatMap((w) => values(w).map((n) => [n.metadata?.name, n] as const)))
        const current = {daemonSets: values(daemonSets), pods: values(pods), nodes: [...nodes.values()], events: values(events)}
        snapshot = {...current, heartbeats: await heartbeatsOfMasters(kube, current.pods)}
        if (!signal.aborted) onChange(snapshot)
      })
      .catch(failed)
  }
  // A node that lost power changes nothing the watches see; only its Lease, unrenewed, says so.
  const heartbeats = setInterval(() => {
    if (!pending && snapshot && nodesReportingMaster(snapshot.pods).length >= 2) publish()
  }, HEARTBEAT_REFRESH_MS)
  const stopAll = () => Promise.all([daemonSets, pods, events, ...nodeWatches.values()].map((w) => w.stop()))
  signal.addEventListener('abort', () => void stopAll(), {once: true})
  try {
    await Promise.all([daemonSets.start(), pods.start(), events.start()])
    publish()
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve()
      else signal.addEventListener('abort', () => resolve(), {once: true})
    })
  } finally {
    clearTimeout(pending)
    clearInterval(heartbeats)
    await stopAll()
    await publishing
    // Any node watch the last update started.
    await stopAll()
  }
}

/** The watch's timer fired (no answer, or silence, for WATCH_SILENCE_MS); anything else reads as any request's failure. */
function watchError(error: unknown, doing: string, kube: Kube): Error {
  if ((error as {name?: string}).name === 'TimeoutError')
    return toKarpError(new RequestDeadlineError(WATCH_SILENCE_MS, 'request'), doing, kube.server)
  if (error instanceof WatchStatusError)
    return new UnreachableError(`${doing}: ${escapeControl(kube.server)} ended the watch: ${escapeControl(error.message)}`)
  const statusCode = (error as {statusCode?: number}).statusCode
  if (statusCode !== undefined) return new UnreachableError(`${doing}: ${escapeControl(kube.server)} answered HTTP ${statusCode}`)
  return toKarpError(error, doing, kube.server)
}
