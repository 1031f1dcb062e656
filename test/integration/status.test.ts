// karp status on a real HA cluster (lab/cluster.ts: node1-3 as kubeadm control-plane nodes, worker1, a
// client namespace), with the agent image run by the real kubelets: every role status reads is one an agent
// reported itself, every situation is made for real (CARP dropped on a node's switch port, a kubelet gone,
// a cordon, a taint, a bad DaemonSet env). This process never connects to the lab: the CLI and kubectl run
// in its client namespace (test/helpers/lab.ts).
//
// The cases run in order on one lab and build on each other:
//   - install st-a (VIP 10.78.0.10, the one the API servers' certificates carry) in before; it serves every
//     case up to the orphaned DaemonSet, and each case that disturbs it waits for it healthy again
//   - install st-b (VIP 10.78.0.30) on node2, node3 and a tainted worker1: down while its nodes are cordoned,
//     then missing a pod on worker1, then crash-looping after a bad env; uninstalled by the last of these
//   - st-a's DaemonSet deleted with its pods orphaned, then uninstalled
import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'
import {Cluster, clusterSkipReason, SUBNET, VIP} from '../../lab/cluster.js'
import {agentImage} from '../../lab/image.js'
import {waitFor} from '../../lab/process.js'
import type {UninstallResult} from '../../src/lib/install/uninstall.js'
import type {StatusResult} from '../../src/lib/status/status.js'
import {assertJsonOutput, assertMatchesSchema} from '../helpers/json-schema.js'
import {labKarp, labKubectl, labUserKubeconfig} from '../helpers/lab.js'
import {DEFAULT_API_PORT} from '../../src/lib/constants.js'

const skip = await clusterSkipReason()
const log = (line: string) => console.error(`# status: ${line}`)

const NS = 'st-a'
const VHID = 31
const NS_B = 'st-b'
const VIP_B = `${SUBNET}.30`
const VHID_B = 32
const LABEL_B = 'karp-test/status-b'
const NODES_B = ['node2', 'node3']
const NO_AGENT_TAINT = 'karp-test/no-agent:NoSchedule'
/** ucarp's IP protocol (CARP shares 112 with VRRP). */

type Install = StatusResult['installs'][number]
interface StatusRun {
  exitCode: number
  result: StatusResult
  stderr: string
}

describe('karp status on a real HA cluster', {skip}, () => {
  let cluster: Cluster
  let imageRef = ''

  const status = async (args: string[]): Promise<StatusRun> => {
    const run = await labKarp(cluster, ['status', '--json', ...args])
    if (run.json !== undefined) assertJsonOutput('status', run)
    return {exitCode: run.exitCode, result: run.json as StatusResult, stderr: run.stderr}
  }

  /** karp status, again every 2 s until `done` holds for it; that run. */
  const statusUntil = async (
    what: string,
    args: string[],
    done: (run: StatusRun, install: Install | undefined) => boolean | Promise<boolean>,
    timeoutMs = 60_000,
  ): Promise<StatusRun> => {
    let last: StatusRun | undefined
    await waitFor(
      what,
      timeoutMs,
      async () => {
        last = await status(args)
        return last.result !== undefined && (await done(last, last.result.installs?.[0]))
      },
      () => {
        const install = last?.result?.installs?.[0]
        return `exit ${last?.exitCode}: ${install ? JSON.stringify({holders: install.holders, state: install.state, problems: install.problems}) : (last?.result?.summary ?? last?.stderr)}`
      },
      2000,
    )
    return last as StatusRun
  }

  /** Nodes with `vip` on their eth0 now (cluster.holders() knows the lab's own VIP only). */
  const holdersOf = async (vip: string): Promise<string[]> => {
    const held = await Promise.all(
      cluster.allNodes.map(async (n) => (!n.down && (await cluster.net.hasAddress(n.host, vip)) ? n.name : undefined)),
    )
    return held.filter((n): n is string => n !== undefined)
  }

  /** Waits until status calls st-a healthy with one holder, the node that really has the VIP; that node. */
  const healthyHolder = async (timeoutMs = 180_000): Promise<string> => {
    let holder = ''
    await statusUntil(
      `${NS} healthy, its holder the node with the VIP`,
      ['-n', NS, '--no-probe'],
      async (run, install) => {
        if (run.exitCode !== 0 || install?.state !== 'healthy' || install.holders.length !== 1) return false
        holder = install.holders[0] as string
        return (await cluster.holders()).join() === holder
      },
      timeoutMs,
    )
    return holder
  }

  const kubectl = (...args: string[]) => labKubectl(cluster, args)

  before(async () => {
    const image = await agentImage()
    imageRef = `${image.name}:${image.tag}@${image.indexDigest}`
    cluster = await Cluster.start({log, workers: 1})
    const installed = await labKarp(
      cluster,
      ['install', '-n', NS, '--vip', VIP, '--vhid', String(VHID), '--image', imageRef, '--yes', '--timeout', '3m', '--json'],
      {timeoutMs: 240_000},
    )
    assert.equal(installed.exitCode, 0, installed.stderr)
    assertJsonOutput('install', installed)
    const holder = await healthyHolder()
    log(`${NS} installed, VIP ${VIP} held by ${holder}`)
  })

  after(async () => {
    await cluster?.stop()
  })

  it('is healthy with one holder, the node that has the VIP, and says which', async () => {
    const holder = await healthyHolder()
    const {exitCode, result} = await status(['-n', NS, '--no-probe'])
    assert.equal(exitCode, 0, JSON.stringify(result))
    assert.equal(result.verdict, 'healthy')
    assert.equal(result.summary, 'karp is healthy')
    const [install] = result.installs
    assert.deepEqual(install?.holders, await cluster.holders())
    assert.deepEqual(install?.holders, [holder])
    assert.equal(install?.holder, 'one')
    assert.equal(install?.vip, VIP)
    assert.equal(install?.vhid, VHID)
    assert.equal(install?.apiPort, DEFAULT_API_PORT)
    assert.deepEqual(install?.daemonSet, {desired: 3, current: 3, ready: 3, updated: 3, available: 3})
    assert.deepEqual(
      install?.agents.map((a) => [a.node, a.nodeReady, a.cordoned, a.selected, a.pod?.role, a.pod?.phase, a.pod?.ready, a.pod?.stale]),
      cluster.nodes.map((n) => [n.name, true, false, true, n.name === holder ? 'master' : 'backup', 'Running', true, false]),
    )
    assert.ok(
      install?.agents.every((a) => a.pod?.roleChangedAt),
      'every agent reported its role',
    )
    assert.deepEqual(install?.problems, [])
    assert.ok(
      install?.events.some((e) => e.reason === 'BecameMaster'),
      `the holder's Event: ${JSON.stringify(install?.events)}`,
    )
  })

  it('prints a table for people, without colour when not on a terminal', async () => {
    const holder = await healthyHolder()
    const run = await labKarp(cluster, ['status', '-n', NS])
    assert.equal(run.exitCode, 0, run.stderr)
    assert.match(run.stdout, /^st-a\/karp {3}VIP 10\.78\.0\.10 \(vhid 31, port 6443\) {3}HEALTHY$/m)
    assert.match(run.stdout, new RegExp(`^ {2}holder: ${holder}$`, 'm'))
    assert.match(run.stdout, /^ {2}DaemonSet: 3 desired, 3 ready, 3 updated, 3 available$/m)
    assert.match(run.stdout, /^ {2}VIP from here: TCP connect \d+\.\d ms, TLS handshake \d+\.\d ms; certificate carries the VIP$/m)
    assert.match(run.stdout, /^ {2}NODE\s+STATUS\s+POD\s+PHASE\s+READY\s+RESTARTS\s+AGE\s+ROLE\s+ROLE SINCE$/m)
    for (const n of cluster.nodes) {
      const role = n.name === holder ? 'master' : 'backup'
      assert.match(
        run.stdout,
        new RegExp(`^ {2}${n.name}\\s+Ready\\s+karp-\\S+\\s+Running\\s+true\\s+\\d+\\s+\\d+[smhd]\\s+${role}\\s+\\d+[smhd]$`, 'm'),
      )
    }
    assert.match(run.stdout, /^karp is healthy$/m)
    assert.ok(!run.stdout.includes('\x1b['), 'no colour codes')
  })

  it('probes the VIP from the client: TCP, TLS, and whether the certificate carries it', async () => {
    const holder = await healthyHolder()
    const {exitCode, result} = await status(['-n', NS, '--timeout', '5s'])
    assert.equal(exitCode, 0, JSON.stringify(result))
    const probe = result.installs[0]?.vipProbe
    assert.equal(probe?.reachable, true, JSON.stringify(probe))
    assert.equal(probe?.endpoint, `${VIP}:${DEFAULT_API_PORT}`)
    assert.ok((probe?.connectMs ?? -1) >= 0 && (probe?.handshakeMs ?? -1) >= 0, JSON.stringify(probe))
    assert.equal(probe?.vipSan?.status, 'pass', JSON.stringify(probe?.vipSan))
    assert.equal(probe?.trust?.status, 'pass', JSON.stringify(probe?.trust))
    // The probe's packets went to the node that holds the VIP: the client learned its MAC address for it.
    assert.equal(await cluster.clientArpNode(), holder)
  })

  it('calls two real holders a split brain (exit 4), and healthy again once they hear each other', async () => {
    const holder = await healthyHolder()
    const deaf = cluster.nodes.find((n) => n.name !== holder)?.name as string
    await cluster.carpCut(deaf, true)
    let run: StatusRun
    try {
      run = await statusUntil(
        `a split brain of ${holder} and ${deaf}`,
        ['-n', NS, '--no-probe'],
        (_, install) => install?.holder === 'split-brain',
      )
      const real = await cluster.holders()
      assert.deepEqual(real, [holder, deaf].sort(), 'both nodes have the VIP on eth0')
    } finally {
      await cluster.carpCut(deaf, false)
    }
    assert.equal(run.exitCode, 4)
    assert.equal(run.result.verdict, 'degraded')
    const install = run.result.installs[0]
    assert.deepEqual(install?.holders, [holder, deaf].sort())
    assert.deepEqual(
      install?.agents.filter((a) => a.pod?.role === 'master').map((a) => a.node),
      [holder, deaf].sort(),
    )
    assert.ok(
      install?.problems.includes(
        `split brain: ${[holder, deaf].sort().join(' and ')} all report holding VIP ${VIP}; check that their CARP advertisements reach each other (same L2 segment, vhid, password)`,
      ),
      JSON.stringify(install?.problems),
    )
    const healed = await healthyHolder()
    log(`split brain of ${holder} and ${deaf} healed: ${healed} holds the VIP`)
  })

  it('reports a selected node that is NotReady, its kubelet and runtime gone; back, healthy again', async () => {
    const holder = await healthyHolder()
    const lost = cluster.nodes.find((n) => n.name !== holder)?.name as string
    // Power loss of the node's kubelet, containerd and containers only: its API server and etcd member stay.
    cluster.node(lost).kube.kill()
    let run: StatusRun
    try {
      // The node controller's grace period (about 40-50 s) before it marks the node NotReady.
      run = await statusUntil(
        `node ${lost} NotReady`,
        ['-n', NS, '--no-probe'],
        (_, install) => install?.agents.find((a) => a.node === lost)?.nodeReady === false,
        150_000,
      )
    } finally {
      await cluster.node(lost).kube.restart()
    }
    assert.equal(run.exitCode, 4)
    const install = run.result.installs[0]
    assert.ok(install?.problems.includes(`node ${lost} is NotReady`), JSON.stringify(install?.problems))
    assert.equal(install?.agents.find((a) => a.node === lost)?.selected, true)
    assert.deepEqual(install?.holders, [holder], "a backup's node going away leaves the holder as it is")
    assert.deepEqual(await cluster.holders(), [holder])

    await cluster.node(lost).kube.waitReady(90_000)
    await healthyHolder()
  })

  it('follows changes through the watch API: the VIP leaving a cordoned holder', async () => {
    const from = await healthyHolder()
    const watch = cluster.startKarp(['status', '--watch', '--json', '--no-probe', '-n', NS])
    const results = (): StatusResult[] =>
      watch
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as StatusResult)
    let to: string | undefined
    try {
      await waitFor(
        'the first status --watch result',
        30_000,
        () => results().length > 0,
        () => watch.output(),
        500,
      )
      await kubectl('cordon', from)
      // Two backups may both take over and one then yield: wait for the node that really has the VIP.
      await waitFor(
        `status --watch naming a holder other than ${from}, the node with the VIP`,
        60_000,
        async () => {
          const install = results().at(-1)?.installs[0]
          to = install?.holder === 'one' && install.holders[0] !== from ? install.holders[0] : undefined
          return to !== undefined && (await cluster.holders()).join() === to
        },
        () => JSON.stringify(results().at(-1)?.installs[0]?.holders),
        500,
      )
    } finally {
      await watch.stop()
      await kubectl('uncordon', from)
    }
    for (const line of results()) assertMatchesSchema('status', line)
    assert.deepEqual(results()[0]?.installs[0]?.holders, [from])
    assert.ok(
      results().some((r) => r.installs[0]?.agents.find((a) => a.node === from)?.cordoned),
      'the cordon itself was seen',
    )
    assert.equal(await healthyHolder(), to, 'uncordoned, the node does not take the VIP back')
  })

  it('is down with no holder while every selected node is cordoned (exit 4)', async () => {
    await kubectl('label', 'node', ...NODES_B, 'worker1', `${LABEL_B}=yes`)
    await kubectl('taint', 'node', 'worker1', NO_AGENT_TAINT)
    await kubectl('cordon', ...NODES_B)
    try {
      const installed = await labKarp(
        cluster,
        [
          'install',
          '-n',
          NS_B,
          '--vip',
          VIP_B,
          '--vhid',
          String(VHID_B),
          '--node-selector',
          `${LABEL_B}=yes`,
          '--image',
          imageRef,
          '--yes',
          '--timeout',
          '3m',
          '--json',
        ],
        {timeoutMs: 240_000},
      )
      assert.equal(installed.exitCode, 0, installed.stderr)
      // Ready means each agent read its Node and knows it must not take the VIP.
      const {exitCode, result} = await statusUntil(
        `${NS_B}'s agents ready`,
        ['-n', NS_B, '--no-probe'],
        (_, install) => install?.daemonSet?.ready === NODES_B.length,
        150_000,
      )
      assert.equal(exitCode, 4)
      assert.equal(result.verdict, 'down')
      const install = result.installs[0]
      assert.equal(install?.state, 'down')
      assert.equal(install?.holder, 'none')
      assert.deepEqual(install?.holders, [])
      assert.equal(install?.problems[0], `no node holds VIP ${VIP_B}: the API server is not reachable through it`)
      assert.deepEqual(
        install?.agents.filter((a) => a.pod).map((a) => [a.node, a.cordoned, a.pod?.ready]),
        NODES_B.map((n) => [n, true, true]),
      )
      assert.ok(
        install?.agents.every((a) => a.pod?.role !== 'master'),
        JSON.stringify(install?.agents.map((a) => a.pod?.role)),
      )
      assert.deepEqual(await holdersOf(VIP_B), [], 'no node has the VIP')
    } finally {
      await kubectl('uncordon', ...NODES_B)
    }
  })

  it('reports a selected node without a pod: a taint the DaemonSet does not tolerate', async () => {
    // Uncordoned, the agents elect a holder; both must run as they should (a probe that timed out on the busy
    // lab restarts an agent, which status reports too).
    const {exitCode, result} = await statusUntil(
      `${NS_B} with a holder and both agents ready once uncordoned`,
      ['-n', NS_B, '--no-probe'],
      async (_, install) => {
        const running = install?.daemonSet?.available === NODES_B.length && install.agents.every((a) => !a.pod?.stale)
        return running && install?.holder === 'one' && (await holdersOf(VIP_B)).join() === install.holders[0]
      },
      150_000,
    )
    assert.equal(exitCode, 4)
    assert.equal(result.verdict, 'degraded')
    const install = result.installs[0]
    const worker = install?.agents.find((a) => a.node === 'worker1')
    assert.equal(worker?.selected, true)
    assert.equal(worker?.nodeReady, true)
    assert.equal(worker?.pod, null)
    assert.deepEqual(install?.problems, ['node worker1 is selected but runs no karp pod'])
    assert.deepEqual(install?.daemonSet, {desired: 2, current: 2, ready: 2, updated: 2, available: 2})
  })

  it('reports a crash-looping agent: its DaemonSet given an env value the agent refuses', async () => {
    const before = await statusUntil(`${NS_B} with one holder`, ['-n', NS_B, '--no-probe'], (_, install) => install?.holder === 'one')
    const holder = before.result.installs[0]?.holders[0] as string
    const node = NODES_B.find((n) => n !== holder) as string
    const replaced = before.result.installs[0]?.agents.find((a) => a.node === node)?.pod?.name as string
    // The new env reaches only the pod recreated by hand (OnDelete): a rolling update would also replace the
    // other node's agent whenever a slow probe had it unready for a moment.
    await kubectl(
      'patch',
      'daemonset',
      'karp',
      '-n',
      NS_B,
      '--type=merge',
      '-p',
      '{"spec":{"updateStrategy":{"type":"OnDelete","rollingUpdate":null}}}',
    )
    await kubectl('set', 'env', 'daemonset/karp', '-n', NS_B, 'KARP_ADVSKEW=not-a-number')
    await kubectl('delete', 'pod', '-n', NS_B, replaced)
    const {exitCode, result} = await statusUntil(
      `the new agent on ${node} crash-looping after two restarts`,
      ['-n', NS_B, '--no-probe'],
      (_, install) => {
        const pod = install?.agents.find((a) => a.node === node)?.pod
        return pod?.name !== replaced && pod?.crashLooping === true && pod.restarts >= 2 && install?.holders.join() === holder
      },
      150_000,
    )
    const install = result.installs[0]
    const looping = install?.agents.find((a) => a.node === node)?.pod
    assert.equal(exitCode, 4)
    assert.equal(result.verdict, 'degraded')
    assert.ok(
      install?.problems.includes(`pod ${looping?.name} on ${node} is crash-looping (${looping?.restarts} restarts)`),
      JSON.stringify(install?.problems),
    )
    assert.equal(looping?.ready, false)
    assert.deepEqual(install?.holders, [holder])
    assert.deepEqual(await holdersOf(VIP_B), [holder])
    // What it crashes on: the agent's one line naming the value it refused.
    const previous = await cluster.kubectl(['logs', '--previous', '-n', NS_B, looping?.name])
    assert.match(previous.stdout, /KARP_ADVSKEW/, previous.stderr)

    const uninstalled = await labKarp(cluster, ['uninstall', '-n', NS_B, '--yes', '--timeout', '2m', '--json'])
    assert.equal(uninstalled.exitCode, 0, uninstalled.stderr)
    assertJsonOutput('uninstall', uninstalled)
    assert.equal((uninstalled.json as UninstallResult).podsRemaining, 0)
    await kubectl('taint', 'node', 'worker1', `${NO_AGENT_TAINT}-`)
    await kubectl('label', 'node', ...NODES_B, 'worker1', `${LABEL_B}-`)
    await waitFor(`${VIP_B} on no node`, 30_000, async () => (await holdersOf(VIP_B)).length === 0, undefined, 500)
  })

  it('reports agents left behind by a deleted DaemonSet', async () => {
    const holder = await healthyHolder()
    await kubectl('delete', 'daemonset', 'karp', '-n', NS, '--cascade=orphan')
    const {exitCode, result} = await statusUntil(
      'the DaemonSet gone',
      ['-n', NS, '--no-probe'],
      (_, install) => install?.daemonSet === null,
    )
    assert.equal(exitCode, 4)
    assert.equal(result.verdict, 'degraded')
    const install = result.installs[0]
    assert.equal(
      install?.problems[0],
      `DaemonSet ${NS}/karp is missing: 3 agent pods left without it; run karp install again, or karp uninstall`,
    )
    assert.equal(install?.agents.length, 3)
    assert.deepEqual(install?.holders, [holder], 'the orphaned agents go on holding the VIP')
    assert.deepEqual(await cluster.holders(), [holder])
  })

  it('is cleaned up by uninstall, orphaned agents included: no VIP on any node', async () => {
    const run = await labKarp(cluster, ['uninstall', '-n', NS, '--yes', '--timeout', '2m', '--json'])
    assert.equal(run.exitCode, 0, run.stderr)
    assertJsonOutput('uninstall', run)
    assert.equal((run.json as UninstallResult).podsRemaining, 0)
    const {exitCode, result} = await status(['-n', NS, '--no-probe'])
    assert.equal(exitCode, 4)
    assert.equal(result.verdict, 'not-installed')
    await waitFor(`${VIP} on no node`, 30_000, async () => (await cluster.holders()).length === 0, undefined, 500)
  })

  it('says plainly when there is no karp install (exit 4)', async () => {
    const {exitCode, result} = await status(['-n', 'st-nothing-here', '--no-probe'])
    assert.equal(exitCode, 4)
    assert.equal(result.verdict, 'not-installed')
    assert.deepEqual(result.installs, [])
    assert.match(
      result.summary,
      /^no karp install found in context \S+ \(namespace st-nothing-here\); install one with: karp install --vip ADDRESS$/,
    )
  })

  it('names the missing permission for an unprivileged identity (exit 3)', async () => {
    const user = 'st-nobody'
    const run = await labKarp(cluster, ['status', '--json', '--no-probe', '--kubeconfig', labUserKubeconfig(cluster, user)])
    assert.equal(run.exitCode, 3, run.stderr)
    const message = (run.json as {error: {message: string}}).error.message
    assert.match(message, new RegExp(`^forbidden: ${user} \\(context ${user}@kubernetes\\) may not `))
    for (const need of [
      'list daemonsets.apps (cluster-wide)',
      'list pods (cluster-wide)',
      'list nodes (cluster-wide)',
      'list events (cluster-wide)',
    ]) {
      assert.ok(message.includes(need), `${need} missing from: ${message}`)
    }
    assert.match(message, /nothing could be read$/)
  })
})
