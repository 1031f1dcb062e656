// Times `karp install` against `kubectl apply --server-side` of the same rendered objects on the same real
// control plane (both fresh and repeated), and `karp --help` cold start. Prints figures and ratios.
//   node --import tsx bench/install/run.ts [--trials N]
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'

import {execa} from 'execa'

import {startControlPlane} from '../../test/cluster/control-plane.js'
import {controlPlaneNode, createNodes} from '../../test/cluster/plain-nodes.js'
import {formatSummary, summarize} from '../stats.js'
import {timed} from '../timed.js'

const {values} = parseArgs({options: {trials: {type: 'string', default: '5'}}})
const trials = Number(values.trials)
const RUN = fileURLToPath(new URL('../../bin/run.js', import.meta.url))

const cp = await startControlPlane()
const work = await mkdtemp(join(tmpdir(), 'karp-bench-install-'))
try {
  console.log(`control plane up in ${cp.startupSeconds} s; ${trials} trials each`)
  // --no-wait: install only needs control-plane nodes to select; nothing has to run on them.
  await createNodes(cp.adminKubeconfig, [1, 2, 3].map((i) => controlPlaneNode(`bench-cp${i}`, `10.90.0.1${i}`)))
  const kubectl = join(cp.binDir, 'kubectl')
  const results: Record<string, number[]> = {karpFresh: [], kubectlFresh: [], karpAgain: [], kubectlAgain: [], help: []}
  for (let i = 0; i < trials; i++) {
    // Distinct vhids and VIPs: every install, whoever applied it, is a karp install to the preflight checks.
    const karpArgs = ['--kubeconfig', cp.adminKubeconfig, '-n', `bench-karp-${i}`, '--vip', `10.90.0.${100 + i}`, '--vhid', String(100 + i), '--password', 'bench']
    const kubectlFlags = ['-n', `bench-kubectl-${i}`, '--vip', `10.90.0.${200 + i}`, '--vhid', String(200 + i), '--password', 'bench']
    // The Namespace object too, as karp install creates the namespace (render prints it only for karp-system).
    const rendered = await execa(process.execPath, [RUN, 'render', ...kubectlFlags, '--create-namespace'])
    const file = join(work, `kubectl-${i}.yaml`)
    await writeFile(file, rendered.stdout)
    const kubectlArgs = ['--kubeconfig', cp.adminKubeconfig, 'apply', '--server-side', '--field-manager', 'karp', '--force-conflicts', '-f', file]
    const installArgs = [RUN, 'install', ...karpArgs, '--yes', '--no-wait']
    results.karpFresh?.push(await timed(process.execPath, installArgs))
    results.kubectlFresh?.push(await timed(kubectl, kubectlArgs))
    results.karpAgain?.push(await timed(process.execPath, installArgs))
    results.kubectlAgain?.push(await timed(kubectl, kubectlArgs))
  }
  for (let i = 0; i < Math.max(trials, 10); i++) results.help?.push(await timed(process.execPath, [RUN, '--help']))

  const s = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, summarize(v)]))
  const ratio = (a: string, b: string) => ((s[a]?.median ?? NaN) / (s[b]?.median ?? NaN)).toFixed(2)
  console.log(`karp install (fresh, --no-wait)        ${formatSummary(s.karpFresh!)}`)
  console.log(`kubectl apply --server-side (fresh)    ${formatSummary(s.kubectlFresh!)}`)
  console.log(`  ratio karp/kubectl: ${ratio('karpFresh', 'kubectlFresh')}`)
  console.log(`karp install (again, unchanged)        ${formatSummary(s.karpAgain!)}`)
  console.log(`kubectl apply --server-side (again)    ${formatSummary(s.kubectlAgain!)}`)
  console.log(`  ratio karp/kubectl: ${ratio('karpAgain', 'kubectlAgain')}`)
  console.log(`karp --help cold start                 ${formatSummary(s.help!)}`)
} finally {
  await cp.stop()
  await rm(work, {recursive: true, force: true})
}
