// How long karp takes before it does anything: wall time of `karp --help` and `karp render` (no cluster),
// and for the commands that talk to the API, the time from starting the process to its first connection to
// the API server (a TCP listener on loopback that the kubeconfig points at; it accepts and answers nothing,
// and the command is killed then, while it waits for the TLS handshake, so it can send nothing anywhere
// else). `node -e 0` is the floor every figure includes. kubectl (the pinned one lab/k8s/build.sh builds) is
// timed the same way, a Go binary's start being the goal, and each karp figure gets its ratio to kubectl's.
//   node --import tsx bench/startup/run.ts [--trials N]
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {createServer, type Server} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'

import {execa} from 'execa'

import {resolveBinDir} from '../../lab/binaries.js'
import {formatSummary, summarize} from '../stats.js'
import {timed} from '../timed.js'

const {values} = parseArgs({options: {trials: {type: 'string', default: '10'}}})
const trials = Number(values.trials)
if (!Number.isInteger(trials) || trials < 1) throw new Error(`--trials ${values.trials}: give a whole number of 1 or more`)
const RUN = fileURLToPath(new URL('../../bin/run.js', import.meta.url))

/** Wall time of one run of node with these arguments, which must exit 0. */
const wall = (args: string[]) => timed(process.execPath, args)

/** A loopback listener that records when the next connection arrives; the connection stays silent. */
async function listener(): Promise<{server: Server; port: number; next: () => Promise<number>}> {
  let waiting: ((at: number) => void) | undefined
  const server = createServer((socket) => {
    waiting?.(performance.now())
    waiting = undefined
    socket.on('error', () => {})
    setTimeout(() => socket.destroy(), 1000)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('the listener has no port')
  return {server, port: address.port, next: () => new Promise((resolve) => (waiting = resolve))}
}

const kubectl = join(await resolveBinDir(), 'kubectl')
const work = await mkdtemp(join(tmpdir(), 'karp-bench-startup-'))
const api = await listener()
try {
  const kubeconfig = join(work, 'kubeconfig')
  await writeFile(
    kubeconfig,
    `apiVersion: v1
kind: Config
clusters: [{name: bench, cluster: {server: "https://127.0.0.1:${api.port}", insecure-skip-tls-verify: true}}]
users: [{name: bench, user: {token: bench}}]
contexts: [{name: bench, context: {cluster: bench, user: bench}}]
current-context: bench
`,
    {mode: 0o600},
  )
  /** Milliseconds from spawning the program to its first connection to the API server. */
  const firstConnection = async (file: string, args: string[]): Promise<number> => {
    const connected = api.next()
    const start = performance.now()
    const run = execa(file, args, {reject: false, stdin: 'ignore'})
    const at = await Promise.race([
      connected,
      run.then((r) => Promise.reject(new Error(`${file} ${args.join(' ')} exited ${r.exitCode} before connecting:\n${r.stderr}`))),
    ])
    run.kill('SIGKILL')
    await run
    return at - start
  }
  const firstRequest = (args: string[]) =>
    firstConnection(process.execPath, [RUN, ...args, '--kubeconfig', kubeconfig, '--request-timeout', '5s'])

  // [what, target (ms), kubectl's row it is compared with, measure]
  const rows: Array<[what: string, target: number | undefined, kubectlRow: string | undefined, measure: () => Promise<number>]> = [
    ['node -e 0 (the floor)', undefined, undefined, () => wall(['-e', '0'])],
    [
      'import @kubernetes/client-node',
      undefined,
      undefined,
      () => wall(['--input-type=module', '-e', "await import('@kubernetes/client-node')"]),
    ],
    ['kubectl --help', undefined, undefined, () => timed(kubectl, ['--help'])],
    [
      'kubectl get nodes: to its first request',
      undefined,
      undefined,
      () => firstConnection(kubectl, ['get', 'nodes', '--kubeconfig', kubeconfig, '--request-timeout', '5s']),
    ],
    ['karp --help', 150, 'kubectl --help', () => wall([RUN, '--help'])],
    ['karp render', 150, 'kubectl --help', () => wall([RUN, 'render', '--vip', '10.99.0.10', '--password', 'bench'])],
    ['karp status: to its first request', 100, 'kubectl get nodes: to its first request', () => firstRequest(['status', '--no-probe'])],
    [
      'karp check-cert: to its first request',
      100,
      'kubectl get nodes: to its first request',
      () => firstRequest(['check-cert', '--vip', '10.99.0.10']),
    ],
    [
      'karp install: to its first request',
      100,
      'kubectl get nodes: to its first request',
      () => firstRequest(['install', '--vip', '10.99.0.10', '--password', 'bench', '--yes']),
    ],
  ]
  console.log(`${trials} trials each, Node ${process.version}; targets are wall time from the process's start`)
  const medians = new Map<string, number>()
  for (const [what, target, kubectlRow, measure] of rows) {
    await measure() // one run to warm the disk cache and Node's compile cache, not counted
    const samples: number[] = []
    for (let i = 0; i < trials; i++) samples.push(await measure())
    const s = summarize(samples)
    medians.set(what, s.median)
    const verdict = target === undefined ? '' : `  target <= ${target} ms: ${s.median <= target ? 'met' : 'not met'}`
    const base = kubectlRow === undefined ? undefined : medians.get(kubectlRow)
    const ratio = base === undefined ? '' : `  ${(s.median / base).toFixed(1)}x kubectl`
    console.log(`${what.padEnd(40)} ${formatSummary(s)}${verdict}${ratio}`)
  }
} finally {
  api.server.close()
  await rm(work, {recursive: true, force: true})
}
