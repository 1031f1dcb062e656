// The handover from static-pod agents (karp bootstrap) to the DaemonSet, as install and status see it, against
// the real test control plane. A kubelet publishes each static pod as a mirror pod; here there is no kubelet,
// so the suite creates pods of that shape itself as admin (namespace kube-system, the manifest's labels and
// annotations, the kubelet's kubernetes.io/config.* annotations, spec.nodeName of a plain node) and sets
// their status as a kubelet would. The plain nodes are kept Ready (their Leases renewed), so the node
// lifecycle controller leaves the pods' readiness as the suite set it.
import assert from 'node:assert/strict'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {AppsV1Api, CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, type V1Pod} from '@kubernetes/client-node'

import {AGENT_IMAGE} from '../../src/lib/config/agent-image.js'
import {STATIC_POD_NAMESPACE, VHID_ANNOTATION} from '../../src/lib/constants.js'
import {controlPlaneNode, createNodes, deleteNodes, keepNodesReady} from '../cluster/plain-nodes.js'
import {staticAgentMirrorPod} from '../helpers/agent-fixtures.js'
import {assertJsonOutput} from '../helpers/json-schema.js'
import {karp, type KarpRun} from '../helpers/karp.js'
import {clusterOrSkip, uniqueName} from './cluster-env.js'

const cluster = clusterOrSkip()
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch)

const group = uniqueName('ho')
const LABEL = 'karp-test/handover'
const NODES = [1, 2, 3].map((i) => `${group}-cp${i}`)
const VIP = '10.82.0.100'
const VHID = 71
const NS = `${group}-ns`
const MANIFEST = '/etc/kubernetes/manifests/karp.yaml'
const PASSWORD_FILE = '/etc/karp/password'
const PASSWORD = 'ho-static-secret'
/** The node that lists the VIP among its addresses: the one install can tell holds it. */
const HOLDER = NODES[2] as string

type InstallJson = {
  vhid: number
  passwordSource: string
  staticAgents?: Array<{node: string; manifest?: string}>
  handover?: {order: string[]; holder?: string}
}
type StatusJson = {
  verdict: string
  summary: string
  exitCode: number
  installs: Array<{
    namespace: string
    holder: string
    state: string
    problems: string[]
    warnings?: string[]
  }>
  staticAgents?: Array<{node: string; pod: string; ready: boolean; manifest?: string; mirror: boolean; install?: string}>
}

const errorOf = (run: KarpRun) => (run.json as {error?: {message?: string}} | undefined)?.error?.message ?? ''

describe('karp install and status with static-pod agents (the handover)', {skip: cluster.skip}, () => {
  let kc: KubeConfig
  let core: CoreV1Api
  let stopHeartbeats: (() => Promise<void>) | undefined
  let dir = ''
  let passwordFile = ''

  /** Sets a pod's status as a kubelet reports a running container, ready or not. */
  const reportRunning = (namespace: string, name: string, ready: boolean) =>
    core.patchNamespacedPodStatus(
      {
        namespace,
        name,
        body: {
          status: {
            phase: 'Running',
            conditions: [{type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: new Date()}],
            containerStatuses: [
              {name: 'agent', image: AGENT_IMAGE, imageID: '', ready, restartCount: 0, state: {running: {startedAt: new Date()}}},
            ],
          },
        },
      },
      merge,
    )
  const staticPodsReady = (ready: boolean) => Promise.all(NODES.map((node) => reportRunning(STATIC_POD_NAMESPACE, `karp-${node}`, ready)))
  const daemonSetExists = async () => (await kc.makeApiClient(AppsV1Api).listNamespacedDaemonSet({namespace: NS})).items.length > 0
  const namespaceExists = async () => (await core.listNamespace({fieldSelector: `metadata.name=${NS}`})).items.length > 0

  const installArgs = (extra: string[]) => [
    'install',
    '--kubeconfig',
    cluster.kubeconfig,
    '-n',
    NS,
    '--node-selector',
    `${LABEL}=yes`,
    '--no-wait',
    ...extra,
  ]
  const install = async (extra: string[]) => {
    const run = await karp([...installArgs(extra), '--json'])
    assertJsonOutput('install', run)
    return run
  }
  const status = async (extra: string[] = []) => {
    const run = await karp(['status', '--kubeconfig', cluster.kubeconfig, '-n', NS, '--no-probe', '--json', ...extra])
    assertJsonOutput('status', run)
    return {run, result: run.json as StatusJson}
  }

  before(async () => {
    kc = new KubeConfig()
    kc.loadFromFile(cluster.kubeconfig)
    core = kc.makeApiClient(CoreV1Api)
    await createNodes(
      kc,
      NODES.map((name, i) => controlPlaneNode(name, `10.82.0.1${i + 1}`, {[LABEL]: 'yes'})),
    )
    stopHeartbeats = await keepNodesReady(kc, NODES)
    // The holder's kubelet lists the VIP among the node's addresses, as one that picks addresses from its interface may.
    await core.patchNodeStatus(
      {
        name: HOLDER,
        body: {
          status: {
            addresses: [
              {type: 'InternalIP', address: '10.82.0.13'},
              {type: 'InternalIP', address: VIP},
              {type: 'Hostname', address: HOLDER},
            ],
          },
        },
      },
      merge,
    )
    for (const node of NODES) {
      await core.createNamespacedPod({
        namespace: STATIC_POD_NAMESPACE,
        body: staticAgentMirrorPod(node, {vip: VIP, vhid: String(VHID), manifest: MANIFEST, passwordFile: PASSWORD_FILE}),
      })
    }
    await staticPodsReady(true)
    dir = await mkdtemp(join(tmpdir(), 'karp-handover-'))
    passwordFile = join(dir, 'password')
    // A copy of the password file karp bootstrap wrote on the nodes.
    await writeFile(passwordFile, `${PASSWORD}\n`, {mode: 0o600})
  })

  after(async () => {
    await karp(['uninstall', '--kubeconfig', cluster.kubeconfig, '-n', NS, '--yes', '--no-wait'])
    if (core) {
      await Promise.all(
        NODES.map((node) =>
          core.deleteNamespacedPod({namespace: STATIC_POD_NAMESPACE, name: `karp-${node}`, gracePeriodSeconds: 0}).catch(() => undefined),
        ),
      )
    }
    await stopHeartbeats?.()
    if (kc) await deleteNodes(kc, NODES)
    if (dir) await rm(dir, {recursive: true, force: true})
  })

  it('status: bootstrap agents only are healthy (exit 0), listed with their manifests, with how to hand over', async () => {
    const {run, result} = await status()
    assert.equal(run.exitCode, 0, run.stderr)
    assert.equal(result.verdict, 'healthy')
    assert.deepEqual(result.installs, [])
    assert.equal(
      result.summary,
      `no karp install yet: the cluster runs bootstrap static-pod agents for VIP ${VIP} (vhid ${VHID}) on ${NODES.join(', ')}, all ready; ` +
        `hand over to a DaemonSet with: karp install --vip ${VIP} --password-file FILE (FILE: a copy of ${PASSWORD_FILE} from one of these nodes)`,
    )
    assert.deepEqual(
      result.staticAgents?.map((a) => [a.node, a.pod, a.ready, a.manifest, a.mirror, a.install]),
      NODES.map((n) => [n, `karp-${n}`, true, MANIFEST, true, undefined]),
    )
    const human = await karp(['status', '--kubeconfig', cluster.kubeconfig, '-n', NS, '--no-probe'])
    assert.equal(human.exitCode, 0, human.stderr)
    assert.match(human.stdout, /Static-pod agents \(karp bootstrap; without API credentials they report no role\):/)
    for (const node of NODES)
      assert.match(
        human.stdout,
        new RegExp(`${node}\\s+karp-${node}\\s+Running\\s+true\\s+\\S+\\s+${VIP.replaceAll('.', '\\.')} \\(vhid ${VHID}\\)\\s+${MANIFEST}`),
      )
  })

  it('status: a static-pod agent not ready makes the bootstrap degraded (exit 4), naming it', async () => {
    await reportRunning(STATIC_POD_NAMESPACE, `karp-${NODES[0]}`, false)
    try {
      const {run, result} = await status()
      assert.equal(run.exitCode, 4, run.stderr)
      assert.equal(result.verdict, 'degraded')
      assert.match(result.summary, new RegExp(`static-pod agent karp-${NODES[0]} on ${NODES[0]} is not ready \\(Running\\)`))
    } finally {
      await staticPodsReady(true)
    }
  })

  it("install: refuses a --vip or --vhid other than the static-pod agents', naming both values and the nodes; nothing applied", async () => {
    const run = await install(['--vip', '10.82.0.101', '--vhid', '72', '--password-file', passwordFile])
    assert.equal(run.exitCode, 2, run.stderr)
    const where = `the static-pod agents on ${NODES.join(', ')}`
    assert.equal(
      errorOf(run),
      `--vip 10.82.0.101 differs from VIP ${VIP} of ${where}: the DaemonSet takes over their VIP; give --vip ${VIP}\n` +
        `--vhid 72 differs from vhid ${VHID} of ${where}: give --vhid ${VHID}, or leave it out to take theirs`,
    )
    const vhidOnly = await install(['--vip', VIP, '--vhid', '72', '--password-file', passwordFile])
    assert.equal(vhidOnly.exitCode, 2, vhidOnly.stderr)
    assert.match(errorOf(vhidOnly), /^--vhid 72 differs from vhid 71 of /)
    assert.equal(await namespaceExists(), false, 'no namespace created')
  })

  it('install: refuses without the password, saying where the static pods keep it; nothing applied', async () => {
    const run = await install(['--vip', VIP])
    assert.equal(run.exitCode, 2, run.stderr)
    assert.equal(
      errorOf(run),
      `the static-pod agents on ${NODES.join(', ')} run VIP ${VIP}, and the DaemonSet must use their CARP password, which is not in the API: ` +
        `it is in ${PASSWORD_FILE} on those nodes; copy it from one and give it with --password-file, e.g. --password-file ./password (or --password-file - to read it from stdin)`,
    )
    assert.equal(await namespaceExists(), false, 'no namespace created')
    assert.equal(await daemonSetExists(), false)
  })

  it('install: takes their vhid, applies though the holder lists the VIP as its address, and says which manifests to remove in which order', async () => {
    const run = await install(['--vip', VIP, '--password-file', passwordFile])
    assert.equal(run.exitCode, 0, run.stderr)
    const result = run.json as InstallJson
    assert.equal(result.vhid, VHID, "the static-pod agents' vhid, --vhid unset")
    assert.equal(result.passwordSource, 'flag')
    const order = [...NODES.filter((n) => n !== HOLDER), HOLDER]
    assert.deepEqual(result.handover, {order, holder: HOLDER})
    assert.deepEqual(
      result.staticAgents,
      order.map((node) => ({node, manifest: MANIFEST})),
    )
    const ds = await kc.makeApiClient(AppsV1Api).readNamespacedDaemonSet({namespace: NS, name: 'karp'})
    assert.equal(ds.metadata?.annotations?.[VHID_ANNOTATION], String(VHID))
    const secret = await core.readNamespacedSecret({namespace: NS, name: 'karp'})
    assert.equal(Buffer.from(secret.data?.password ?? '', 'base64').toString(), PASSWORD)

    // Once more without --json: the steps as the user reads them (nothing changes: the same flags).
    const human = await karp(installArgs(['--vip', VIP, '--password-file', passwordFile]))
    assert.equal(human.exitCode, 0, human.stderr)
    assert.match(human.stdout, /First wait for the rollout \(--no-wait did not\)/)
    const steps = order.map(
      (node, i) =>
        `  ${i + 1}. on ${node}: rm ${MANIFEST}${node === HOLDER ? ` (it holds the VIP: it lists ${VIP} among its addresses)` : ''}`,
    )
    assert.ok(human.stdout.includes(steps.join('\n')), human.stdout)
    assert.ok(human.stdout.includes(`rm ${PASSWORD_FILE} on ${NODES.join(', ')}`), human.stdout)
  })

  it('status: static-pod agents next to the DaemonSet are a handover in progress, a warning, not a failure', async () => {
    // The DaemonSet's agents as their kubelets would report them: running, ready, waiting out of CARP (no role).
    let pods: V1Pod[] = []
    const bound = () => pods.length === NODES.length && pods.every((p) => p.spec?.nodeName)
    for (const start = Date.now(); !bound();) {
      assert.ok(Date.now() - start < 30_000, `the DaemonSet's pods created and scheduled within 30 s: ${pods.length}`)
      pods = (await core.listNamespacedPod({namespace: NS})).items
      if (!bound()) await new Promise((resolve) => setTimeout(resolve, 200))
    }
    await Promise.all(pods.map((p) => reportRunning(NS, p.metadata?.name as string, true)))
    let last: StatusJson | undefined
    for (const start = Date.now(); last?.installs[0]?.state !== 'healthy';) {
      assert.ok(
        Date.now() - start < 30_000,
        `the DaemonSet counted its agents available within 30 s: ${JSON.stringify(last?.installs[0]?.problems)}`,
      )
      last = (await status()).result
      if (last.installs[0]?.state !== 'healthy') await new Promise((resolve) => setTimeout(resolve, 500))
    }
    const {run, result} = await status()
    assert.equal(run.exitCode, 0, run.stderr)
    assert.equal(result.verdict, 'healthy')
    const installed = result.installs[0]
    assert.equal(installed?.holder, 'static-pod', 'no DaemonSet agent holds the VIP; a ready static-pod agent does')
    assert.deepEqual(installed?.problems, [])
    const order = [...NODES.filter((n) => n !== HOLDER), HOLDER]
    assert.deepEqual(installed?.warnings, [
      `handover in progress: static-pod agents still run on ${NODES.join(', ')}; remove their manifests one node at a time, ` +
        `each once the DaemonSet agent of the node before is backup, the node holding VIP ${VIP} last: ` +
        order.map((node) => `rm ${MANIFEST} on ${node}`).join('; '),
    ])
    assert.equal(result.summary, 'karp is healthy; a handover from static-pod agents is in progress (see the warnings)')
    assert.deepEqual(
      result.staticAgents?.map((a) => [a.node, a.install]),
      NODES.map((n) => [n, `${NS}/karp`]),
    )
    const human = await karp(['status', '--kubeconfig', cluster.kubeconfig, '-n', NS, '--no-probe'])
    assert.equal(human.exitCode, 0, human.stderr)
    assert.match(human.stdout, /holder: a static-pod agent \(they report no role;/)
    assert.match(human.stdout, /Warnings:\n {2}- handover in progress: /)
  })
})
