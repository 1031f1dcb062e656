// What the agent's ServiceAccount may do, proven against the real API server with the token a kubelet would
// mount: one from the TokenRequest API, bound to the agent's pod. The install is made by the CLI, so these
// are the Role and admission policy karp really ships. Its nodes are plain Node objects: the DaemonSet
// controller creates the agents' pods and the scheduler binds them; a token binds to such a pod, which nothing
// runs (it stays Pending), as to any other.
import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'

import {ApiException, CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, type V1Pod} from '@kubernetes/client-node'

import {waitFor} from '../../lab/process.js'
import type {StatusResult} from '../../src/lib/status/status.js'
import {controlPlaneNode, createNodes, deleteNodes} from '../cluster/plain-nodes.js'
import {assertMatchesSchema} from '../helpers/json-schema.js'
import {karp} from '../helpers/karp.js'
import {clientWithToken, reportRole, roleCondition, serviceAccountToken, strategicMerge} from './agent-identity.js'
import {clusterOrSkip, uniqueName} from './cluster-env.js'
import {AGENT_REPORTING_COMPONENT, ELIGIBLE_CONDITION, INSTANCE_LABEL, instanceSelector, ROLE_CONDITION} from '../../src/lib/constants.js'

const cluster = clusterOrSkip()
const LABEL = 'karp-test/agent-rbac'
const NS = 'rbac-a'
const group = uniqueName('rbac')
const nodes = [1, 2].map((i) => controlPlaneNode(`${group}-cp${i}`, `10.79.0.1${i}`, {[LABEL]: 'yes'}))
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch)

/** The HTTP status the API server refused a call with (0 when it did not refuse). */
async function refusal(call: () => Promise<unknown>): Promise<{code: number; message: string}> {
  try {
    await call()
    return {code: 0, message: ''}
  } catch (error) {
    if (!(error instanceof ApiException)) throw error
    const body = typeof error.body === 'string' ? (JSON.parse(error.body) as {message?: string}) : (error.body as {message?: string})
    return {code: error.code, message: body?.message ?? ''}
  }
}

describe("the agent's token: its own pod's conditions and a list of its peers, nothing else", {skip: cluster.skip}, () => {
  let admin: CoreV1Api
  let kc: KubeConfig
  let own: V1Pod
  let other: V1Pod
  let agent: CoreV1Api
  const ref = (pod: V1Pod) => ({name: pod.metadata?.name as string, namespace: NS})

  before(async () => {
    kc = new KubeConfig()
    kc.loadFromFile(cluster.kubeconfig)
    admin = kc.makeApiClient(CoreV1Api)
    await createNodes(kc, nodes)
    // --no-wait: no agent ever becomes ready where nothing runs it.
    const installed = await karp([
      'install',
      '--kubeconfig',
      cluster.kubeconfig,
      '-n',
      NS,
      '--vip',
      '10.79.0.250',
      '--vhid',
      '41',
      '--node-selector',
      `${LABEL}=yes`,
      '--no-wait',
      '--json',
    ])
    assert.equal(installed.exitCode, 0, installed.stderr)
    assertMatchesSchema('install', installed.json)
    let pods: V1Pod[] = []
    await waitFor(
      'an agent pod bound to each node',
      30_000,
      async () => {
        pods = (await admin.listNamespacedPod({namespace: NS, labelSelector: `${INSTANCE_LABEL}=karp`})).items
        return pods.length === 2 && pods.every((p) => p.spec?.nodeName)
      },
      () => pods.map((p) => `${p.metadata?.name} on ${p.spec?.nodeName ?? '(unscheduled)'}`).join(', '),
    )
    ;[own, other] = pods.sort((a, b) => (a.spec?.nodeName ?? '').localeCompare(b.spec?.nodeName ?? '')) as [V1Pod, V1Pod]
    assert.deepEqual(
      [own.spec?.nodeName, other.spec?.nodeName],
      nodes.map((n) => n.name),
    )
    agent = clientWithToken(cluster, await serviceAccountToken(admin, own)).core
    // The API server loads a new policy through a watch, a moment after it is created: wait until it is in
    // force, probing with a dry run (admission applies, nothing is written). Should it never be, the tests
    // below say what the token could do.
    for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
      const probe = await refusal(() =>
        agent.patchNamespacedPodStatus(
          {...ref(other), body: {status: {conditions: [roleCondition('master')]}}, dryRun: 'All'},
          strategicMerge,
        ),
      )
      if (/the karp agent may only report on its own pod/.test(probe.message)) break
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  })

  after(async () => {
    if (!kc) return
    // No kubelet confirms the pods' end: deleteNodes removes them.
    const uninstalled = await karp(['uninstall', '--kubeconfig', cluster.kubeconfig, '-n', NS, '--yes', '--no-wait', '--json'])
    await deleteNodes(
      kc,
      nodes.map((n) => n.name),
    )
    assert.equal(uninstalled.exitCode, 0, uninstalled.stderr)
    assertMatchesSchema('uninstall', uninstalled.json)
  })

  it("reports its own role as a pod condition, leaving the scheduler's condition as it was", async () => {
    const before = await admin.readNamespacedPodStatus(ref(own))
    // No kubelet runs the pod, so it has no Ready or ContainersReady: PodScheduled is the condition to keep.
    assert.deepEqual(
      before.status?.conditions?.map((c) => [c.type, c.status]),
      [['PodScheduled', 'True']],
    )
    const patched = await reportRole(agent, ref(own), 'master')
    const condition = patched.status?.conditions?.find((c) => c.type === ROLE_CONDITION)
    assert.deepEqual([condition?.status, condition?.reason], ['True', 'Master'])
    const others = (p: V1Pod) => JSON.stringify(p.status?.conditions?.filter((c) => c.type !== ROLE_CONDITION))
    assert.equal(others(patched), others(before))
    // And again, as the next transition: the condition is replaced, not added.
    const again = await reportRole(agent, ref(own), 'backup')
    assert.deepEqual(
      again.status?.conditions?.filter((c) => c.type === ROLE_CONDITION).map((c) => c.reason),
      ['Backup'],
    )
  })

  it('may not touch another karp pod', async () => {
    const refused = await refusal(() => reportRole(agent, ref(other), 'master'))
    assert.notEqual(refused.code, 0, "patched another pod's status")
    assert.match(refused.message, /the karp agent may only report on its own pod/)
    const after = await admin.readNamespacedPodStatus(ref(other))
    assert.ok(!after.status?.conditions?.some((c) => c.type === ROLE_CONDITION && c.reason === 'Master'))
    const labelled = await refusal(() =>
      agent.patchNamespacedPod({...ref(other), body: {metadata: {labels: {[ROLE_CONDITION]: 'master'}}}}, merge),
    )
    assert.equal(labelled.code, 403)
  })

  it('may not change a container image, through the pod or its status', async () => {
    const image = own.spec?.containers[0]?.image
    const body = {spec: {containers: [{name: 'agent', image: 'evil.example/agent:latest'}]}}
    const direct = await refusal(() => agent.patchNamespacedPod({...ref(own), body}, strategicMerge))
    assert.equal(direct.code, 403, direct.message)
    assert.match(direct.message, /cannot patch resource "pods"/)
    // Through pods/status the API server drops any spec change; whatever the answer, the image stays.
    await refusal(() => agent.patchNamespacedPodStatus({...ref(own), body}, strategicMerge))
    for (const pod of [own, other]) assert.equal((await admin.readNamespacedPod(ref(pod))).spec?.containers[0]?.image, image)
    const replaced = await refusal(() =>
      agent.replaceNamespacedPod({
        ...ref(own),
        body: {...own, spec: {...own.spec!, containers: [{name: 'agent', image: 'evil.example/agent:latest'}]}},
      }),
    )
    assert.equal(replaced.code, 403)
  })

  it('may not change anything else of its own pod through pods/status', async () => {
    const attempts: Array<[string, object, RegExp]> = [
      ['a label', {metadata: {labels: {[INSTANCE_LABEL]: 'elsewhere'}}}, /may not change its pod's labels, annotations or finalizers/],
      ['an annotation', {metadata: {annotations: {'karp.io/note': 'x'}}}, /may not change its pod's labels, annotations or finalizers/],
      ['a finalizer', {metadata: {finalizers: ['karp.io/stuck']}}, /may not change its pod's labels, annotations or finalizers/],
      ['the phase', {status: {phase: 'Failed'}}, /may only change its own conditions \(karp.io\/role, karp.io\/eligible\)/],
      [
        'a container status',
        {status: {containerStatuses: [{name: 'agent', ready: false, restartCount: 99}]}},
        /may only change its own conditions \(karp.io\/role, karp.io\/eligible\)/,
      ],
      [
        'the status message',
        {status: {message: 'all is well', reason: 'Fine'}},
        /may only change its own conditions \(karp.io\/role, karp.io\/eligible\)/,
      ],
      [
        'the Ready condition',
        {status: {conditions: [{type: 'Ready', status: 'False'}]}},
        /may only change its own conditions \(karp.io\/role, karp.io\/eligible\)/,
      ],
      [
        'a condition of its own choosing',
        {status: {conditions: [{type: 'example.com/other', status: 'True'}]}},
        /may only change its own conditions \(karp.io\/role, karp.io\/eligible\)/,
      ],
    ]
    const before = await admin.readNamespacedPod(ref(own))
    for (const [what, body, message] of attempts) {
      const refused = await refusal(() => agent.patchNamespacedPodStatus({...ref(own), body}, strategicMerge))
      assert.notEqual(refused.code, 0, `changed ${what}`)
      assert.match(refused.message, message, what)
    }
    const after = await admin.readNamespacedPod(ref(own))
    assert.deepEqual(
      [after.metadata?.labels, after.metadata?.annotations, after.metadata?.finalizers, after.status],
      [before.metadata?.labels, before.metadata?.annotations, before.metadata?.finalizers, before.status],
    )
  })

  it('reports whether it may take the VIP (karp.io/eligible) on its own pod, the role condition kept', async () => {
    const eligible = (status: 'True' | 'False') => ({
      status: {conditions: [{type: ELIGIBLE_CONDITION, status, reason: status === 'True' ? 'Eligible' : 'Gated'}]},
    })
    await reportRole(agent, ref(own), 'backup')
    const patched = await agent.patchNamespacedPodStatus({...ref(own), body: eligible('False')}, strategicMerge)
    assert.deepEqual(
      patched.status?.conditions
        ?.filter((c) => c.type.startsWith('karp.io/'))
        .map((c) => [c.type, c.status, c.reason])
        .sort(),
      [
        [ELIGIBLE_CONDITION, 'False', 'Gated'],
        [ROLE_CONDITION, 'True', 'Backup'],
      ],
    )
    const refused = await refusal(() => agent.patchNamespacedPodStatus({...ref(other), body: eligible('False')}, strategicMerge))
    assert.match(refused.message, /may only report on its own pod/)
  })

  it('lists the pods of its own namespace, its peers, to rank itself among them', async () => {
    const peers = await agent.listNamespacedPod({namespace: NS, labelSelector: instanceSelector('karp')})
    assert.deepEqual(peers.items.map((p) => p.metadata?.name).sort(), [own, other].map((p) => p.metadata?.name).sort())
  })

  it('may not read the Secret or anything else', async () => {
    for (const [what, call] of [
      ['the Secret', () => agent.readNamespacedSecret({name: 'karp', namespace: NS})],
      ['Secrets', () => agent.listNamespacedSecret({namespace: NS})],
      // A list of its peers, yes (above); one pod by name or a watch of them, no.
      ['its own pod', () => agent.readNamespacedPod(ref(own))],
      ['a watch of pods', () => agent.listNamespacedPod({namespace: NS, watch: true, timeoutSeconds: 1})],
      ["another namespace's pods", () => agent.listNamespacedPod({namespace: 'kube-system'})],
      ['pods cluster-wide', () => agent.listPodForAllNamespaces()],
    ] as const) {
      const refused = await refusal(call)
      assert.equal(refused.code, 403, `read ${what}`)
    }
  })

  it('may get a Node, as its cordon check does, and nothing more of Nodes', async () => {
    const node = await agent.readNode({name: own.spec?.nodeName as string})
    assert.equal(node.metadata?.name, own.spec?.nodeName)
    // RBAC cannot narrow this to the node the pod runs on: any Node by name, but never a list.
    assert.equal((await agent.readNode({name: other.spec?.nodeName as string})).metadata?.name, other.spec?.nodeName)
    for (const [what, call] of [
      ['list Nodes', () => agent.listNode()],
      ['cordon its Node', () => agent.patchNode({name: own.spec?.nodeName as string, body: {spec: {unschedulable: true}}}, merge)],
      [
        "change a Node's status",
        () => agent.patchNodeStatus({name: own.spec?.nodeName as string, body: {status: {conditions: []}}}, merge),
      ],
      ['delete a Node', () => agent.deleteNode({name: other.spec?.nodeName as string})],
    ] as const) {
      const refused = await refusal(call)
      assert.equal(refused.code, 403, `could ${what}`)
    }
  })

  it('posts Events about its own pod only', async () => {
    const event = (pod: V1Pod) => ({
      metadata: {generateName: `${pod.metadata?.name}.`},
      involvedObject: {apiVersion: 'v1', kind: 'Pod', name: pod.metadata?.name, namespace: NS},
      reason: 'BecameMaster',
      message: 'test',
      type: 'Normal',
      source: {component: 'karp-agent'},
      reportingComponent: AGENT_REPORTING_COMPONENT,
      reportingInstance: 'x',
    })
    const created = await agent.createNamespacedEvent({namespace: NS, body: event(own)})
    assert.ok(created.metadata?.name)
    const refused = await refusal(() => agent.createNamespacedEvent({namespace: NS, body: event(other)}))
    assert.match(refused.message, /may only post Events about its own pod/)
  })

  it("refuses a token that is not bound to a pod, even for the agent's own ServiceAccount", async () => {
    const unbound = clientWithToken(cluster, await serviceAccountToken(admin, own, false)).core
    const refused = await refusal(() => reportRole(unbound, ref(own), 'master'))
    assert.notEqual(refused.code, 0)
    assert.match(refused.message, /must use the token the kubelet mounts, bound to its pod/)
  })

  it('is what karp status reads the role from', async () => {
    await reportRole(agent, ref(own), 'master')
    const otherAgent = clientWithToken(cluster, await serviceAccountToken(admin, other)).core
    await otherAgent.patchNamespacedPodStatus({...ref(other), body: {status: {conditions: [roleCondition('backup')]}}}, strategicMerge)
    const run = await karp(['status', '--kubeconfig', cluster.kubeconfig, '-n', NS, '--no-probe', '--json'])
    assertMatchesSchema('status', run.json)
    const install = (run.json as StatusResult).installs[0]
    assert.deepEqual(
      install?.agents.map((a) => [a.node, a.pod?.role]),
      [
        [own.spec?.nodeName, 'master'],
        [other.spec?.nodeName, 'backup'],
      ],
    )
    // Nothing runs these pods, and karp status trusts no report from a pod that does not run: no holder.
    // Holders from running agents' reports: status.test.ts, on the lab's real nodes.
    assert.deepEqual(
      install?.agents.map((a) => a.pod?.stale),
      [true, true],
    )
    assert.deepEqual(install?.holders, [])
    assert.equal(install?.state, 'down')
    assert.equal(run.exitCode, 4, run.stdout + run.stderr)
    assert.equal((run.json as StatusResult).exitCode, 4)
  })
})
