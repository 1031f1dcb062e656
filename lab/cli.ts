// npm run lab [-- up|down|kill-holder]: karp without a cluster. Builds what the journey test uses
// (test/e2e/journey-lab.ts: a real control plane, three control-plane nodes and a client in network
// namespaces, a stand-in kubelet running the agent from agent/), installs karp with the CLI, points a
// kubeconfig at the VIP and leaves it all running in a background process. Needs root on Linux.
//   up           (default) start it and print how to use it; prints the same again when it is running
//   down         stop it and remove everything it made
//   kill-holder  SIGKILL the agent of the node that holds the VIP (its kubelet restarts it after 10 s)
//   serve        the background process itself (up starts it)
import {spawn, spawnSync} from 'node:child_process'
import {chmodSync, closeSync, copyFileSync, mkdirSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {resolveBinDir} from './binaries.js'
import {JourneyLab, VIP} from '../test/e2e/journey-lab.js'
import {labSkipReason} from './agent-lab.js'

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const LAB_DIR = process.env.KARP_LAB_DIR ?? '/run/karp-lab'
const STATE = join(LAB_DIR, 'state.json')
const LOG = join(LAB_DIR, 'lab.log')
const CLIENT = join(LAB_DIR, 'client')
const UP_TIMEOUT_MS = 5 * 60_000

interface LabState {
  pid: number
  prefix: string
  vip: string
  holder: string
  kubeconfig: string
  clientNs: string
  nodes: {name: string; ns: string; ip: string}[]
  /** Every namespace the lab made and the process groups it started outside them, for down when the background process is gone. */
  namespaces: string[]
  rootPids: number[]
  labDir: string
  controlPlaneDir: string
  startupSeconds: number
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

function readState(): LabState | undefined {
  try {
    return JSON.parse(readFileSync(STATE, 'utf8')) as LabState
  } catch {
    return undefined
  }
}

function holdsVip(ns: string): boolean {
  const out = spawnSync('ip', ['-n', ns, '-4', 'addr', 'show', 'dev', 'eth0'], {encoding: 'utf8'}).stdout ?? ''
  return out.includes(` inet ${VIP}/`)
}

function instructions(s: LabState): string {
  const holders = s.nodes.filter((n) => holdsVip(n.ns)).map((n) => n.name)
  return `karp lab ${s.prefix} is up: a real API server, control-plane nodes ${s.nodes.map((n) => `${n.name} (${n.ip})`).join(', ')}
in network namespaces, each running the karp agent; karp installed with the CLI.

  VIP          ${s.vip}, held by ${holders.join(', ') || 'nobody right now'}
  kubeconfig   ${s.kubeconfig}  (server https://${s.vip}:6443, rewritten by karp kubeconfig rewrite)
  client       ${CLIENT} CMD  runs CMD on the lab's client machine (namespace ${s.clientNs}) with karp,
               kubectl and that kubeconfig; without CMD, a shell there

Try:
${tryLines(holders[0] ?? 'node1')}
Logs: ${LOG} (karp install, kubelet); agents: ${join(s.labDir, '<node>', 'agent.log')};
      control plane: ${s.controlPlaneDir}/*.log
Remove everything: npm run lab -- down`
}

function tryLines(holder: string): string {
  const lines: [string, string][] = [
    [`${CLIENT} karp status`, ''],
    [`${CLIENT} kubectl get nodes`, ''],
    [`${CLIENT} karp check-cert`, ''],
    [`${CLIENT} karp status --watch`, 'in a second terminal, then:'],
    ['npm run lab -- kill-holder', "SIGKILL the holder's agent: another node takes the VIP in about 3 s"],
    [`${CLIENT} kubectl -n karp-system delete pod --field-selector spec.nodeName=${holder}`, ''],
    ['', 'graceful: the holder hands the VIP over before it lets go'],
  ]
  const width = Math.max(...lines.filter(([, c]) => c).map(([cmd]) => cmd.length))
  return lines.map(([cmd, comment]) => `  ${comment ? `${cmd.padEnd(width)}  # ${comment}` : cmd}`).join('\n')
}

async function up(): Promise<void> {
  const state = readState()
  if (state && alive(state.pid)) {
    console.log(instructions(state))
    return
  }
  if (state) down(true)
  const reason = labSkipReason()
  if (reason) {
    console.error(`npm run lab: ${reason} (scripts/setup.sh installs the tools; run as root on Linux)`)
    process.exit(1)
  }
  // Built here, in the foreground, so a first run shows the build's progress.
  const binDir = process.env.KARP_TEST_BIN_DIR || (await resolveBinDir())
  mkdirSync(LAB_DIR, {recursive: true})
  rmSync(STATE, {force: true})
  const log = openSync(LOG, 'w')
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), 'serve'], {
    cwd: repoRoot,
    detached: true,
    stdio: ['ignore', log, log],
    env: {...process.env, KARP_TEST_BIN_DIR: binDir},
  })
  closeSync(log)
  child.unref()
  console.error(`starting the karp lab (log: ${LOG}) ...`)
  const started = Date.now()
  let exited: number | null | undefined
  child.on('exit', (code) => (exited = code))
  while (!readState()) {
    if (exited !== undefined || Date.now() - started > UP_TIMEOUT_MS) {
      if (exited === undefined && child.pid) process.kill(child.pid, 'SIGTERM')
      console.error(readFileSync(LOG, 'utf8').trimEnd().split('\n').slice(-30).join('\n'))
      console.error(`npm run lab: the lab did not come up${exited === undefined ? ` within ${UP_TIMEOUT_MS / 1000} s` : ` (exit ${exited})`}`)
      process.exit(1)
    }
    await sleep(250)
  }
  console.log(instructions(readState()!))
}

/** The background process: builds the lab, installs karp, and holds it all until SIGTERM or SIGINT. */
async function serve(): Promise<void> {
  const log = (line: string) => console.log(`${new Date().toISOString()} ${line}`)
  const started: {jl?: JourneyLab} = {}
  let stopping = false
  const shutdown = async (signal: string) => {
    if (stopping) return
    stopping = true
    log(`${signal}: tearing the lab down`)
    await started.jl?.stop()
    rmSync(STATE, {force: true})
    log('lab removed')
    process.exit(0)
  }
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => void shutdown(signal))

  const jl = await JourneyLab.start({log})
  started.jl = jl
  const run = async (args: string[]) => {
    log(`karp ${args.join(' ')}`)
    const r = await jl.karp(args)
    for (const line of `${r.stderr}\n${r.stdout}`.trim().split('\n')) log(`  ${line}`)
    if (r.exitCode !== 0) throw new Error(`karp ${args.join(' ')} exited ${r.exitCode}`)
  }
  await run(['install', '--vip', VIP, '--yes'])
  const holder = await jl.lab.waitForOneHolder(30_000)
  await run(['kubeconfig', 'rewrite', '--vip', VIP, '--kubeconfig', jl.kubeconfig])

  const kubeconfig = join(LAB_DIR, 'kubeconfig')
  copyFileSync(jl.kubeconfig, kubeconfig)
  chmodSync(kubeconfig, 0o600)
  const bin = join(LAB_DIR, 'bin')
  rmSync(bin, {recursive: true, force: true})
  mkdirSync(bin)
  writeFileSync(join(bin, 'karp'), `#!/bin/sh\nexec ${process.execPath} ${join(repoRoot, 'bin', 'run.js')} "$@"\n`, {mode: 0o755})
  symlinkSync(join(jl.cp.binDir, 'kubectl'), join(bin, 'kubectl'))
  writeFileSync(
    CLIENT,
    `#!/bin/sh
# Runs a command (default: a shell) on the karp lab's client machine: its network namespace, with karp,
# kubectl and the kubeconfig that points at the VIP. Written by scripts/lab.ts.
export KUBECONFIG=${kubeconfig}
PATH=${bin}:$PATH
export PATH
[ $# -gt 0 ] || set -- "\${SHELL:-/bin/sh}"
exec ip netns exec ${jl.lab.clientNs} "$@"
`,
    {mode: 0o755},
  )
  const state: LabState = {
    pid: process.pid,
    prefix: jl.lab.prefix,
    vip: VIP,
    holder,
    kubeconfig,
    clientNs: jl.lab.clientNs,
    nodes: jl.lab.nodes.map((n) => ({name: n.name, ns: n.ns, ip: n.ip})),
    namespaces: [jl.lab.brNs, jl.lab.clientNs, jl.apiNs, ...jl.lab.nodes.map((n) => n.ns)],
    rootPids: jl.rootPids,
    labDir: jl.lab.dir,
    controlPlaneDir: jl.cp.tempDir,
    startupSeconds: jl.cp.startupSeconds,
  }
  writeFileSync(`${STATE}.tmp`, JSON.stringify(state, null, 2))
  // Renamed into place: up treats the file's existence as "ready".
  spawnSync('mv', [`${STATE}.tmp`, STATE])
  log(`ready: VIP ${VIP} held by ${holder}`)
  setInterval(() => {}, 1 << 30)
}

/** Stops the background process (it removes what it made) and removes whatever is left. */
function down(quiet = false): void {
  const state = readState()
  if (!state) {
    if (!quiet) console.log(`no karp lab running (no ${STATE})`)
    rmSync(LAB_DIR, {recursive: true, force: true})
    return
  }
  if (alive(state.pid)) {
    process.kill(state.pid, 'SIGTERM')
    const deadline = Date.now() + 30_000
    while (alive(state.pid) && Date.now() < deadline) spawnSync('sleep', ['0.2'])
    if (alive(state.pid)) process.kill(state.pid, 'SIGKILL')
  }
  // Only what is left when the background process died without cleaning up (e.g. SIGKILL); the control
  // plane's own reaper stops it once its parent is gone.
  for (const pgid of state.rootPids ?? []) {
    try {
      process.kill(-pgid, 'SIGKILL')
    } catch {
      // gone already
    }
  }
  const existing = new Set((spawnSync('ip', ['netns', 'list'], {encoding: 'utf8'}).stdout ?? '').split('\n').map((l) => l.split(' ')[0]))
  for (const ns of state.namespaces.filter((n) => existing.has(n))) {
    for (const pid of (spawnSync('ip', ['netns', 'pids', ns], {encoding: 'utf8'}).stdout ?? '').split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL')
      } catch {
        // gone already
      }
    }
    spawnSync('ip', ['netns', 'del', ns])
  }
  rmSync(state.labDir, {recursive: true, force: true})
  rmSync(LAB_DIR, {recursive: true, force: true})
  if (!quiet) console.log(`karp lab ${state.prefix} removed: background process, control plane, namespaces ${state.namespaces.join(' ')}`)
}

/** SIGKILL to the whole agent (entrypoint and ucarp) on every node that holds the VIP. */
function killHolder(): void {
  const state = readState()
  if (!state || !alive(state.pid)) {
    console.error('no karp lab running; start one with: npm run lab')
    process.exit(1)
  }
  const holders = state.nodes.filter((n) => holdsVip(n.ns))
  if (holders.length === 0) {
    console.error('nobody holds the VIP right now; try again in a few seconds')
    process.exit(1)
  }
  for (const node of holders) {
    const pids = (spawnSync('ip', ['netns', 'pids', node.ns], {encoding: 'utf8'}).stdout ?? '').split('\n').filter(Boolean)
    const agent = pids.find((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('/agent/entrypoint.sh')
      } catch {
        return false
      }
    })
    if (!agent) {
      console.error(`${node.name} holds the VIP but runs no agent (already killed? its kubelet restarts it after 10 s)`)
      continue
    }
    const stat = readFileSync(`/proc/${agent}/stat`, 'utf8')
    const pgid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2])
    process.kill(-pgid, 'SIGKILL')
    console.log(`killed the agent on ${node.name} (process group ${pgid}): the VIP stays there until another node takes it`)
    console.log(`over in about 3 s; the kubelet restarts the agent after 10 s. Watch: ${CLIENT} karp status --watch`)
  }
}

const command = process.argv[2] ?? 'up'
if (command === 'up') await up()
else if (command === 'serve') await serve()
else if (command === 'down') down()
else if (command === 'kill-holder') killHolder()
else {
  console.error('usage: npm run lab [-- up|down|kill-holder]')
  process.exit(2)
}
