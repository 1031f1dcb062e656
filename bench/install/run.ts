// Times `karp install` against `kubectl apply --server-side` of the same rendered objects on the same real
// control plane (both fresh and repeated), and counts the HTTP requests each makes: one more install and
// apply of each, untimed, through a loopback proxy that forwards and counts every request
// (test/helpers/api-proxy.ts). Prints figures, ratios and round trips with their targets.
//   node --import tsx bench/install/run.ts [--trials N]
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'

import {execa} from 'execa'

import {startControlPlane} from '../../test/cluster/control-plane.js'
import {controlPlaneNode, createNodes} from '../../test/cluster/plain-nodes.js'
import {startApiProxy} from '../../test/helpers/api-proxy.js'
import {formatSummary, summarize} from '../stats.js'
import {timed} from '../timed.js'

const {values} = parseArgs({options: {trials: {type: 'string', default: '5'}}})
const trials = Number(values.trials)
if (!Number.isInteger(trials) || trials < 1) throw new Error(`--trials ${values.trials}: give a whole number of 1 or more`)
const RUN = fileURLToPath(new URL('../../bin/run.js', import.meta.url))

const cp = await startControlPlane()
const work = await mkdtemp(join(tmpdir(), 'karp-bench-install-'))
const proxy = await startApiProxy(cp.adminKubeconfig)
try {
  console.log(`control plane up in ${cp.startupSeconds} s; ${trials} trials each`)
  // --no-wait: install only needs control-plane nodes to select; nothing has to run on them.
  await createNodes(
    cp.adminKubeconfig,
    [1, 2, 3].map((i) => controlPlaneNode(`bench-cp${i}`, `10.90.0.1${i}`)),
  )
  const kubectl = join(cp.binDir, 'kubectl')

  /** The karp and kubectl commands of install number i, into namespaces of their own, through kubeconfig. */
  async function commands(i: number, kubeconfig: string): Promise<{karp: string[]; kubectl: string[]}> {
    // Distinct vhids and VIPs: every install, whoever applied it, is a karp install to the preflight checks.
    const karpArgs = ['-n', `bench-karp-${i}`, '--vip', `10.90.0.${100 + i}`, '--vhid', String(100 + i), '--password', 'bench']
    const kubectlFlags = ['-n', `bench-kubectl-${i}`, '--vip', `10.90.0.${200 + i}`, '--vhid', String(200 + i), '--password', 'bench']
    // The Namespace object too, as karp install creates the namespace (render prints it only for karp-system).
    const rendered = await execa(process.execPath, [RUN, 'render', ...kubectlFlags, '--create-namespace'])
    const file = join(work, `kubectl-${i}.yaml`)
    await writeFile(file, rendered.stdout)
    return {
      karp: [RUN, 'install', '--kubeconfig', kubeconfig, ...karpArgs, '--yes', '--no-wait'],
      kubectl: ['--kubeconfig', kubeconfig, 'apply', '--server-side', '--field-manager', 'karp', '--force-conflicts', '-f', file],
    }
  }

  const results: Record<string, number[]> = {karpFresh: [], kubectlFresh: [], karpAgain: [], kubectlAgain: []}
  for (let i = 0; i < trials; i++) {
    const run = await commands(i, cp.adminKubeconfig)
    results.karpFresh?.push(await timed(process.execPath, run.karp))
    results.kubectlFresh?.push(await timed(kubectl, run.kubectl))
    results.karpAgain?.push(await timed(process.execPath, run.karp))
    results.kubectlAgain?.push(await timed(kubectl, run.kubectl))
  }

  // Round trips, counted once each (they do not vary between runs). kubectl keeps its discovery on disk per
  // server address; one read through the proxy fills it first, as the timed runs after the first had it.
  const requests = async (file: string, args: string[]) => {
    const before = proxy.seen.length
    await timed(file, args)
    return proxy.seen.length - before
  }
  await timed(kubectl, ['--kubeconfig', proxy.kubeconfig, 'get', 'namespaces'])
  const counted = await commands(trials, proxy.kubeconfig)
  const trips = {
    karpFresh: await requests(process.execPath, counted.karp),
    kubectlFresh: await requests(kubectl, counted.kubectl),
    karpAgain: await requests(process.execPath, counted.karp),
    kubectlAgain: await requests(kubectl, counted.kubectl),
  }

  const s = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, summarize(v)]))
  const ratio = (a: string, b: string) => (s[a]?.median ?? NaN) / (s[b]?.median ?? NaN)
  const line = (what: string, key: keyof typeof trips) =>
    console.log(`${what.padEnd(38)} ${formatSummary(s[key] as ReturnType<typeof summarize>)}  ${trips[key]} HTTP requests`)
  const verdict = (a: string, b: string, target: number) =>
    console.log(`  ratio karp/kubectl: ${ratio(a, b).toFixed(2)}  target <= ${target}x: ${ratio(a, b) <= target ? 'met' : 'not met'}`)
  line('karp install (fresh, --no-wait)', 'karpFresh')
  line('kubectl apply --server-side (fresh)', 'kubectlFresh')
  verdict('karpFresh', 'kubectlFresh', 1.5)
  line('karp install (again, unchanged)', 'karpAgain')
  line('kubectl apply --server-side (again)', 'kubectlAgain')
  verdict('karpAgain', 'kubectlAgain', 1.2)
} finally {
  await proxy.close()
  await cp.stop()
  await rm(work, {recursive: true, force: true})
}
