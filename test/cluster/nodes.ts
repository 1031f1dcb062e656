// Fake Nodes for the test cluster: kwok (started by control-plane.ts) manages every Node annotated
// kwok.x-k8s.io/node=fake, makes it Ready and runs the pods bound to it.
// Nodes are cluster-wide: give each test its own node names, and a label of its own when the selector under
// test (e.g. control-plane nodes) would otherwise also match another test's nodes.
import {CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, type V1Node, type V1Taint} from '@kubernetes/client-node'

export const KWOK_ANNOTATION = 'kwok.x-k8s.io/node'
/** While present, kwok reports the node NotReady (see test/cluster/kwok.yaml). */
export const NOT_READY_ANNOTATION = 'karp.test/not-ready'
export const CONTROL_PLANE_LABEL = 'node-role.kubernetes.io/control-plane'

export interface FakeNode {
  name: string
  internalIP: string
  labels?: Record<string, string>
  taints?: V1Taint[]
  /** Default true. False: the node comes up NotReady and stays so until setNodeReady(…, true). */
  ready?: boolean
}

export function controlPlaneNode(name: string, internalIP: string, labels: Record<string, string> = {}): FakeNode {
  return {
    name,
    internalIP,
    labels: {[CONTROL_PLANE_LABEL]: '', ...labels},
    taints: [{key: CONTROL_PLANE_LABEL, effect: 'NoSchedule'}],
  }
}

export function workerNode(name: string, internalIP: string, labels: Record<string, string> = {}): FakeNode {
  return {name, internalIP, labels}
}

export function coreApi(kubeconfig: KubeConfig | string): CoreV1Api {
  if (typeof kubeconfig !== 'string') return kubeconfig.makeApiClient(CoreV1Api)
  const kc = new KubeConfig()
  kc.loadFromFile(kubeconfig)
  return kc.makeApiClient(CoreV1Api)
}

export function nodeReady(node: V1Node): boolean {
  return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls until every named node is Ready (or NotReady, with ready=false). */
export async function waitForNodes(
  kubeconfig: KubeConfig | string,
  names: string[],
  ready = true,
  timeoutMs = 30_000,
): Promise<V1Node[]> {
  return pollNodes(coreApi(kubeconfig), names, ready, timeoutMs)
}

async function pollNodes(api: CoreV1Api, names: string[], ready: boolean, timeoutMs = 30_000): Promise<V1Node[]> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const nodes = await Promise.all(names.map((name) => api.readNode({name})))
    const pending = nodes.filter((n) => nodeReady(n) !== ready).map((n) => n.metadata?.name)
    if (pending.length === 0) return nodes
    if (Date.now() > deadline) {
      throw new Error(`nodes not ${ready ? 'Ready' : 'NotReady'} after ${timeoutMs / 1000} s: ${pending.join(', ')}`)
    }
    await sleep(200)
  }
}

/** Creates the nodes and waits until kwok has made them Ready (or NotReady, per node). */
export async function createFakeNodes(kubeconfig: KubeConfig | string, nodes: FakeNode[]): Promise<V1Node[]> {
  const api = coreApi(kubeconfig)
  await Promise.all(
    nodes.map((node) =>
      api.createNode({
        body: {
          metadata: {
            name: node.name,
            labels: {
              'kubernetes.io/hostname': node.name,
              'kubernetes.io/os': 'linux',
              'kubernetes.io/arch': 'amd64',
              ...node.labels,
            },
            annotations: {
              [KWOK_ANNOTATION]: 'fake',
              ...(node.ready === false ? {[NOT_READY_ANNOTATION]: 'true'} : {}),
            },
          },
          spec: {taints: node.taints},
          // Node status is writable on create; kwok keeps the addresses it finds.
          status: {
            addresses: [
              {type: 'InternalIP', address: node.internalIP},
              {type: 'Hostname', address: node.name},
            ],
          },
        },
      }),
    ),
  )
  const created: V1Node[] = []
  for (const want of [true, false]) {
    const names = nodes.filter((n) => (n.ready ?? true) === want).map((n) => n.name)
    if (names.length) created.push(...(await pollNodes(api, names, want)))
  }
  return nodes.map((n) => created.find((c) => c.metadata?.name === n.name)!)
}

/** Marks a node NotReady (kwok posts Ready=False and keeps it) or Ready again, and waits for it. */
export async function setNodeReady(kubeconfig: KubeConfig | string, name: string, ready: boolean): Promise<V1Node> {
  const api = coreApi(kubeconfig)
  await api.patchNode(
    {name, body: {metadata: {annotations: {[NOT_READY_ANNOTATION]: ready ? null : 'true'}}}},
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  )
  const [node] = await pollNodes(api, [name], ready)
  return node!
}

/** Deletes the nodes (missing ones are fine) and waits until they are gone. */
export async function deleteFakeNodes(kubeconfig: KubeConfig | string, names: string[], timeoutMs = 30_000): Promise<void> {
  const api = coreApi(kubeconfig)
  const gone = (err: unknown) => (err as {code?: number}).code === 404
  await Promise.all(
    names.map((name) =>
      api.deleteNode({name}).catch((err: unknown) => {
        if (!gone(err)) throw err
      }),
    ),
  )
  const deadline = Date.now() + timeoutMs
  for (const name of names) {
    for (;;) {
      const exists = await api.readNode({name}).then(
        () => true,
        (err: unknown) => {
          if (gone(err)) return false
          throw err
        },
      )
      if (!exists) break
      if (Date.now() > deadline) throw new Error(`node ${name} still exists after ${timeoutMs / 1000} s`)
      await sleep(200)
    }
  }
}
