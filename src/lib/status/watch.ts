import {type KubernetesObject, Watch} from '@kubernetes/client-node'

import {escapeControl} from '../echo.js'
import {UnreachableError} from '../errors.js'
import {type Kube, toKarpError} from '../kube/client.js'
import {KARP_SELECTOR} from '../kube/karp-installs.js'
import {RequestDeadlineError} from '../kube/request-guard.js'
import {AGENT_REPORTING_COMPONENT, type ClusterSnapshot, heartbeatsOfMasters, nodesReportingMaster, takeSnapshot} from './gather.js'

type Kind = 'daemonSets' | 'pods' | 'nodes' | 'events'

const WATCHES: Array<{kind: Kind; path: string; query: Record<string, string>}> = [
  {kind: 'daemonSets', path: '/apis/apps/v1/daemonsets', query: {labelSelector: KARP_SELECTOR}},
  {kind: 'pods', path: '/api/v1/pods', query: {labelSelector: KARP_SELECTOR}},
  {kind: 'nodes', path: '/api/v1/nodes', query: {}},
  {kind: 'events', path: '/api/v1/events', query: {fieldSelector: `reportingComponent=${AGENT_REPORTING_COMPONENT}`}},
]

const keyOf = (o: KubernetesObject) => o.metadata?.uid ?? `${o.metadata?.namespace}/${o.metadata?.name}`

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

/**
 * Keeps a snapshot current through the watch API, from the resourceVersion of one initial list per kind,
 * and calls onChange after each batch of changes. A watch the server ends (timeout, expired version)
 * is resumed; only an expired version costs a fresh list. A server that stops answering is reported
 * through onError once, and watching goes on until it answers again (onRecovered). Resolves when the
 * signal aborts.
 */
export async function watchSnapshot(
  kube: Kube,
  onChange: (snapshot: ClusterSnapshot) => void,
  signal: AbortSignal,
  onError: (error: Error) => void,
  onRecovered: () => void = () => undefined,
): Promise<void> {
  let snapshot = await takeSnapshot(kube)
  const stores = new Map<Kind, Map<string, KubernetesObject>>(
    (['daemonSets', 'pods', 'nodes', 'events'] as Kind[]).map((kind) => [kind, new Map((snapshot[kind] as KubernetesObject[]).map((o) => [keyOf(o), o]))]),
  )
  const versions = {...snapshot.resourceVersions}
  onChange(snapshot)
  // One update at a time, in order: each may first read the Leases of the nodes that report master (as the
  // one-shot status does), which tell a node that went down from a split brain.
  let publishing = Promise.resolve()
  const publish = () => {
    publishing = publishing.then(async () => {
      const objects = Object.fromEntries([...stores].map(([kind, store]) => [kind, [...store.values()]])) as Pick<ClusterSnapshot, Kind>
      snapshot = {...snapshot, ...objects, heartbeats: await heartbeatsOfMasters(kube, objects.pods)}
      if (!signal.aborted) onChange(snapshot)
    })
  }
  let pending: NodeJS.Timeout | undefined
  const changed = () => {
    // Coalesce bursts (a rollout touches many objects) into one update.
    pending ??= setTimeout(() => {
      pending = undefined
      publish()
    }, 200)
  }
  // A node that lost power changes nothing the watches see; only its Lease, unrenewed, says so.
  const heartbeats = setInterval(() => {
    if (!pending && nodesReportingMaster(snapshot.pods).length >= 2) publish()
  }, HEARTBEAT_REFRESH_MS)
  // One report per outage, not one per watch and retry: the four watches fail alike, so they say the same.
  let reported: string | undefined
  const failed = (error: Error) => {
    if (error.message === reported) return
    reported = error.message
    onError(error)
  }
  const opened = () => {
    if (reported === undefined) return
    reported = undefined
    onRecovered()
  }
  const watcher = new Watch(kube.config)
  const controllers = new Set<AbortController>()
  const start = async ({kind, path, query}: (typeof WATCHES)[number]): Promise<void> => {
    if (signal.aborted) return
    const store = stores.get(kind) as Map<string, KubernetesObject>
    // The library may report the end before it hands back the controller (a failed open).
    const watch: {ended: boolean; controller?: AbortController} = {ended: false}
    watch.controller = await watcher.watch(
      path,
      {
        ...query,
        resourceVersion: versions[kind],
        allowWatchBookmarks: true,
        timeoutSeconds: WATCH_SERVER_TIMEOUT_SECONDS,
      },
      (phase, object: KubernetesObject) => {
        if (object.metadata?.resourceVersion) versions[kind] = object.metadata.resourceVersion
        if (phase === 'BOOKMARK') return
        if (phase === 'DELETED') store.delete(keyOf(object))
        else if (phase === 'ADDED' || phase === 'MODIFIED') store.set(keyOf(object), object)
        changed()
      },
      (error: unknown) => {
        watch.ended = true
        if (watch.controller) controllers.delete(watch.controller)
        if (signal.aborted) return
        const gone = (error as {statusCode?: number; code?: number})?.statusCode === 410 || String(error).includes('410')
        if (gone) {
          // The version expired: list this kind afresh and watch on from there.
          takeSnapshot(kube)
            .then((fresh) => {
              store.clear()
              for (const o of fresh[kind] as KubernetesObject[]) store.set(keyOf(o), o)
              versions[kind] = fresh.resourceVersions[kind]
              changed()
              return start({kind, path, query})
            })
            .catch((e: Error) => {
              failed(e)
              setTimeout(() => void start({kind, path, query}), 1000)
            })
          return
        }
        if (error) failed(watchError(error, WATCHING, kube))
        setTimeout(() => void start({kind, path, query}).catch(failed), error ? 1000 : 0)
      },
    )
    if (!watch.ended) {
      controllers.add(watch.controller)
      opened()
    }
  }
  try {
    await Promise.all(WATCHES.map(start))
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), {once: true}))
  } finally {
    clearTimeout(pending)
    clearInterval(heartbeats)
    for (const c of controllers) c.abort()
  }
  await publishing
}

/** The watch's timer fired (no answer, or silence, for WATCH_SILENCE_MS); anything else reads as any request's failure. */
function watchError(error: unknown, doing: string, kube: Kube): Error {
  if ((error as {name?: string}).name === 'TimeoutError') return toKarpError(new RequestDeadlineError(WATCH_SILENCE_MS, 'request'), doing, kube.server)
  const statusCode = (error as {statusCode?: number}).statusCode
  if (statusCode !== undefined) return new UnreachableError(`${doing}: ${escapeControl(kube.server)} answered HTTP ${statusCode}`)
  return toKarpError(error, doing, kube.server)
}
