// A new cluster whose API endpoint is the VIP from its first second (README, "New cluster"), on real kubelets
// (lab/cluster.ts, ClusterOptions.bootstrap): `karp bootstrap` writes each node's static pod and password
// file before its kubelet starts; node1's control plane comes up behind the VIP its static agent holds,
// nodes 2 and 3 join through the VIP; node1 dies and the cluster stays reachable through the VIP; then
// `karp install` hands the VIP over to the DaemonSet while the static pods are removed one by one. Every
// kubectl and karp command against the cluster runs in the client namespace, whose kubeconfig names only
// the VIP. Client outages are printed (a prober GETs /readyz through the VIP every 50 ms); what is asserted
// is who holds the VIP, sampled every 100 ms, and that requests work.
import assert from 'node:assert/strict'
import {chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, statSync, unlinkSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {after, before, describe} from 'node:test'
import {Cluster, clusterSkipReason, VIP} from '../../lab/cluster.js'
import {labSteps} from '../helpers/lab.js'
import {watchHolders} from '../../lab/holders.js'
import {agentImage} from '../../lab/image.js'
import {longestOutage, outages, type Probe} from '../../lab/outage.js'
import {sleep, waitFor} from '../../lab/process.js'
import {ELIGIBLE_CONDITION, ROLE_CONDITION, STATIC_POD_LABEL, STATIC_POD_NAMESPACE} from '../../src/lib/constants.js'

const skip = await clusterSkipReason()
const NAMESPACE = 'karp-system'
const VHID = '77'
const log = (line: string) => console.error(`# bootstrap: ${line}`)

interface Pod {
  metadata: {name: string}
  spec: {nodeName?: string}
  status: {conditions?: {type: string; status: string; reason?: string}[]; containerStatuses?: {ready: boolean}[]}
}

function describeOutage(probes: Probe[]): string {
  const all = outages(probes)
  return `longest client outage ${(longestOutage(probes) / 1000).toFixed(2)} s (${all.reduce((n, o) => n + o.failed, 0)} of ${probes.length} requests failed)`
}

const condition = (pod: Pod, type: string) => pod.status.conditions?.find((c) => c.type === type)

describe('a cluster bootstrapped on the VIP with static pods, then handed over to the DaemonSet', {skip}, () => {
  let cluster: Cluster
  let imageRef = ''
  /** Each node's password file and manifest, as karp bootstrap wrote them there. */
  const files = new Map<string, {password: string; manifest: string}>()
  const step = labSteps(() => cluster, log)

  const podsIn = async (namespace: string, selector?: string): Promise<Pod[]> => {
    const r = await cluster.kubectl(['get', 'pods', '-n', namespace, ...(selector ? ['-l', selector] : []), '-o', 'json'])
    assert.equal(r.exitCode, 0, r.stderr)
    return (JSON.parse(r.stdout) as {items: Pod[]}).items
  }

  /** `karp bootstrap` on the node, as its root user runs it before the node's kubelet starts. */
  const bootstrapNode = async (c: Cluster, name: string, manifestDir: string): Promise<void> => {
    const password = join(c.dir, name, 'etc-karp', 'password')
    const first = files.size === 0
    if (!first) {
      // The user copies the first node's password file to every other node first (README, "New cluster").
      const [from] = [...files.values()]
      mkdirSync(dirname(password), {recursive: true, mode: 0o700})
      copyFileSync(from!.password, password)
      chmodSync(password, 0o600)
    }
    const args = ['bootstrap', '--vip', VIP, '--vhid', VHID, '--distribution', 'kubeadm', '--image', imageRef]
    args.push('--password-file', password, '--ca-file', c.controlPlane.caFile, '--manifest-dir', manifestDir, '--json')
    const r = await c.karpOnNode(name, args)
    assert.equal(r.exitCode, 0, `karp bootstrap on ${name}: ${r.stderr}${r.stdout}`)
    const result = JSON.parse(r.stdout) as {manifestFile: string; passwordFile: string; passwordCreated: boolean}
    assert.equal(result.passwordCreated, first, first ? 'the first node gets a new password' : 'the copied password is used')
    assert.equal(statSync(password).mode & 0o777, 0o600)
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(readFileSync(password, 'utf8').trim()), 'the password is never printed')
    assert.ok(existsSync(result.manifestFile))
    files.set(name, {password, manifest: result.manifestFile})
  }

  before(async () => {
    const image = await agentImage()
    imageRef = `${image.name}:${image.tag}@${image.indexDigest}`
    cluster = await Cluster.start({log, bootstrap: {staticPods: (c, node) => bootstrapNode(c, node.name, node.kube.manifestsDir)}})
  })

  after(async () => {
    await cluster?.stop()
  })

  step('1. the VIP comes first: node1 holds it before any API server runs, and every node registers through it', async () => {
    const masterLine = cluster
      .podLogsSince(0)
      .split('\n')
      .find((l) => /karp-node1/.test(l) && /role=master/.test(l))
    assert.ok(masterLine, "node1's static agent logged that it took the VIP")
    // The agent's own time of the election (whole seconds, rounded down) against the lab's of node1's etcd start.
    const elected = Date.parse(/(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) karp node=node1 role=master/.exec(masterLine)?.[1] ?? '')
    assert.ok(
      elected <= cluster.controlPlaneStartedAt!,
      `elected at ${elected}, control plane started at ${cluster.controlPlaneStartedAt}: ${masterLine}`,
    )
    // The client's kubeconfig names the VIP only: these answers come through it.
    const nodes = await cluster.kubectl(['get', 'nodes', '-o', 'name'])
    assert.equal(nodes.exitCode, 0, nodes.stderr)
    assert.deepEqual(nodes.stdout.trim().split('\n'), ['node/node1', 'node/node2', 'node/node3'])
    assert.deepEqual(await cluster.holders(), ['node1'])
  })

  step('2. karp status shows the three static-pod agents', async () => {
    let last = ''
    await waitFor(
      'karp status listing a ready static-pod agent on every node',
      120_000,
      async () => {
        const r = await cluster.karp(['status', '--json'])
        last = `exit ${r.exitCode}: ${r.stdout}${r.stderr}`
        const result = JSON.parse(r.stdout || '{}') as {staticAgents?: {node: string; ready: boolean; manifest?: string}[]}
        const agents = result.staticAgents ?? []
        return r.exitCode === 0 && agents.length === 3 && agents.every((a) => a.ready && a.manifest === files.get(a.node)?.manifest)
      },
      () => last,
      2000,
    )
    const human = await cluster.karp(['status'])
    log(`karp status:\n${human.stdout}${human.stderr}`)
    for (const node of ['node1', 'node2', 'node3']) assert.match(human.stdout, new RegExp(node))
  })

  step('3. node1 dies: a static agent elsewhere takes the VIP, and the cluster answers through it', async () => {
    const probe = cluster.startProbe()
    const watch = watchHolders(() => cluster.holders())
    await sleep(1000)
    await cluster.powerOff('node1')
    await waitFor('another node holding the VIP', 30_000, async () => (await cluster.holders()).length === 1)
    let last = ''
    await waitFor(
      'kubectl through the VIP after node1 died',
      30_000,
      async () => {
        const r = await cluster.kubectl(['get', 'nodes', '-o', 'name', '--request-timeout=2s'])
        last = r.stderr || r.stdout
        return r.exitCode === 0
      },
      () => last,
    )
    await sleep(2000)
    const seen = await watch.stop()
    const probes = await probe.stop()
    const holders = await cluster.holders()
    assert.equal(holders.length, 1)
    assert.notEqual(holders[0], 'node1')
    log(`node1 lost: VIP now on ${holders[0]}; ${describeOutage(probes)}; two holders at once for ${seen.doubleMs} ms`)
    assert.ok(probes.at(-1)?.ok, 'requests through the VIP work again')
    // node1 comes back (its etcd member, control plane, kubelet and static agent), as after a repair.
    await cluster.powerOn('node1')
    await cluster.node('node1').kube.waitReady(90_000)
  })

  step('4. karp install takes over: the DaemonSet agents wait behind the static ones, then the static pods go one by one', async () => {
    const probe = cluster.startProbe()
    const watch = watchHolders(() => cluster.holders())
    // The user copies a node's password file to the client: install must use the static agents' password.
    const password = join(cluster.dir, 'client-home', 'karp-password')
    copyFileSync(files.get('node2')!.password, password)
    chmodSync(password, 0o600)
    const install = ['install', '--vip', VIP, '--image', imageRef, '--password-file', password, '--yes']
    const human = await cluster.karp(install)
    log(`karp install, as a user reads it:\n${human.stdout}\n${human.stderr}`)
    assert.equal(human.exitCode, 0, `karp install: ${human.stdout}${human.stderr}`)
    for (const [node, f] of files)
      assert.ok(human.stdout.includes(`on ${node}: rm ${f.manifest}`), `install says to remove ${f.manifest} on ${node}`)
    assert.doesNotMatch(human.stdout, /kubeconfig rewrite/, 'a cluster bootstrapped on the VIP needs no kubeconfig rewrite')
    // Again, for a script: unchanged, and the same handover as data.
    const r = await cluster.karp([...install, '--json'])
    assert.equal(r.exitCode, 0, `karp install --json: ${r.stdout}${r.stderr}`)
    const result = JSON.parse(r.stdout) as {vhid: number; staticAgents?: {node: string; manifest: string}[]}
    assert.equal(String(result.vhid), VHID, 'the vhid comes from the static agents')
    assert.deepEqual(
      (result.staticAgents ?? []).map((a) => [a.node, a.manifest]).sort(),
      [...files.entries()].map(([node, f]) => [node, f.manifest]).sort(),
      'install names every static pod manifest to remove',
    )

    // Each DaemonSet agent shares its node with a static one of the same vhid: it waits, out of CARP.
    const agents = async () => podsIn(NAMESPACE)
    await waitFor('every DaemonSet agent ready and reporting itself not eligible', 60_000, async () => {
      const pods = await agents()
      return (
        pods.length === 3 &&
        pods.every((p) => p.status.containerStatuses?.[0]?.ready && condition(p, ELIGIBLE_CONDITION)?.status === 'False')
      )
    })
    const [holder] = await cluster.holders()
    assert.ok(holder, 'a static agent holds the VIP')
    const order = [...files.keys()].filter((n) => n !== holder).concat(holder)
    for (const node of order) {
      unlinkSync(files.get(node)!.manifest)
      await waitFor(
        `the DaemonSet agent on ${node} running CARP once its static pod is gone`,
        90_000,
        async () => {
          const pod = (await agents()).find((p) => p.spec.nodeName === node)
          const static_ = await podsIn(STATIC_POD_NAMESPACE, `${STATIC_POD_LABEL}=true`)
          return (
            pod !== undefined &&
            condition(pod, ELIGIBLE_CONDITION)?.status === 'True' &&
            condition(pod, ROLE_CONDITION) !== undefined &&
            !static_.some((p) => p.spec.nodeName === node)
          )
        },
        undefined,
        1000,
      )
      log(`static pod of ${node} removed; its DaemonSet agent runs CARP; holders: ${(await cluster.holders()).join(', ')}`)
    }
    let status = ''
    await waitFor(
      'karp status: healthy, one holder, no static agent',
      60_000,
      async () => {
        const s = await cluster.karp(['status', '--json'])
        status = `exit ${s.exitCode}: ${s.stdout}`
        const parsed = JSON.parse(s.stdout || '{}') as {installs?: {holder: string}[]; staticAgents?: unknown[]}
        return s.exitCode === 0 && parsed.installs?.[0]?.holder === 'one' && (parsed.staticAgents ?? []).length === 0
      },
      () => status,
      2000,
    )
    await sleep(2000)
    const seen = await watch.stop()
    const probes = await probe.stop()
    log(`handover: ${describeOutage(probes)}; VIP moves ${seen.moves}; two holders at once for ${seen.doubleMs} ms`)
    assert.equal(seen.zeroAfterFirst, 0, 'some node held the VIP at every sample (every 100 ms) of the handover')
    assert.ok(probes.at(-1)?.ok, 'requests through the VIP work at the end')
  })
})
