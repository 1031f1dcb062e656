// Times `karp status` on one real control plane whose node count grows between steps (1,000, 5,000, 20,000 by
// default): three kwok-managed control-plane nodes run the agent, the rest are plain Node objects. For each
// step: the whole command, the part in process (gathering and judging, after Node and the client library
// have loaded), peak memory, and `kubectl get` of the same objects, with each target met or not.
//   node --import tsx bench/status/run.ts [--nodes 1000,5000,20000] [--trials N]
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'

import {AppsV1Api, CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions} from '@kubernetes/client-node'
import {execa} from 'execa'

import {selectedNodeQueries} from '../../src/lib/status/gather.js'
import {startControlPlane} from '../../test/cluster/control-plane.js'
import {controlPlaneNode, createFakeNodes, KWOK} from '../kwok-nodes.js'
import {formatSummary, type Summary, summarize} from '../stats.js'
import {AGENT_REPORTING_COMPONENT, KARP_SELECTOR, ROLE_CONDITION} from '../../src/lib/constants.js'

const {values} = parseArgs({options: {nodes: {type: 'string', default: '1000,5000,20000'}, trials: {type: 'string', default: '5'}}})
const steps = values.nodes.split(',').map(Number)
const trials = Number(values.trials)
if (steps.some((n, i) => !Number.isInteger(n) || n < 4 || (i > 0 && n <= (steps[i - 1] as number))) || !(trials >= 1)) {
  throw new Error('--nodes: growing node counts of at least 4, e.g. 1000,5000,20000; --trials: at least 1')
}
const RUN = fileURLToPath(new URL('../../bin/run.js', import.meta.url))
const IN_PROCESS = fileURLToPath(new URL('lib/in-process.ts', import.meta.url))
const TARGET_MS = 500
const TARGET_AT = 5000

interface Run {
  ms: number
  /** The process's peak resident memory. */
  maxRssMiB: number
  stdout: string
}

/** One run of a program under /usr/bin/time: its wall time and peak memory. Exit codes other than okCodes throw. */
async function measured(work: string, file: string, args: string[], okCodes = [0]): Promise<Run> {
  const rssFile = join(work, 'maxrss')
  const start = performance.now()
  const result = await execa('/usr/bin/time', ['-f', '%M', '-o', rssFile, file, ...args], {reject: false, stdin: 'ignore'})
  const ms = performance.now() - start
  if (!okCodes.includes(result.exitCode ?? -1)) throw new Error(`${file} ${args.join(' ')} failed (${result.exitCode}):\n${result.stderr}`)
  return {ms, maxRssMiB: Number((await readFile(rssFile, 'utf8')).trim().split('\n').at(-1)) / 1024, stdout: result.stdout}
}

const cp = await startControlPlane({kwok: KWOK})
const work = await mkdtemp(join(tmpdir(), 'karp-bench-status-'))
try {
  const kc = new KubeConfig()
  kc.loadFromFile(cp.adminKubeconfig)
  const kubeconfig = ['--kubeconfig', cp.adminKubeconfig]
  const kubectl = join(cp.binDir, 'kubectl')
  const masters = [1, 2, 3].map((i) => controlPlaneNode(`cp${i}`, `10.91.0.1${i}`))
  await createFakeNodes(kc, masters)
  const install = await execa(process.execPath, [RUN, 'install', ...kubeconfig, '--vip', '10.91.0.250', '--yes', '--timeout', '120s'], {
    reject: false,
  })
  if (install.exitCode !== 0) throw new Error(`karp install failed: ${install.stderr}`)
  const core = kc.makeApiClient(CoreV1Api)
  const pods = await core.listNamespacedPod({namespace: 'karp-system'})
  // The role condition, as the agents report it (agent/lib.sh), so karp status sees one holder.
  for (const [i, pod] of pods.items.entries()) {
    const condition = {type: ROLE_CONDITION, status: 'True', reason: i === 0 ? 'Master' : 'Backup', lastTransitionTime: new Date()}
    await core.patchNamespacedPodStatus(
      {name: pod.metadata?.name as string, namespace: 'karp-system', body: {status: {conditions: [condition]}}},
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    )
  }
  // kubectl reading what karp status reads, in as few commands as kubectl can: the DaemonSets and pods in one
  // (one label selector), the agent Events, and the nodes of each label selector karp lists them by.
  const daemonSets = (await kc.makeApiClient(AppsV1Api).listDaemonSetForAllNamespaces({labelSelector: KARP_SELECTOR})).items
  const nodeSelectors = selectedNodeQueries(daemonSets).map((q) => ('labelSelector' in q ? q.labelSelector : ''))
  const kubectlGets = [
    ['get', 'daemonsets,pods', '-A', '-l', KARP_SELECTOR, '-o', 'json'],
    ['get', 'events', '-A', '--field-selector', `reportingComponent=${AGENT_REPORTING_COMPONENT}`, '-o', 'json'],
    ...nodeSelectors.map((selector) => ['get', 'nodes', ...(selector ? ['-l', selector] : []), '-o', 'json']),
  ]
  console.log(
    `control plane up in ${cp.startupSeconds} s; karp lists nodes by ${nodeSelectors.length} label selector(s): ${nodeSelectors.join(' | ')}`,
  )
  console.log(
    `${trials} trials per step; kubectl: ${kubectlGets.length} commands one after another (${kubectlGets.map((a) => a.slice(0, 2).join(' ')).join('; ')})`,
  )

  let workers = 0
  const rows: Array<{nodes: number; karp: Summary; inProcess: Summary; kubectl: Summary}> = []
  for (const total of steps) {
    // Grow the cluster: plain worker nodes, created by four kubectl processes at once.
    const wanted = total - masters.length
    const fresh = Array.from({length: wanted - workers}, (_, k) => workers + k).map((i) => ({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name: `worker-${String(i).padStart(5, '0')}`,
        labels: {'node-role.kubernetes.io/worker': 'true', 'topology.kubernetes.io/zone': `z${i % 3}`},
      },
      status: {addresses: [{type: 'InternalIP', address: `10.${92 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${i % 256}`}]},
    }))
    const started = Date.now()
    const chunk = Math.ceil(fresh.length / 4)
    await Promise.all(
      [0, 1, 2, 3].map(async (c) => {
        const items = fresh.slice(c * chunk, (c + 1) * chunk)
        if (items.length === 0) return
        const file = join(work, `nodes-${c}.json`)
        await writeFile(file, JSON.stringify({apiVersion: 'v1', kind: 'List', items}))
        await execa(kubectl, [...kubeconfig, 'create', '-f', file], {stdout: 'ignore'})
      }),
    )
    workers = wanted
    console.log(`\n${total} nodes (${fresh.length} created in ${((Date.now() - started) / 1000).toFixed(1)} s)`)

    const karp: Run[] = []
    const inProcess: Array<{ms: number; grewMiB: number}> = []
    const kubectlRuns: Run[] = []
    for (let t = 0; t < trials; t++) {
      const run = await measured(work, process.execPath, [RUN, 'status', ...kubeconfig, '--no-probe', '--json'])
      const verdict = (JSON.parse(run.stdout) as {verdict: string}).verdict
      if (verdict !== 'healthy') throw new Error(`karp status: unexpected verdict ${verdict}: ${run.stdout}`)
      karp.push(run)
      const part = JSON.parse((await execa(process.execPath, ['--import', 'tsx', IN_PROCESS, cp.adminKubeconfig])).stdout) as {
        ms: number
        verdict: string
        grewMiB: number
      }
      if (part.verdict !== 'healthy') throw new Error(`in process: unexpected verdict ${part.verdict}`)
      inProcess.push(part)
      // kubectl's commands one after another, as a person would run them; karp makes its lists at once.
      const gets: Run[] = []
      for (const args of kubectlGets) gets.push(await measured(work, kubectl, [...kubeconfig, ...args]))
      kubectlRuns.push({ms: gets.reduce((sum, g) => sum + g.ms, 0), maxRssMiB: Math.max(...gets.map((g) => g.maxRssMiB)), stdout: ''})
    }
    const s = {
      karp: summarize(karp.map((r) => r.ms)),
      karpRss: summarize(karp.map((r) => r.maxRssMiB)),
      inProcess: summarize(inProcess.map((r) => r.ms)),
      grew: summarize(inProcess.map((r) => r.grewMiB)),
      kubectl: summarize(kubectlRuns.map((r) => r.ms)),
      kubectlRss: summarize(kubectlRuns.map((r) => r.maxRssMiB)),
    }
    const ratio = s.karp.median / s.kubectl.median
    const target = total === TARGET_AT ? `   target <= ${TARGET_MS} ms: ${s.karp.median <= TARGET_MS ? 'met' : 'not met'}` : ''
    console.log(`  karp status --no-probe (whole command)     ${formatSummary(s.karp)}${target}`)
    console.log(`    in process (gathering and judging)       ${formatSummary(s.inProcess)}`)
    console.log(
      `    peak memory (maxRSS)                     ${formatSummary(s.karpRss, 'MiB')}; gathering raised it by ${formatSummary(s.grew, 'MiB', 1)}`,
    )
    console.log(
      `  kubectl get of the same objects            ${formatSummary(s.kubectl)}; peak memory ${formatSummary(s.kubectlRss, 'MiB')}`,
    )
    console.log(`  ratio karp/kubectl: ${ratio.toFixed(2)}   target <= 1 (never slower than kubectl): ${ratio <= 1 ? 'met' : 'not met'}`)
    rows.push({nodes: total, karp: s.karp, inProcess: s.inProcess, kubectl: s.kubectl})
  }
  if (rows.length > 1) {
    const [first, last] = [rows[0], rows.at(-1)] as [(typeof rows)[number], (typeof rows)[number]]
    const growth = last.inProcess.median / first.inProcess.median
    const nodes = last.nodes / first.nodes
    console.log(
      `\nin process from ${first.nodes} to ${last.nodes} nodes (${nodes.toFixed(0)}x): ${growth.toFixed(2)}x the time   target linear or better (<= ${nodes.toFixed(0)}x): ${growth <= nodes ? 'met' : 'not met'}`,
    )
  }
} finally {
  await cp.stop()
  await rm(work, {recursive: true, force: true})
}
