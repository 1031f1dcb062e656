// Plain Node objects for the test cluster, made through the API with nothing behind them: no kubelet, so
// nothing runs on them and nothing ever posts their status. The real controllers treat them as such:
//  - the scheduler binds pods to them (status.capacity is given on create, as a kubelet registers it); the
//    pods stay Pending;
//  - after its startup grace period (60 s) the node lifecycle controller sets their conditions Unknown
//    ("Kubelet never posted node status") and taints them node.kubernetes.io/unreachable:NoSchedule; from
//    then on a DaemonSet no longer wants them (desired 0) but keeps the pods it already has there.
//  - a pod bound to one is never confirmed gone: deleteNodes force-deletes them.
// Nodes are cluster-wide: give each suite its own node names, and a label of its own when the selector under
// test (e.g. control-plane nodes) would otherwise also match another suite's nodes. Names new on each run
// (uniqueName) where the suite needs its pods, on a cluster that may outlive the run (test/cluster/cluster.ts
// up): the node lifecycle controller keeps a name's health record after its Node is deleted, so a plain
// node made again under that name is Unknown and tainted unreachable within seconds, and gets no pods.
import {CoordinationV1Api, CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, type V1Node, type V1Taint} from '@kubernetes/client-node'

const CONTROL_PLANE_LABEL = 'node-role.kubernetes.io/control-plane'
const NODE_LEASE_NAMESPACE = 'kube-node-lease'

export interface PlainNode {
  name: string
  internalIP: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
  taints?: V1Taint[]
}

export function controlPlaneNode(name: string, internalIP: string, labels: Record<string, string> = {}): PlainNode {
  return {
    name,
    internalIP,
    labels: {[CONTROL_PLANE_LABEL]: '', ...labels},
    taints: [{key: CONTROL_PLANE_LABEL, effect: 'NoSchedule'}],
  }
}

export function workerNode(name: string, internalIP: string, labels: Record<string, string> = {}): PlainNode {
  return {name, internalIP, labels}
}

export function coreApi(kubeconfig: KubeConfig | string): CoreV1Api {
  if (typeof kubeconfig !== 'string') return kubeconfig.makeApiClient(CoreV1Api)
  const kc = new KubeConfig()
  kc.loadFromFile(kubeconfig)
  return kc.makeApiClient(CoreV1Api)
}

const resources = {cpu: '4', memory: '8Gi', pods: '110'}

/** The Node as a kubelet would register it: labels, addresses and capacity, but no conditions. */
export function nodeObject(node: PlainNode): V1Node {
  return {
    metadata: {
      name: node.name,
      labels: {'kubernetes.io/hostname': node.name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', ...node.labels},
      annotations: node.annotations,
    },
    spec: {taints: node.taints},
    // Node status is writable on create.
    status: {
      addresses: [
        {type: 'InternalIP', address: node.internalIP},
        {type: 'Hostname', address: node.name},
      ],
      capacity: resources,
      allocatable: resources,
    },
  }
}

export async function createNodes(kubeconfig: KubeConfig | string, nodes: PlainNode[]): Promise<V1Node[]> {
  const api = coreApi(kubeconfig)
  return Promise.all(nodes.map((node) => api.createNode({body: nodeObject(node)})))
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const notFound = (err: unknown) => (err as {code?: number}).code === 404

/**
 * Deletes the nodes (missing ones are fine), waits until they are gone, then force-deletes the pods bound to
 * them: no kubelet will ever confirm those pods' end (the pod garbage collector would, a minute later).
 */
export async function deleteNodes(kubeconfig: KubeConfig | string, names: string[], timeoutMs = 30_000): Promise<void> {
  const api = coreApi(kubeconfig)
  await Promise.all(
    names.map((name) =>
      api.deleteNode({name}).catch((err: unknown) => {
        if (!notFound(err)) throw err
      }),
    ),
  )
  const deadline = Date.now() + timeoutMs
  for (const name of names) {
    for (;;) {
      const exists = await api.readNode({name}).then(
        () => true,
        (err: unknown) => {
          if (notFound(err)) return false
          throw err
        },
      )
      if (!exists) break
      if (Date.now() > deadline) throw new Error(`node ${name} still exists after ${timeoutMs / 1000} s`)
      await sleep(200)
    }
  }
  for (const name of names) {
    const pods = await api.listPodForAllNamespaces({fieldSelector: `spec.nodeName=${name}`})
    await Promise.all(
      pods.items.map((pod) =>
        api
          .deleteNamespacedPod({name: pod.metadata?.name as string, namespace: pod.metadata?.namespace as string, gracePeriodSeconds: 0})
          .catch((err: unknown) => {
            if (!notFound(err)) throw err
          }),
      ),
    )
  }
}

/**
 * Makes plain nodes look like nodes with a live kubelet, for a suite that needs pods on them to stay as it set
 * them: their Ready condition True, and their Lease in kube-node-lease renewed every few seconds, as a kubelet
 * renews it. Without that the node lifecycle controller, after its grace period, calls them Unknown and marks
 * every pod on them not ready. Returns what stops the renewals.
 */
export async function keepNodesReady(kubeconfig: KubeConfig | string, names: string[]): Promise<() => Promise<void>> {
  const kc = typeof kubeconfig === 'string' ? new KubeConfig() : kubeconfig
  if (typeof kubeconfig === 'string') kc.loadFromFile(kubeconfig)
  const api = coreApi(kc)
  const leases = kc.makeApiClient(CoordinationV1Api)
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch)
  const now = () => new Date()
  await Promise.all(
    names.map((name) =>
      api.patchNodeStatus(
        {
          name,
          body: {
            status: {
              conditions: [{type: 'Ready', status: 'True', reason: 'KubeletReady', lastHeartbeatTime: now(), lastTransitionTime: now()}],
            },
          },
        },
        merge,
      ),
    ),
  )
  const renew = () =>
    Promise.all(
      names.map(async (name) => {
        // A MicroTime, which the API server parses with six fractional digits only (the client would send three).
        const renewTime = now().toISOString().replace(/Z$/, '000Z') as unknown as Date
        const lease = {metadata: {name, namespace: NODE_LEASE_NAMESPACE}, spec: {holderIdentity: name, leaseDurationSeconds: 40, renewTime}}
        await leases.replaceNamespacedLease({name, namespace: NODE_LEASE_NAMESPACE, body: lease}).catch(async (err: unknown) => {
          if (!notFound(err)) throw err
          await leases.createNamespacedLease({namespace: NODE_LEASE_NAMESPACE, body: lease})
        })
      }),
    )
  await renew()
  let renewing = Promise.resolve()
  const timer = setInterval(() => {
    // A failed renewal is made up for by the next one, well within the controller's grace period.
    renewing = renewing.then(() =>
      renew().then(
        () => undefined,
        () => undefined,
      ),
    )
  }, 5000)
  return async () => {
    clearInterval(timer)
    await renewing
    await Promise.all(names.map((name) => leases.deleteNamespacedLease({name, namespace: NODE_LEASE_NAMESPACE}).catch(() => undefined)))
  }
}
