// Times `karp status` on a cluster of 5,000 nodes (a few control-plane nodes run the agent, kwok-managed; the
// rest are plain Node objects) against `kubectl get` of the same objects, on the same real control plane.
//   node --import tsx bench/status/run.ts [--nodes N] [--trials N]
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'

import {CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions} from '@kubernetes/client-node'
import {execa} from 'execa'

import {Kube} from '../../src/lib/kube/client.js'
import {gatherStatus} from '../../src/lib/status/status.js'
import {startControlPlane} from '../../test/cluster/control-plane.js'
import {controlPlaneNode, createFakeNodes, KWOK} from '../kwok-nodes.js'
import {formatSummary, summarize} from '../stats.js'

const {values} = parseArgs({options: {nodes: {type: 'string', default: '5000'}, trials: {type: 'string', default: '5'}}})
const total = Number(values.nodes)
const trials = Number(values.trials)
const RUN = fileURLToPath(new URL('../../bin/run.js', import.meta.url))

async function timed(file: string, args: string[], okCodes = [0]): Promise<number> {
  const start = process.hrtime.bigint()
  const result = await execa(file, args, {reject: false, stdin: 'ignore'})
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  if (!okCodes.includes(result.exitCode ?? -1)) throw new Error(`${file} ${args.join(' ')} failed (${result.exitCode}):\n${result.stderr}`)
  return ms
}

const cp = await startControlPlane({kwok: KWOK})
const work = await mkdtemp(join(tmpdir(), 'karp-bench-status-'))
try {
  const kc = new KubeConfig()
  kc.loadFromFile(cp.adminKubeconfig)
  const masters = [1, 2, 3].map((i) => controlPlaneNode(`cp${i}`, `10.91.0.1${i}`))
  await createFakeNodes(kc, masters)
  const others = Array.from({length: total - masters.length}, (_, i) => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {name: `worker-${String(i).padStart(5, '0')}`, labels: {'node-role.kubernetes.io/worker': 'true', 'topology.kubernetes.io/zone': `z${i % 3}`}},
    status: {addresses: [{type: 'InternalIP', address: `10.${92 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${i % 256}`}]},
  }))
  const file = join(work, 'nodes.json')
  await writeFile(file, JSON.stringify({apiVersion: 'v1', kind: 'List', items: others}))
  const kubectl = join(cp.binDir, 'kubectl')
  const started = Date.now()
  await execa(kubectl, ['--kubeconfig', cp.adminKubeconfig, 'create', '-f', file], {stdout: 'ignore'})
  console.log(`control plane up in ${cp.startupSeconds} s; ${total} nodes created in ${((Date.now() - started) / 1000).toFixed(1)} s; ${trials} trials each`)

  const install = await execa(process.execPath, [RUN, 'install', '--kubeconfig', cp.adminKubeconfig, '--vip', '10.91.0.250', '--yes', '--timeout', '120s'], {reject: false})
  if (install.exitCode !== 0) throw new Error(`karp install failed: ${install.stderr}`)
  const core = kc.makeApiClient(CoreV1Api)
  const pods = await core.listNamespacedPod({namespace: 'karp-system'})
  // The role condition, as the agents report it (agent/lib.sh), so karp status sees one holder.
  for (const [i, pod] of pods.items.entries()) {
    const condition = {type: 'karp.io/role', status: 'True', reason: i === 0 ? 'Master' : 'Backup', lastTransitionTime: new Date()}
    await core.patchNamespacedPodStatus(
      {name: pod.metadata?.name as string, namespace: 'karp-system', body: {status: {conditions: [condition]}}},
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    )
  }

  const kubectlGets = [
    ['get', 'daemonsets', '-A', '-l', 'app.kubernetes.io/name=karp', '-o', 'json'],
    ['get', 'pods', '-A', '-l', 'app.kubernetes.io/name=karp', '-o', 'json'],
    ['get', 'nodes', '-o', 'json'],
    ['get', 'events', '-A', '--field-selector', 'reportingComponent=karp.io/agent', '-o', 'json'],
  ]
  const results: Record<string, number[]> = {karp: [], library: [], kubectlAll: []}
  const kube = new Kube(kc)
  for (let i = 0; i < trials; i++) {
    results.karp?.push(await timed(process.execPath, [RUN, 'status', '--kubeconfig', cp.adminKubeconfig, '--no-probe', '--json']))
    const start = performance.now()
    const status = await gatherStatus(kube, {probe: false, timeoutMs: 1000})
    results.library?.push(performance.now() - start)
    if (status.verdict !== 'healthy') throw new Error(`unexpected verdict ${status.verdict}: ${status.installs[0]?.problems.join('; ')}`)
    // kubectl runs its four gets one after another, as a person would; karp makes its four lists at once.
    let sum = 0
    for (const args of kubectlGets) sum += await timed(kubectl, ['--kubeconfig', cp.adminKubeconfig, ...args])
    results.kubectlAll?.push(sum)
  }
  const s = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, summarize(v)]))
  console.log(`karp status --no-probe (${total} nodes, whole command)  ${formatSummary(s.karp!)}   target <= 1000 ms`)
  console.log(`  of which gathering and judging (in process)           ${formatSummary(s.library!)}`)
  console.log(`kubectl get ds,pods,nodes,events -o json (4 commands)    ${formatSummary(s.kubectlAll!)}`)
  console.log(`  ratio karp/kubectl: ${((s.karp?.median ?? NaN) / (s.kubectlAll?.median ?? NaN)).toFixed(2)}`)
} finally {
  await cp.stop()
  await rm(work, {recursive: true, force: true})
}
