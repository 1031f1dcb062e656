import type {V1DaemonSet} from '@kubernetes/client-node'

import {API_PORT_ANNOTATION, KARP_SELECTOR, VHID_ANNOTATION, VIP_ANNOTATION} from '../constants.js'
import type {Kube} from './client.js'

export interface KarpInstall {
  namespace: string
  name: string
  vip?: string
  vhid?: number
  apiPort?: number
  daemonSet: V1DaemonSet
}

/** The VIP, vhid and API port karp annotates an agent's DaemonSet (or static pod) with; a malformed number is missing. */
export function vipAnnotations(annotations: Record<string, string>): {vip?: string; vhid?: number; apiPort?: number} {
  const number = (text: string | undefined) => (text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined)
  return {vip: annotations[VIP_ANNOTATION], vhid: number(annotations[VHID_ANNOTATION]), apiPort: number(annotations[API_PORT_ANNOTATION])}
}

export function describeInstall(daemonSet: V1DaemonSet): KarpInstall {
  return {
    namespace: daemonSet.metadata?.namespace ?? '',
    name: daemonSet.metadata?.name ?? '',
    ...vipAnnotations(daemonSet.metadata?.annotations ?? {}),
    daemonSet,
  }
}

/** Every karp install in the cluster, found by its DaemonSet's labels and annotations. */
export async function listKarpInstalls(kube: Kube): Promise<KarpInstall[]> {
  const list = await kube.call('listing karp DaemonSets in all namespaces', () =>
    kube.apps.listDaemonSetForAllNamespaces({labelSelector: KARP_SELECTOR}),
  )
  return list.items.map(describeInstall)
}
