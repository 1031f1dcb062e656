// How long karp takes before it does anything: wall time of `karp --help` and `karp render` (no cluster),
// and for the commands that talk to the API, the time from starting the process to its first connection to
// the API server (a TCP listener on loopback that the kubeconfig points at; it accepts and answers nothing,
// and the command is killed then, while it waits for the TLS handshake, so it can send nothing anywhere
// else). `node -e 0` is the floor every figure includes.
//   node --import tsx bench/startup/run.ts [--trials N]
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {createServer, type Server} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'

import {execa} from 'execa'

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
  /** Milliseconds from spawning the command to its first connection to the API server. */
  const firstRequest = async (args: string[]): Promise<number> => {
    const connected = api.next()
    const start = performance.now()
    const run = execa(process.execPath, [RUN, ...args, '--kubeconfig', kubeconfig, '--request-timeout', '5s'], {reject: false, stdin: 'ignore'})
    const at = await Promise.race([connected, run.then((r) => Promise.reject(new Error(`karp ${args.join(' ')} exited ${r.exitCode} before connecting:\n${r.stderr}`)))])
    run.kill('SIGKILL')
    await run
    return at - start
  }

  const rows: Array<[what: string, target: number | undefined, measure: () => Promise<number>]> = [
    ['node -e 0 (the floor)', undefined, () => wall(['-e', '0'])],
    ['import @kubernetes/client-node', undefined, () => wall(['--input-type=module', '-e', "await import('@kubernetes/client-node')"])],
    ['karp --help', 150, () => wall([RUN, '--help'])],
    ['karp render', 150, () => wall([RUN, 'render', '--vip', '10.99.0.10', '--password', 'bench'])],
    ['karp status: to its first request', 100, () => firstRequest(['status', '--no-probe'])],
    ['karp check-cert: to its first request', 100, () => firstRequest(['check-cert', '--vip', '10.99.0.10'])],
    ['karp install: to its first request', 100, () => firstRequest(['install', '--vip', '10.99.0.10', '--password', 'bench', '--yes'])],
  ]
  console.log(`${trials} trials each, Node ${process.version}; targets are wall time from the process's start`)
  for (const [what, target, measure] of rows) {
    await measure() // one run to warm the disk cache and Node's compile cache, not counted
    const samples: number[] = []
    for (let i = 0; i < trials; i++) samples.push(await measure())
    const s = summarize(samples)
    const verdict = target === undefined ? '' : `  target <= ${target} ms: ${s.median <= target ? 'met' : 'not met'}`
    console.log(`${what.padEnd(40)} ${formatSummary(s)}${verdict}`)
  }
} finally {
  api.server.close()
  await rm(work, {recursive: true, force: true})
}
