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
  const results: AppliedObject[] = []
  for (const object of objects) {
    const what = describeObject(object)
    const header = {apiVersion: object.apiVersion, kind: object.kind, metadata: {name: object.metadata.name, namespace: object.metadata.namespace}}
    const before = await kube.nullIfNotFound(`reading ${what}`, () => kube.objects.read(header))
    const after = await kube.call(`applying ${what}`, () =>
      kube.objects.patch(object, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply),
    )
    const action: ApplyAction = before === null ? 'created' : before.metadata?.resourceVersion === after.metadata?.resourceVersion ? 'unchanged' : 'configured'
    results.push({kind: object.kind, name: object.metadata.name, ...(object.metadata.namespace ? {namespace: object.metadata.namespace} : {}), action})
  }
  return results
}
