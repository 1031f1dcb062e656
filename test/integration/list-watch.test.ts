// The watch helper (src/lib/kube/list-watch.ts) and the node lists of karp status (src/lib/status/gather.ts),
// against the real API server of the test control plane. ConfigMaps of a namespace of the suite's own stand
// in for any kind: the helper only knows a path, a selector and a list call.
import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'
import {
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  type V1ConfigMap,
  type V1PodSpec,
  Watch,
} from '@kubernetes/client-node'

import {ListWatch, type ListWatchOptions} from '../../src/lib/kube/list-watch.js'
import {nodeLabelSelectors, podSpecSelectsNode} from '../../src/lib/manifests/node-selection.js'
import {createNodes, deleteNodes, workerNode} from '../cluster/plain-nodes.js'
import {clusterOrSkip, loadKubeConfig, uniqueName} from './cluster-env.js'

const cluster = clusterOrSkip()
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function until(what: string, timeoutMs: number, check: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`)
    await sleep(50)
  }
}

describe('ListWatch against the real API server', {skip: cluster.skip}, () => {
  let kc: KubeConfig
  let core: CoreV1Api
  const namespace = uniqueName('karp-lw')
  const LABEL = 'karp-test/list-watch'
  const running: Array<ListWatch<KubernetesObject>> = []

  before(async () => {
    kc = loadKubeConfig(cluster.kubeconfig)
    core = kc.makeApiClient(CoreV1Api)
    await core.createNamespace({body: {metadata: {name: namespace}}})
  })

  after(async () => {
    await Promise.all(running.map((w) => w.stop()))
    await core?.deleteNamespace({name: namespace}).catch(() => undefined)
    await kc
      ?.makeApiClient(ApiextensionsV1Api)
      .deleteCustomResourceDefinition({name: `probes.${GROUP}`})
      .catch(() => undefined)
  })

  const configMap = (name: string, labelled: boolean, data = 'x') =>
    core.createNamespacedConfigMap({namespace, body: {metadata: {name, ...(labelled ? {labels: {[LABEL]: 'yes'}} : {})}, data: {data}}})

  /** A helper on the suite's labelled ConfigMaps; it counts its lists, changes and failures. */
  const watchConfigMaps = (extra: Partial<ListWatchOptions<V1ConfigMap>> = {}) => {
    const counts = {lists: 0, changes: 0, failures: [] as unknown[]}
    const query = {labelSelector: `${LABEL}=yes`}
    const w = new ListWatch<V1ConfigMap>(new Watch(kc), {
      path: `/api/v1/namespaces/${namespace}/configmaps`,
      query,
      list: async () => {
        counts.lists++
        const list = await core.listNamespacedConfigMap({namespace, ...query})
        return {items: list.items, resourceVersion: list.metadata?.resourceVersion ?? ''}
      },
      changed: () => counts.changes++,
      failed: (error) => counts.failures.push(error),
      serverTimeoutSeconds: 5,
      ...extra,
    })
    running.push(w)
    return {w, counts}
  }
  const GROUP = 'lw.karp.test'
  const createProbeKind = async () => {
    const crds = kc.makeApiClient(ApiextensionsV1Api)
    const body = {
      metadata: {name: `probes.${GROUP}`},
      spec: {
        group: GROUP,
        names: {kind: 'Probe', plural: 'probes', singular: 'probe', listKind: 'ProbeList'},
        scope: 'Namespaced',
        versions: [
          {
            name: 'v1',
            served: true,
            storage: true,
            schema: {openAPIV3Schema: {type: 'object', 'x-kubernetes-preserve-unknown-fields': true}},
          },
        ],
      },
    }
    await crds.createCustomResourceDefinition({body}).catch((error: {code?: number}) => {
      if (error.code !== 409) throw error
    })
    for (const deadline = Date.now() + 30_000; ; await sleep(200)) {
      const crd = await crds.readCustomResourceDefinition({name: `probes.${GROUP}`})
      if (crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) return
      if (Date.now() > deadline) throw new Error(`CRD probes.${GROUP} not established within 30 s`)
    }
  }
  const names = (w: ListWatch<KubernetesObject>) => [...w.objects.values()].map((o) => o.metadata?.name).sort()

  it('lists once, then follows additions, changes and deletions through the watch alone', async () => {
    await configMap('seen-1', true)
    const {w, counts} = watchConfigMaps()
    await w.start()
    assert.deepEqual(names(w), ['seen-1'])
    await configMap('seen-2', true)
    await until('seen-2 added', 10_000, () => w.objects.has(`${namespace}/seen-2`))
    await core.patchNamespacedConfigMap({name: 'seen-2', namespace, body: [{op: 'replace', path: '/data/data', value: 'changed'}]})
    await until('seen-2 changed', 10_000, () => w.objects.get(`${namespace}/seen-2`)?.data?.data === 'changed')
    await core.deleteNamespacedConfigMap({name: 'seen-1', namespace})
    await until('seen-1 deleted', 10_000, () => !w.objects.has(`${namespace}/seen-1`))
    assert.deepEqual(names(w), ['seen-2'])
    assert.equal(counts.lists, 1, 'no list after the first')
    assert.equal(w.relists, 0)
    assert.ok(counts.changes >= 3, `changes reported: ${counts.changes}`)
    assert.deepEqual(counts.failures, [])
  })

  it("moves its resourceVersion on with the server's bookmarks, with no event and no list", async () => {
    const {w, counts} = watchConfigMaps()
    await w.start()
    const started = BigInt(w.resourceVersion)
    const changesAtStart = counts.changes
    // Unlabelled: the watch sends no event for it, but it moves the cluster's resourceVersion past `started`.
    const other = await configMap(uniqueName('unseen'), false)
    const moved = BigInt(other.metadata?.resourceVersion ?? '0')
    assert.ok(moved > started)
    // The server sends a bookmark shortly before each watch's timeoutSeconds (5 s here) runs out.
    await until('a bookmark at or past the unlabelled ConfigMap', 30_000, () => BigInt(w.resourceVersion) >= moved)
    assert.equal(counts.changes, changesAtStart, 'a bookmark is no change')
    assert.equal(counts.lists, 1)
    assert.equal(w.relists, 0)
    assert.deepEqual(counts.failures, [])
  })

  it('lists again exactly once when its resourceVersion has expired (410 Gone from the server), then watches on', async () => {
    // A kind the API server began to cache just now (a CRD made by this test): its watch cache starts at the
    // cluster's resourceVersion of that moment, so a watch from resourceVersion 1 is too old for it, and the
    // server says so in the stream: an ERROR event whose Status is 410 Expired. (A built-in kind, cached since
    // the server started, still serves resourceVersion 1 on a young cluster.)
    await createProbeKind()
    const probes = kc.makeApiClient(CustomObjectsApi)
    const probe = (name: string) =>
      probes.createNamespacedCustomObject({
        group: GROUP,
        version: 'v1',
        namespace,
        plural: 'probes',
        body: {apiVersion: `${GROUP}/v1`, kind: 'Probe', metadata: {name}},
      })
    await probe('before-expiry')
    const counts = {lists: 0, changes: 0, failures: [] as unknown[]}
    const w = new ListWatch<KubernetesObject>(new Watch(kc), {
      path: `/apis/${GROUP}/v1/namespaces/${namespace}/probes`,
      query: {},
      list: async () => {
        counts.lists++
        const list = (await probes.listNamespacedCustomObject({group: GROUP, version: 'v1', namespace, plural: 'probes'})) as {
          items: KubernetesObject[]
          metadata?: {resourceVersion?: string}
        }
        return {items: list.items, resourceVersion: list.metadata?.resourceVersion ?? ''}
      },
      from: {items: [], resourceVersion: '1'},
      changed: () => counts.changes++,
      failed: (error) => counts.failures.push(error),
      serverTimeoutSeconds: 5,
    })
    running.push(w)
    await w.start()
    await until('the relist after 410', 20_000, () => w.relists > 0)
    assert.deepEqual(names(w), ['before-expiry'])
    await probe('after-relist')
    await until('after-relist added by the watch', 10_000, () => w.objects.has(`${namespace}/after-relist`))
    // Longer than a watch (5 s): a watch resumed from its own resourceVersion must not count as expired.
    await sleep(7000)
    assert.equal(w.relists, 1)
    assert.equal(counts.lists, 1, 'one list: the relist (the helper started from a given list)')
    assert.deepEqual(counts.failures, [], 'a 410 is not reported as a failure')
  })

  it('stops promptly, its watch closed', async () => {
    const {w} = watchConfigMaps()
    await w.start()
    const began = Date.now()
    await w.stop()
    assert.ok(Date.now() - began < 5000, 'stop does not wait for the server to end the watch')
  })
})

describe('node label selectors of a DaemonSet, listed by the real API server', {skip: cluster.skip}, () => {
  const prefix = uniqueName('karp-sel')
  const KEY = 'karp-test.io/sel'
  const ZONE = 'karp-test.io/zone'
  const GPU = 'karp-test.io/gpus'
  const nodes = [
    workerNode(`${prefix}-a`, '10.93.0.1', {[KEY]: '', [ZONE]: 'z1'}),
    workerNode(`${prefix}-b`, '10.93.0.2', {[KEY]: 'true', [ZONE]: 'z2', [GPU]: '4'}),
    workerNode(`${prefix}-c`, '10.93.0.3', {[ZONE]: 'z3', [GPU]: '1'}),
    workerNode(`${prefix}-d`, '10.93.0.4', {[KEY]: 'other'}),
    workerNode(`${prefix}-e`, '10.93.0.5', {}),
  ]
  const ours = new Set(nodes.map((n) => n.name))
  let core: CoreV1Api

  before(async () => {
    const kc = loadKubeConfig(cluster.kubeconfig)
    core = kc.makeApiClient(CoreV1Api)
    await createNodes(kc, nodes)
  })

  after(async () => {
    if (core)
      await deleteNodes(
        cluster.kubeconfig,
        nodes.map((n) => n.name),
      )
  })

  const term = (...matchExpressions: Array<{key: string; operator: string; values?: string[]}>) => ({matchExpressions})
  const affinity = (...terms: Array<ReturnType<typeof term>>) => ({
    nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: terms}},
  })
  // The letters of the nodes each spec selects, worked out by hand.
  const specs: Array<[string, Pick<V1PodSpec, 'nodeSelector' | 'affinity'>, string]> = [
    ['nodeSelector with an empty value', {nodeSelector: {[KEY]: ''}}, 'a'],
    [
      'ORed terms: Exists, In',
      {affinity: affinity(term({key: KEY, operator: 'Exists'}), term({key: ZONE, operator: 'In', values: ['z3', 'z9']}))},
      'abcd',
    ],
    [
      'NotIn and DoesNotExist',
      {affinity: affinity(term({key: ZONE, operator: 'NotIn', values: ['z1']}, {key: GPU, operator: 'DoesNotExist'}))},
      'de',
    ],
    [
      'Gt, which no selector says: left to the judge',
      {
        nodeSelector: {[ZONE]: 'z2'},
        affinity: affinity(term({key: GPU, operator: 'Gt', values: ['2']}), term({key: KEY, operator: 'In', values: ['other']})),
      },
      'b',
    ],
    [
      'nodeSelector ANDed with every term',
      {
        nodeSelector: {[KEY]: 'true'},
        affinity: affinity(term({key: ZONE, operator: 'Exists'}), term({key: GPU, operator: 'In', values: ['1']})),
      },
      'b',
    ],
    ['no selection at all', {}, 'abcde'],
  ]

  for (const [what, spec, expected] of specs) {
    it(`lists every node the DaemonSet selects: ${what}`, async () => {
      const listed = new Map<string, Record<string, string>>()
      for (const labelSelector of nodeLabelSelectors(spec)) {
        for (const n of (await core.listNode({labelSelector})).items)
          if (ours.has(n.metadata?.name ?? '')) listed.set(n.metadata?.name ?? '', n.metadata?.labels ?? {})
      }
      const judged = [...listed]
        .filter(([, labels]) => podSpecSelectsNode(spec, labels))
        .map(([name]) => name)
        .sort()
      assert.deepEqual(
        judged,
        [...expected].map((letter) => `${prefix}-${letter}`),
      )
    })
  }

  it('narrows the list: the default control-plane affinity lists none of these workers', () => {
    const selectors = nodeLabelSelectors({
      affinity: affinity(
        term({key: 'node-role.kubernetes.io/control-plane', operator: 'Exists'}),
        term({key: 'node-role.kubernetes.io/controlplane', operator: 'In', values: ['true']}),
      ),
    })
    assert.deepEqual(selectors, ['node-role.kubernetes.io/control-plane', 'node-role.kubernetes.io/controlplane in (true)'])
  })
})
