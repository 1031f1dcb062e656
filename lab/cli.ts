// npm run lab [-- COMMAND]: karp on a real HA cluster without a cluster of your own. `up` builds the lab of
// lab/cluster.ts (three control-plane nodes with etcd, kube-apiserver, controller-manager, scheduler,
// containerd, kubelet and kube-proxy, plus a client, all in network namespaces), installs karp with the CLI,
// points the client's kubeconfig at the VIP and leaves it running in a background process, which serves the
// commands of lab/commands.ts on a Unix socket. Needs root on Linux.
//   up      (default) start it and print how to use it; prints the same again when it is running
//   down    stop it and remove everything it made
//   serve   the background process itself (up starts it)
//   others  see COMMANDS in lab/commands.ts (kill-node NODE, restore-node NODE, kill-apiserver NODE, ...)
import {spawn, spawnSync} from 'node:child_process'
import {closeSync, mkdirSync, openSync, readFileSync, renameSync, rmdirSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {resolveBinDir} from './binaries.js'
import {Cluster, clusterSkipReason, VIP} from './cluster.js'
import {COMMANDS, runCommand, sendCommand, serveCommands} from './commands.js'
import {agentImage} from './image.js'
import {alive, waitFor} from './process.js'
import {DEFAULT_API_PORT} from '../src/lib/constants.js'

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const LAB_DIR = process.env.KARP_LAB_DIR ?? '/run/karp-lab'
const STATE = join(LAB_DIR, 'state.json')
const LOG = join(LAB_DIR, 'lab.log')
const SOCKET = join(LAB_DIR, 'control.sock')
const CLIENT = join(LAB_DIR, 'client')
const UP_TIMEOUT_MS = 10 * 60_000

interface LabState {
  pid: number
  prefix: string
  vip: string
  kubeconfig: string
  clientNs: string
  nodes: {name: string; ip: string}[]
  workers: {name: string; ip: string}[]
  clusterDir: string
  upSeconds: number
  memoryMb: number
}

function readState(): LabState | undefined {
  try {
    return JSON.parse(readFileSync(STATE, 'utf8')) as LabState
  } catch {
    return undefined
  }
}

function instructions(s: LabState, status: string): string {
  const width = Math.max(...Object.entries(COMMANDS).map(([name, c]) => `${name} ${c.args}`.length))
  const commands = Object.entries(COMMANDS)
    .map(([name, c]) => `  npm run lab -- ${`${name} ${c.args}`.padEnd(width)}  # ${c.does}`)
    .join('\n')
  return `karp lab ${s.prefix} is up (in ${s.upSeconds.toFixed(0)} s, ${s.memoryMb.toFixed(0)} MB): three control-plane nodes
${s.nodes.map((n) => `${n.name} (${n.ip})`).join(', ')}, each with etcd, kube-apiserver, controller-manager,
scheduler, containerd, kubelet and kube-proxy in a network namespace, and a worker
${(s.workers ?? []).map((n) => `${n.name} (${n.ip})`).join(', ')} with containerd, kubelet and kube-proxy; karp installed with the CLI.

${status}

  kubeconfig   ${s.kubeconfig}  (server https://${s.vip}:${DEFAULT_API_PORT}, rewritten by karp kubeconfig rewrite)
  client       ${CLIENT} CMD  runs CMD on the lab's client machine (namespace ${s.clientNs}) with karp,
               kubectl and that kubeconfig; without CMD, a shell there

Try:
  ${CLIENT} karp status
  ${CLIENT} kubectl get nodes
  ${CLIENT} karp check-cert
  ${CLIENT} karp status --watch          # in a second terminal, then:
${commands}
  ${CLIENT} kubectl drain NODE --ignore-daemonsets   # the agent hands the VIP over first
Logs: ${LOG}; the cluster's files: ${s.clusterDir}
Remove everything: npm run lab -- down`
}

async function up(): Promise<void> {
  const state = readState()
  if (state && alive(state.pid)) {
    console.log(instructions(state, await sendCommand(SOCKET, 'status', [])))
    return
  }
  if (state) down(true)
  const reason = await clusterSkipReason()
  if (reason) {
    console.error(`npm run lab: ${reason} (scripts/setup.sh installs the tools; run as root on Linux)`)
    process.exit(1)
  }
  // Built here, in the foreground, so a first run shows the builds' progress.
  await resolveBinDir()
  await agentImage()
  mkdirSync(LAB_DIR, {recursive: true})
  const log = openSync(LOG, 'w')
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), 'serve'], {
    cwd: repoRoot,
    detached: true,
    stdio: ['ignore', log, log],
  })
  closeSync(log)
  child.unref()
  console.error(`starting the karp lab (log: ${LOG}) ...`)
  let exited: number | null | undefined
  child.on('exit', (code) => (exited = code))
  try {
    await waitFor(
      'the lab',
      UP_TIMEOUT_MS,
      () => {
        if (exited !== undefined) throw new Error(`the lab process exited (${exited})`)
        return readState() !== undefined
      },
      undefined,
      250,
    )
  } catch (err) {
    if (exited === undefined && child.pid) process.kill(child.pid, 'SIGTERM')
    console.error(readFileSync(LOG, 'utf8').trimEnd().split('\n').slice(-30).join('\n'))
    console.error(`npm run lab: the lab did not come up: ${(err as Error).message}`)
    process.exit(1)
  }
  console.log(instructions(readState()!, await sendCommand(SOCKET, 'status', [])))
}

/** The background process: builds the lab, installs karp, serves commands until SIGTERM or SIGINT. */
async function serve(): Promise<void> {
  const log = (line: string) => console.log(`${new Date().toISOString()} ${line}`)
  const began = performance.now()
  const held: {cluster?: Cluster} = {}
  let stopping = false
  const shutdown = async (signal: string) => {
    if (stopping) return
    stopping = true
    log(`${signal}: tearing the lab down`)
    await held.cluster?.stop()
    rmSync(STATE, {force: true})
    rmSync(SOCKET, {force: true})
    log('lab removed')
    process.exit(0)
  }
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => void shutdown(signal))

  const cluster = await Cluster.start({log, dir: join(LAB_DIR, 'cluster'), workers: 1})
  held.cluster = cluster
  const image = await agentImage()
  const karp = async (args: string[]) => {
    log(`karp ${args.join(' ')}`)
    const r = await cluster.karp(args)
    for (const line of `${r.stderr}\n${r.stdout}`.trim().split('\n')) log(`  ${line}`)
    if (r.exitCode !== 0) throw new Error(`karp ${args.join(' ')} exited ${r.exitCode}`)
  }
  await karp(['install', '--vip', VIP, '--image', `${image.name}:${image.tag}@${image.indexDigest}`, '--yes'])
  await waitFor('one VIP holder', 60_000, async () => (await cluster.holders()).length === 1)
  await karp(['kubeconfig', 'rewrite', '--vip', VIP, '--kubeconfig', cluster.kubeconfig])

  const bin = join(LAB_DIR, 'bin')
  rmSync(bin, {recursive: true, force: true})
  mkdirSync(bin)
  writeFileSync(join(bin, 'karp'), `#!/bin/sh\nexec ${process.execPath} ${join(repoRoot, 'bin', 'run.js')} "$@"\n`, {mode: 0o755})
  symlinkSync(join(cluster.binDir, 'kubectl'), join(bin, 'kubectl'))
  writeFileSync(
    CLIENT,
    `#!/bin/sh
# Runs a command (default: a shell) on the karp lab's client machine: its network namespace, with karp,
# kubectl and the kubeconfig that points at the VIP. Written by lab/cli.ts.
export KUBECONFIG=${cluster.kubeconfig}
PATH=${bin}:$PATH
export PATH
[ $# -gt 0 ] || set -- "\${SHELL:-/bin/sh}"
exec nsenter --net=/run/netns/${cluster.clientNs} -- "$@"
`,
    {mode: 0o755},
  )
  serveCommands(cluster, SOCKET, log)
  const state: LabState = {
    pid: process.pid,
    prefix: cluster.net.prefix,
    vip: VIP,
    kubeconfig: cluster.kubeconfig,
    clientNs: cluster.clientNs,
    nodes: cluster.nodes.map((n) => ({name: n.name, ip: n.host.ip})),
    workers: cluster.workers.map((n) => ({name: n.name, ip: n.host.ip})),
    clusterDir: cluster.dir,
    upSeconds: (performance.now() - began) / 1000,
    memoryMb: cluster.allNodes.reduce((sum, n) => sum + cluster.nodeRssKb(n.name), 0) / 1024,
  }
  writeFileSync(`${STATE}.tmp`, JSON.stringify(state, null, 2))
  // Renamed into place: up treats the file's existence as "ready".
  renameSync(`${STATE}.tmp`, STATE)
  log(`ready in ${state.upSeconds.toFixed(1)} s: ${await runCommand(cluster, {command: 'status', args: []})}`)
}

/** Stops the background process (it removes what it made), then whatever a killed one left behind. */
function down(quiet = false): void {
  const state = readState()
  if (state && alive(state.pid)) {
    process.kill(state.pid, 'SIGTERM')
    const deadline = Date.now() + 60_000
    while (alive(state.pid) && Date.now() < deadline) spawnSync('sleep', ['0.2'])
    if (alive(state.pid)) process.kill(state.pid, 'SIGKILL')
  }
  // A lab process that was SIGKILLed left its namespaces and nodes: the next lab start sweeps those of
  // dead processes (lab/network.ts, lab/node.ts); so does this, through a throwaway sweep.
  const sweep = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '-e',
      "const n = await import('./lab/network.ts'); const k = await import('./lab/node.ts'); n.sweepStale('karpc'); k.sweepStaleNodes()",
    ],
    {
      cwd: repoRoot,
      encoding: 'utf8',
    },
  )
  if (sweep.status !== 0 && !quiet) console.error(sweep.stderr.trim())
  // Only what this command made: lab/node.ts and lab/kubelet-host.ts keep records beside it for every lab.
  for (const path of [STATE, LOG, SOCKET, CLIENT, join(LAB_DIR, 'bin'), join(LAB_DIR, 'cluster')])
    rmSync(path, {recursive: true, force: true})
  try {
    rmdirSync(LAB_DIR)
  } catch {
    // not empty: another lab's records
  }
  if (!quiet) console.log(state ? `karp lab ${state.prefix} removed` : 'no karp lab was running')
}

const [command = 'up', ...args] = process.argv.slice(2)
if (command === 'up') await up()
else if (command === 'serve') await serve()
else if (command === 'down') down()
else if (command in COMMANDS) {
  const state = readState()
  if (!state || !alive(state.pid)) {
    console.error('no karp lab running; start one with: npm run lab')
    process.exit(1)
  }
  try {
    console.log(await sendCommand(SOCKET, command, args))
  } catch (err) {
    console.error(`npm run lab -- ${command}: ${(err as Error).message}`)
    process.exit(1)
  }
} else {
  console.error(`usage: npm run lab [-- up|down|${Object.keys(COMMANDS).join('|')}]`)
  process.exit(2)
}
