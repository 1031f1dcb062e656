import {PatchStrategy} from '@kubernetes/client-node'

import type {ManifestObject} from '../manifests/render.js'
import type {Kube} from './client.js'

export const FIELD_MANAGER = 'karp'

export type ApplyAction = 'created' | 'configured' | 'unchanged'

export interface AppliedObject {
  kind: string
  name: string
  namespace?: string
  action: ApplyAction
}

export const describeObject = (o: {kind: string; metadata: {name: string; namespace?: string}}) =>
  `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`

/**
 * Server-side applies each object in order, as field manager karp. Conflicts with other managers are
 * forced: karp owns what it renders. The action is read off resourceVersion, which the API server only
 * moves when the stored object changed.
 */
export async function applyObjects(kube: Kube, objects: ManifestObject[]): Promise<AppliedObject[]> {
  // Reads are independent, so they go together; the applies stay in order (a namespace before its objects).
  const befores = await Promise.all(
    objects.map((object) => {
      const header = {apiVersion: object.apiVersion, kind: object.kind, metadata: {name: object.metadata.name, namespace: object.metadata.namespace}}
      return kube.nullIfNotFound(`reading ${describeObject(object)}`, () => kube.objects.read(header))
    }),
  )
  const results: AppliedObject[] = []
  for (const [i, object] of objects.entries()) {
    const what = describeObject(object)
    const before = befores[i] ?? null
    const after = await kube.call(`applying ${what}`, () =>
      kube.objects.patch(object, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply),
    )
    const action: ApplyAction = before === null ? 'created' : before.metadata?.resourceVersion === after.metadata?.resourceVersion ? 'unchanged' : 'configured'
    results.push({kind: object.kind, name: object.metadata.name, ...(object.metadata.namespace ? {namespace: object.metadata.namespace} : {}), action})
  }
  return results
}
