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
 * Waits for every one of the promises, then fails with the first failure, if any: a failure never leaves
 * requests of the same step running unseen while the command reports and exits.
 */
export async function settleAll<T>(promises: Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(promises)
  const failed = settled.find((s) => s.status === 'rejected')
  if (failed) throw failed.reason
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value)
}

/**
 * Server-side applies the objects as field manager karp, wave after wave (waveOf: lowest first), the objects
 * of a wave together; the results in the order of `objects`. Conflicts with other managers are forced: karp
 * owns what it renders. The action is read off the answer: the API server moves resourceVersion only when
 * it stored a change, so an answer with the resourceVersion the object had before (`before`: null if it did
 * not exist) means nothing changed.
 */
export async function applyObjects(
  kube: Kube,
  objects: ManifestObject[],
  waveOf: (object: ManifestObject) => number,
  before: (object: ManifestObject) => string | null,
): Promise<AppliedObject[]> {
  const results: AppliedObject[] = []
  for (const wave of [...new Set(objects.map(waveOf))].sort((a, b) => a - b)) {
    const indices = objects.flatMap((object, i) => (waveOf(object) === wave ? [i] : []))
    const answers = await settleAll(
      indices.map((i) => {
        const object = objects[i] as ManifestObject
        return kube.call(`applying ${describeObject(object)}`, () =>
          kube.objects.patch(object, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply),
        )
      }),
    )
    for (const [n, i] of indices.entries()) {
      const object = objects[i] as ManifestObject
      const was = before(object)
      const action: ApplyAction = was === null ? 'created' : answers[n]?.metadata?.resourceVersion === was ? 'unchanged' : 'configured'
      results[i] = {
        kind: object.kind,
        name: object.metadata.name,
        ...(object.metadata.namespace ? {namespace: object.metadata.namespace} : {}),
        action,
      }
    }
  }
  return results
}
