import type {V1DaemonSet} from '@kubernetes/client-node'

import type {Kube} from './client.js'

/** The label every karp DaemonSet carries; one list call with it finds every install in the cluster. */
export const KARP_SELECTOR = 'app.kubernetes.io/name=karp'

export interface KarpInstall {
  namespace: string
  name: string
  vip?: string
  vhid?: number
  apiPort?: number
  daemonSet: V1DaemonSet
}

export function describeInstall(daemonSet: V1DaemonSet): KarpInstall {
  const annotations = daemonSet.metadata?.annotations ?? {}
  const number = (text: string | undefined) => (text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined)
  return {
    namespace: daemonSet.metadata?.namespace ?? '',
    name: daemonSet.metadata?.name ?? '',
    vip: annotations['karp.io/vip'],
    vhid: number(annotations['karp.io/vhid']),
    apiPort: number(annotations['karp.io/api-port']),
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
