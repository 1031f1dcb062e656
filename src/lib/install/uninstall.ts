import {INSTANCE_LABEL, instanceSelector, KARP_SELECTOR} from '../constants.js'
import {CheckFailedError, type CommandResult, ExitCode} from '../errors.js'
import {requirePermissions} from '../kube/access.js'
import {describeObject} from '../kube/apply.js'
import type {Kube} from '../kube/client.js'
import {cutByCommandDeadline} from '../kube/request-guard.js'
import {resourceOf} from '../kube/resources.js'
import {manifestHeaders} from '../manifests/render.js'
import {isAdmissionPolicyKind, supportsAdmissionPolicies} from './admission-policy.js'
import {directEndpoint} from './direct-endpoint.js'
import {isCreatedByKarp} from './namespace.js'

export interface RemovedObject {
  kind: string
  name: string
  namespace?: string
  action: 'deleted' | 'absent' | 'kept'
}

/** What `karp uninstall --json` prints. */
export interface UninstallResult extends CommandResult {
  name: string
  namespace: string
  objects: RemovedObject[]
  podsRemaining: number
  /** The API server address karp used instead of the kubeconfig's, which was the VIP going away. */
  via?: string
  /** 0: everything deleted (and, with --wait, every agent pod gone); pods still there after --timeout are thrown instead. */
  exitCode: typeof ExitCode.ok
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Deletes what install created for this name, newest dependency first, then waits for the agent pods to
 * go. The namespace goes only if karp created it (never one that existed before the install) and no other
 * karp install lives there.
 */
export async function uninstall(
  viaKubeconfig: Kube,
  target: {namespace: string; name: string},
  options: {wait: boolean; timeoutMs: number; onProgress: (podsRemaining: number) => void},
): Promise<UninstallResult> {
  const direct = await directEndpoint(viaKubeconfig, target)
  const kube = direct ?? viaKubeconfig
  // A cluster without the policy API (before 1.30) had nothing of it installed.
  const admissionPolicies = await supportsAdmissionPolicies(kube)
  const headers = manifestHeaders(target)
    .filter((h) => admissionPolicies || !isAdmissionPolicyKind(h.kind))
    .reverse()
  const needs = [
    ...headers.map((h) => ({verb: 'delete', ...resourceOf(h.kind), ...(h.metadata.namespace ? {namespace: target.namespace} : {})})),
    {verb: 'deletecollection', group: '', resource: 'pods', namespace: target.namespace},
  ]
  await requirePermissions(
    kube,
    needs,
    'nothing was deleted',
    'karp uninstall deletes what install created; use a cluster-admin context or ask for these permissions',
  )
  const objects: RemovedObject[] = []
  for (const header of headers) {
    const entry = {
      kind: header.kind,
      name: header.metadata.name,
      ...(header.metadata.namespace ? {namespace: header.metadata.namespace} : {}),
    }
    if (header.kind === 'Namespace') {
      const ns = await kube.nullIfNotFound(`reading namespace ${target.namespace}`, () => kube.core.readNamespace({name: target.namespace}))
      const others = ns
        ? (
            await kube.call(`listing karp DaemonSets in ${target.namespace}`, () =>
              kube.apps.listNamespacedDaemonSet({namespace: target.namespace, labelSelector: KARP_SELECTOR}),
            )
          ).items
        : []
      if (!ns) objects.push({...entry, action: 'absent'})
      else if (!isCreatedByKarp(ns) || others.length > 0) objects.push({...entry, action: 'kept'})
      else {
        await waitForPods(kube, target, options)
        const deleted = await kube.nullIfNotFound(`deleting ${describeObject(header)}`, () => kube.objects.delete(header))
        objects.push({...entry, action: deleted ? 'deleted' : 'absent'})
      }
      continue
    }
    const deleted = await kube.nullIfNotFound(`deleting ${describeObject(header)}`, () =>
      kube.objects.delete(header, undefined, undefined, undefined, undefined, 'Background'),
    )
    objects.push({...entry, action: deleted ? 'deleted' : 'absent'})
    if (header.kind === 'DaemonSet') {
      // The garbage collector removes the DaemonSet's pods; agents it no longer owns (a DaemonSet deleted
      // with --cascade=orphan) would hold the VIP forever, so they go explicitly.
      await kube.call(`deleting karp pods in ${target.namespace}`, () =>
        kube.core.deleteCollectionNamespacedPod({namespace: target.namespace, labelSelector: instanceSelector(target.name)}),
      )
    }
  }
  const podsRemaining = options.wait ? await waitForPods(kube, target, options) : await countPods(kube, target)
  return {
    name: target.name,
    namespace: target.namespace,
    objects,
    podsRemaining,
    ...(direct ? {via: direct.server} : {}),
    exitCode: ExitCode.ok,
  }
}

async function countPods(kube: Kube, target: {namespace: string; name: string}): Promise<number> {
  const pods = await kube.call(`listing karp pods in ${target.namespace}`, () =>
    kube.core.listNamespacedPod({namespace: target.namespace, labelSelector: instanceSelector(target.name)}),
  )
  return pods.items.length
}

async function waitForPods(
  kube: Kube,
  target: {namespace: string; name: string},
  options: {wait: boolean; timeoutMs: number; onProgress: (podsRemaining: number) => void},
): Promise<number> {
  if (!options.wait) return countPods(kube, target)
  const deadline = Date.now() + options.timeoutMs
  // Every read also ends by the deadline: a server that stops answering cannot stretch the wait past --timeout.
  const bounded = kube.until(deadline)
  const stillThere = (remaining: number | undefined) =>
    new CheckFailedError(
      remaining === undefined
        ? `karp pods in ${target.namespace} not confirmed gone after ${Math.round(options.timeoutMs / 1000)} s: the API server did not answer before the --timeout`
        : `${remaining} karp pod${remaining === 1 ? '' : 's'} still present in ${target.namespace} after ${Math.round(options.timeoutMs / 1000)} s`,
      `see: kubectl -n ${target.namespace} get pods -l ${INSTANCE_LABEL}=${target.name}`,
    )
  for (;;) {
    let remaining: number
    try {
      remaining = await countPods(bounded, target)
    } catch (error) {
      if (cutByCommandDeadline(error)) throw stillThere(undefined)
      throw error
    }
    options.onProgress(remaining)
    if (remaining === 0) return 0
    const left = deadline - Date.now()
    if (left <= 0) throw stillThere(remaining)
    await sleep(Math.min(1000, left))
    if (Date.now() >= deadline) throw stillThere(remaining)
  }
}
