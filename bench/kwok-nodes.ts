// Fake Nodes for benchmarks where scale is the point: kwok, started by startControlPlane({kwok: KWOK}), manages
// every Node annotated kwok.x-k8s.io/node=fake, makes it Ready and runs the pods bound to it. Tests use plain
// nodes (test/cluster/plain-nodes.ts) or real ones (lab/).
import {fileURLToPath} from 'node:url'

import type {CoreV1Api, KubeConfig, V1Node} from '@kubernetes/client-node'

import type {KwokOptions} from '../test/cluster/control-plane.js'
import {coreApi, nodeObject, type PlainNode} from '../test/cluster/plain-nodes.js'

export {controlPlaneNode} from '../test/cluster/plain-nodes.js'

const KWOK_ANNOTATION = 'kwok.x-k8s.io/node'
/** What startControlPlane needs to run kwok for these nodes. */
export const KWOK: KwokOptions = {config: fileURLToPath(new URL('kwok.yaml', import.meta.url)), nodeAnnotation: `${KWOK_ANNOTATION}=fake`}

function nodeReady(node: V1Node): boolean {
  return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls until every named node is Ready. */
async function pollNodes(api: CoreV1Api, names: string[], timeoutMs = 30_000): Promise<V1Node[]> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const nodes = await Promise.all(names.map((name) => api.readNode({name})))
    const pending = nodes.filter((n) => !nodeReady(n)).map((n) => n.metadata?.name)
    if (pending.length === 0) return nodes
    if (Date.now() > deadline) {
      throw new Error(`nodes not Ready after ${timeoutMs / 1000} s: ${pending.join(', ')}`)
    }
    await sleep(200)
  }
}

/** Creates the nodes and waits until kwok has made them Ready. */
export async function createFakeNodes(kubeconfig: KubeConfig | string, nodes: PlainNode[]): Promise<V1Node[]> {
  const api = coreApi(kubeconfig)
  // kwok keeps the addresses and capacity it finds.
  await Promise.all(
    nodes.map((node) => api.createNode({body: nodeObject({...node, annotations: {...node.annotations, [KWOK_ANNOTATION]: 'fake'}})})),
  )
  return pollNodes(
    api,
    nodes.map((n) => n.name),
  )
}
