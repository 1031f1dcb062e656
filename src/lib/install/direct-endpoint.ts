import {DiscoveryV1Api} from '@kubernetes/client-node'

import type {Kube} from '../kube/client.js'
import {describeInstall} from '../kube/karp-installs.js'

/**
 * Uninstalling through the VIP would cut the connection karp works over: the VIP leaves with the last
 * agent. When the kubeconfig's server is the install's VIP, this finds the API server's own addresses (the
 * `kubernetes` Service's EndpointSlices, as kubectl sees them) and returns a client for the first one that
 * answers with the same credentials and CA; undefined when the server is not the VIP or no address answers
 * (the uninstall then goes on through the VIP, as before).
 */
export async function directEndpoint(kube: Kube, target: {namespace: string; name: string}): Promise<Kube | undefined> {
  // Only a way around the VIP: any failure here leaves the uninstall on the kubeconfig's server.
  const daemonSet = await kube.apps.readNamespacedDaemonSet({namespace: target.namespace, name: target.name}).catch(() => undefined)
  const vip = daemonSet ? describeInstall(daemonSet).vip : undefined
  let server: URL
  try {
    server = new URL(kube.server)
  } catch {
    return undefined
  }
  if (!vip || server.hostname.replace(/^\[|\]$/g, '') !== vip) return undefined
  const discovery = kube.config.makeApiClient(DiscoveryV1Api)
  const slices = await discovery
    .listNamespacedEndpointSlice({namespace: 'default', labelSelector: 'kubernetes.io/service-name=kubernetes'})
    .catch(() => undefined)
  for (const slice of slices?.items ?? []) {
    const port = slice.ports?.find((p) => p.name === 'https')?.port ?? slice.ports?.[0]?.port
    for (const endpoint of slice.endpoints ?? []) {
      for (const address of endpoint.addresses) {
        if (address === vip || endpoint.conditions?.ready === false) continue
        const host = address.includes(':') ? `[${address}]` : address
        const direct = kube.withServer(`https://${host}:${port ?? (Number(server.port) || 443)}`)
        const answers = await direct.core.readNamespace({name: 'default'}).then(
          () => true,
          () => false,
        )
        if (answers) return direct
      }
    }
  }
  return undefined
}
