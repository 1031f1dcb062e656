import {type KubernetesObject, Watch} from '@kubernetes/client-node'

import type {Kube} from '../kube/client.js'
import {KARP_SELECTOR} from '../kube/karp-installs.js'
import {AGENT_REPORTING_COMPONENT, type ClusterSnapshot, takeSnapshot} from './gather.js'

type Kind = 'daemonSets' | 'pods' | 'nodes' | 'events'

const WATCHES: Array<{kind: Kind; path: string; query: Record<string, string>}> = [
  {kind: 'daemonSets', path: '/apis/apps/v1/daemonsets', query: {labelSelector: KARP_SELECTOR}},
  {kind: 'pods', path: '/api/v1/pods', query: {labelSelector: KARP_SELECTOR}},
  {kind: 'nodes', path: '/api/v1/nodes', query: {}},
  {kind: 'events', path: '/api/v1/events', query: {fieldSelector: `reportingComponent=${AGENT_REPORTING_COMPONENT}`}},
]

const keyOf = (o: KubernetesObject) => o.metadata?.uid ?? `${o.metadata?.namespace}/${o.metadata?.name}`

/**
 * Keeps a snapshot current through the watch API, from the resourceVersion of one initial list per kind,
 * and calls onChange after each batch of changes. A watch the server ends (timeout, expired version)
 * is resumed; only an expired version costs a fresh list. Resolves when the signal aborts.
 */
export async function watchSnapshot(kube: Kube, onChange: (snapshot: ClusterSnapshot) => void, signal: AbortSignal, onError: (error: Error) => void): Promise<void> {
  let snapshot = await takeSnapshot(kube)
  const stores = new Map<Kind, Map<string, KubernetesObject>>(
    (['daemonSets', 'pods', 'nodes', 'events'] as Kind[]).map((kind) => [kind, new Map((snapshot[kind] as KubernetesObject[]).map((o) => [keyOf(o), o]))]),
  )
  const versions = {...snapshot.resourceVersions}
  onChange(snapshot)
  let pending: NodeJS.Timeout | undefined
  const changed = () => {
    // Coalesce bursts (a rollout touches many objects) into one update.
    pending ??= setTimeout(() => {
      pending = undefined
      snapshot = {...snapshot, ...(Object.fromEntries([...stores].map(([kind, store]) => [kind, [...store.values()]])) as Pick<ClusterSnapshot, Kind>)}
      onChange(snapshot)
    }, 200)
  }
  const watcher = new Watch(kube.config)
  const controllers: AbortController[] = []
  const start = async ({kind, path, query}: (typeof WATCHES)[number]): Promise<void> => {
    if (signal.aborted) return
    const store = stores.get(kind) as Map<string, KubernetesObject>
    const controller = await watcher.watch(
      path,
      {...query, resourceVersion: versions[kind], allowWatchBookmarks: true},
      (phase, object: KubernetesObject) => {
        if (object.metadata?.resourceVersion) versions[kind] = object.metadata.resourceVersion
        if (phase === 'BOOKMARK') return
        if (phase === 'DELETED') store.delete(keyOf(object))
        else if (phase === 'ADDED' || phase === 'MODIFIED') store.set(keyOf(object), object)
        changed()
      },
      (error: unknown) => {
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
            .catch(onError)
          return
        }
        if (error) onError(error instanceof Error ? error : new Error(String(error)))
        setTimeout(() => void start({kind, path, query}).catch(onError), error ? 1000 : 0)
      },
    )
    controllers.push(controller)
  }
  await Promise.all(WATCHES.map(start))
  await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), {once: true}))
  clearTimeout(pending)
  for (const c of controllers) c.abort()
}
