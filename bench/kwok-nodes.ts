// Fake Nodes for benchmarks where scale is the point: kwok, started by startControlPlane({kwok: KWOK}), manages
// every Node annotated kwok.x-k8s.io/node=fake, makes it Ready and runs the pods bound to it. Tests use plain
// nodes (test/cluster/plain-nodes.ts) or real ones (lab/).
import {fileURLToPath} from 'node:url'

import {type KubeConfig, PatchStrategy, setHeaderOptions, type CoreV1Api, type V1Node} from '@kubernetes/client-node'

import type {KwokOptions} from '../test/cluster/control-plane.js'
import {coreApi, deleteNodes, nodeObject, type PlainNode} from '../test/cluster/plain-nodes.js'

export {controlPlaneNode, workerNode} from '../test/cluster/plain-nodes.js'

const KWOK_ANNOTATION = 'kwok.x-k8s.io/node'
/** While present, kwok reports the node NotReady (see bench/kwok.yaml). */
const NOT_READY_ANNOTATION = 'karp.test/not-ready'
/** What startControlPlane needs to run kwok for these nodes. */
export const KWOK: KwokOptions = {config: fileURLToPath(new URL('kwok.yaml', import.meta.url)), nodeAnnotation: `${KWOK_ANNOTATION}=fake`}

export interface FakeNode extends PlainNode {
  /** Default true. False: the node comes up NotReady and stays so until setNodeReady(…, true). */
  ready?: boolean
}

function nodeReady(node: V1Node): boolean {
  return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls until every named node is Ready (or NotReady, with ready=false). */
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
    nodes.map((node) => {
      const annotations = {...node.annotations, [KWOK_ANNOTATION]: 'fake', ...(node.ready === false ? {[NOT_READY_ANNOTATION]: 'true'} : {})}
      // kwok keeps the addresses and capacity it finds.
      return api.createNode({body: nodeObject({...node, annotations})})
    }),
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
export const deleteFakeNodes = deleteNodes
