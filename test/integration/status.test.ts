import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'

import {AppsV1Api, CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, type V1Pod} from '@kubernetes/client-node'
import {execa} from 'execa'

import type {StatusResult} from '../../src/lib/status/status.js'
import {controlPlaneNode, createFakeNodes, deleteFakeNodes, setNodeReady} from '../cluster/nodes.js'
import {karp, karpBin} from '../helpers/karp.js'
import {clientWithToken, reportRole, serviceAccountToken} from './agent-identity.js'
import {clusterOrSkip} from './cluster-env.js'

const cluster = clusterOrSkip()
const LABEL = 'karp-test/status'
const NS = 'st-a'
const nodes = [1, 2, 3].map((i) => controlPlaneNode(`st-cp${i}`, `10.78.0.1${i}`, {[LABEL]: 'yes'}))
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch)

describe('karp status against a real control plane', {skip: cluster.skip}, () => {
  let kc: KubeConfig
  let core: CoreV1Api
  let apps: AppsV1Api
  let pods: Record<string, V1Pod> = {}

  // The VIPs of these installs live nowhere: never probe them (--no-probe), except the loopback one below.
  const status = (args: string[] = [], kubeconfig = cluster.kubeconfig) => karp(['status', '--kubeconfig', kubeconfig, '--json', ...args])
  const statusOf = async (args: string[] = ['-n', NS, '--no-probe']) => {
    const run = await status(args)
    return {exitCode: run.exitCode, result: run.json as StatusResult, stderr: run.stderr}
  }

  /** Stands in for the agents: the role condition, as agent/lib.sh reports it, with each pod's own bound token. */
  const agents: Record<string, CoreV1Api> = {}
  async function report(node: string, role: 'master' | 'backup') {
    const pod = pods[node] as V1Pod
    agents[node] ??= clientWithToken(cluster, await serviceAccountToken(core, pod)).core
    await reportRole(agents[node], {name: pod.metadata?.name as string, namespace: NS}, role)
  }

  before(async () => {
    kc = new KubeConfig()
    kc.loadFromFile(cluster.kubeconfig)
    core = kc.makeApiClient(CoreV1Api)
    apps = kc.makeApiClient(AppsV1Api)
    await createFakeNodes(kc, nodes)
    const installed = await karp(['install', '--kubeconfig', cluster.kubeconfig, '-n', NS, '--vip', '10.78.0.250', '--vhid', '31', '--node-selector', `${LABEL}=yes`, '--timeout', '90s', '--json'])
    assert.equal(installed.exitCode, 0, installed.stderr)
    const list = await core.listNamespacedPod({namespace: NS, labelSelector: 'app.kubernetes.io/instance=karp'})
    pods = Object.fromEntries(list.items.map((p) => [p.spec?.nodeName as string, p]))
    assert.deepEqual(Object.keys(pods).sort(), ['st-cp1', 'st-cp2', 'st-cp3'])
  })

  after(async () => {
    if (!kc) return
    await karp(['uninstall', '--kubeconfig', cluster.kubeconfig, '-n', NS, '--yes', '--timeout', '60s'])
    await karp(['uninstall', '--kubeconfig', cluster.kubeconfig, '-n', 'st-probe', '--yes', '--no-wait'])
    await deleteFakeNodes(kc, ['st-cp1', 'st-cp2', 'st-cp3', 'st-cp4'])
  })

  it('is healthy with one holder, and says which', async () => {
    await report('st-cp1', 'master')
    await report('st-cp2', 'backup')
    await report('st-cp3', 'backup')
    const {exitCode, result} = await statusOf()
    assert.equal(exitCode, 0, JSON.stringify(result))
    assert.equal(result.verdict, 'healthy')
    const [install] = result.installs
    assert.deepEqual(install?.holders, ['st-cp1'])
    assert.equal(install?.vip, '10.78.0.250')
    assert.equal(install?.vhid, 31)
    assert.deepEqual(install?.daemonSet, {desired: 3, current: 3, ready: 3, updated: 3, available: 3})
    assert.deepEqual(install?.agents.map((a) => [a.node, a.pod?.role, a.pod?.phase, a.pod?.ready]), [
      ['st-cp1', 'master', 'Running', true],
      ['st-cp2', 'backup', 'Running', true],
      ['st-cp3', 'backup', 'Running', true],
    ])
    assert.ok(install?.agents.every((a) => a.pod?.roleChangedAt))
  })

  it('prints a table for people, without colour when not on a terminal', async () => {
    const run = await karp(['status', '--kubeconfig', cluster.kubeconfig, '-n', NS, '--no-probe'])
    assert.equal(run.exitCode, 0, run.stderr)
    assert.match(run.stdout, /^st-a\/karp {3}VIP 10\.78\.0\.250 \(vhid 31, port 6443\) {3}HEALTHY$/m)
    assert.match(run.stdout, /^ {2}holder: st-cp1$/m)
    assert.match(run.stdout, /^ {2}NODE\s+STATUS\s+POD\s+PHASE\s+READY\s+RESTARTS\s+AGE\s+ROLE\s+ROLE SINCE$/m)
    assert.match(run.stdout, /^ {2}st-cp1\s+Ready\s+karp-\S+\s+Running\s+true\s+0\s+\d+s\s+master\s+\d+s$/m)
    assert.ok(!run.stdout.includes('\x1b['), 'no colour codes')
  })

  it('is down with no holder (exit 4)', async () => {
    await report('st-cp1', 'backup')
    const {exitCode, result} = await statusOf()
    assert.equal(exitCode, 4)
    assert.equal(result.verdict, 'down')
    assert.equal(result.installs[0]?.holder, 'none')
    assert.match(result.installs[0]?.problems[0] ?? '', /no node holds VIP 10\.78\.0\.250/)
  })

  it('calls two holders a split brain (exit 4)', async () => {
    await report('st-cp1', 'master')
    await report('st-cp2', 'master')
    const {exitCode, result} = await statusOf()
    assert.equal(exitCode, 4)
    assert.equal(result.installs[0]?.holder, 'split-brain')
    assert.deepEqual(result.installs[0]?.holders, ['st-cp1', 'st-cp2'])
    await report('st-cp2', 'backup')
  })

  it('reports a crash-looping agent', async () => {
    const pod = pods['st-cp3'] as V1Pod
    const current = await core.readNamespacedPodStatus({name: pod.metadata?.name as string, namespace: NS})
    const container = current.status?.containerStatuses?.[0]
    await core.patchNamespacedPodStatus(
      {
        name: pod.metadata?.name as string,
        namespace: NS,
        body: {status: {containerStatuses: [{...container, ready: false, restartCount: 5, state: {waiting: {reason: 'CrashLoopBackOff', message: 'back-off 5m0s'}}}]}},
      },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    )
    const {exitCode, result} = await statusOf()
    assert.equal(exitCode, 4)
    assert.equal(result.verdict, 'degraded')
    const agent = result.installs[0]?.agents.find((a) => a.node === 'st-cp3')
    assert.equal(agent?.pod?.crashLooping, true)
    assert.ok(result.installs[0]?.problems.some((p) => /st-cp3 is crash-looping \(5 restarts\)/.test(p)), JSON.stringify(result.installs[0]?.problems))
  })

  it('reports a selected node that is NotReady', async () => {
    await setNodeReady(kc, 'st-cp2', false)
    try {
      const {exitCode, result} = await statusOf()
      assert.equal(exitCode, 4)
      assert.equal(result.installs[0]?.agents.find((a) => a.node === 'st-cp2')?.nodeReady, false)
      assert.ok(result.installs[0]?.problems.includes('node st-cp2 is NotReady'))
    } finally {
      await setNodeReady(kc, 'st-cp2', true)
    }
  })

  it('reports a selected node without a pod', async () => {
    // Selected by its label, but its taint keeps the DaemonSet off it: as a forgotten toleration would.
    await createFakeNodes(kc, [{...controlPlaneNode('st-cp4', '10.78.0.14', {[LABEL]: 'yes'}), taints: [{key: 'karp-test/no-agent', effect: 'NoSchedule'}]}])
    const {exitCode, result} = await statusOf()
    assert.equal(exitCode, 4)
    assert.equal(result.installs[0]?.agents.find((a) => a.node === 'st-cp4')?.pod, null)
    assert.ok(result.installs[0]?.problems.includes('node st-cp4 is selected but runs no karp pod'))
    await deleteFakeNodes(kc, ['st-cp4'])
  })

  it('follows changes through the watch API', async () => {
    const child = execa(process.execPath, [karpBin, 'status', '--watch', '--json', '--kubeconfig', cluster.kubeconfig, '-n', NS, '--no-probe'], {reject: false, stdin: 'ignore'})
    const results: StatusResult[] = []
    let patched = false
    const seen = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no change seen; got ${results.length} updates`)), 30_000)
      let buffer = ''
      child.stdout?.on('data', (chunk: Buffer) => {
        buffer += chunk.toString()
        for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
          results.push(JSON.parse(buffer.slice(0, nl)) as StatusResult)
          buffer = buffer.slice(nl + 1)
          if (!patched) {
            patched = true
            void report('st-cp1', 'backup').then(() => report('st-cp2', 'master'))
          } else if (results.at(-1)?.installs[0]?.holders.join() === 'st-cp2') {
            clearTimeout(timer)
            resolve()
          }
        }
      })
    })
    try {
      await seen
    } finally {
      child.kill('SIGINT')
      await child
    }
    assert.deepEqual(results[0]?.installs[0]?.holders, ['st-cp1'])
    assert.deepEqual(results.at(-1)?.installs[0]?.holders, ['st-cp2'])
  })

  it('reports agents left behind by a deleted DaemonSet', async () => {
    await apps.deleteNamespacedDaemonSet({name: 'karp', namespace: NS, propagationPolicy: 'Orphan'})
    const {exitCode, result} = await statusOf()
    assert.equal(exitCode, 4)
    assert.equal(result.installs[0]?.daemonSet, null)
    assert.match(result.installs[0]?.problems[0] ?? '', /DaemonSet st-a\/karp is missing: 3 agent pods left without it/)
  })

  it('is cleaned up by uninstall, orphaned agents included', async () => {
    const run = await karp(['uninstall', '--kubeconfig', cluster.kubeconfig, '-n', NS, '--yes', '--timeout', '60s', '--json'])
    assert.equal(run.exitCode, 0, run.stderr)
    assert.equal((run.json as {podsRemaining: number}).podsRemaining, 0)
    const {result} = await statusOf()
    assert.equal(result.verdict, 'not-installed')
  })

  it('says plainly when there is no karp install (exit 4)', async () => {
    const {exitCode, result} = await statusOf(['-n', 'st-nothing-here', '--no-probe'])
    assert.equal(exitCode, 4)
    assert.equal(result.verdict, 'not-installed')
    assert.match(result.summary, /^no karp install found in context \S+ \(namespace st-nothing-here\); install one with: karp install --vip ADDRESS$/)
  })

  it('names the missing permission for an unprivileged identity (exit 3)', async () => {
    const run = await status(['--no-probe'], cluster.userKubeconfig)
    assert.equal(run.exitCode, 3)
    const message = (run.json as {error: {message: string}}).error.message
    assert.match(message, new RegExp(`^forbidden: ${cluster.userName} \\(context [^)]+\\) may not `))
    for (const need of ['list daemonsets.apps (cluster-wide)', 'list pods (cluster-wide)', 'list nodes (cluster-wide)', 'list events (cluster-wide)']) {
      assert.ok(message.includes(need), `${need} missing from: ${message}`)
    }
    assert.match(message, /nothing could be read$/)
  })

  it('probes the VIP from here: TCP, TLS, and whether the certificate carries it', async () => {
    // The only VIP a test may dial is on loopback: point an install at the real API server's own address.
    const server = new URL(cluster.server)
    const installed = await karp(['install', '--kubeconfig', cluster.kubeconfig, '-n', 'st-probe', '--vip', '10.78.0.251', '--vhid', '32', '--node-selector', `${LABEL}=yes`, '--no-wait', '--json'])
    assert.equal(installed.exitCode, 0, installed.stderr)
    await apps.patchNamespacedDaemonSet(
      {name: 'karp', namespace: 'st-probe', body: {metadata: {annotations: {'karp.io/vip': server.hostname, 'karp.io/api-port': server.port}}}},
      merge,
    )
    const {result} = await statusOf(['-n', 'st-probe', '--timeout', '5s'])
    const probe = result.installs[0]?.vipProbe
    assert.equal(probe?.reachable, true, JSON.stringify(probe))
    assert.equal(probe?.endpoint, `${server.hostname}:${server.port}`)
    assert.ok((probe?.connectMs ?? -1) >= 0 && (probe?.handshakeMs ?? -1) >= 0)
    assert.equal(probe?.vipSan?.status, 'pass')
    assert.equal(probe?.trust?.status, 'pass')
  })
})
