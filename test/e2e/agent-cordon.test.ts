// The agent and its own Node: kubectl cordon (and drain, which cordons first) marks a Node unschedulable,
// and the agent, which reads its Node through the real control plane (test/global-setup.ts), hands the
// VIP over make-before-break and stays out of CARP until the node is uncordoned. As in role-report.test.ts,
// the agents of the netns lab reach the API server through a socat pair and a Unix socket (no lab address
// reaches the root namespace), under the RBAC and admission policy karp renders, with tokens bound to
// their pods. Every Node and Pod here is an object only: nothing runs on the Nodes but what the lab runs.
// No timing asserts: who holds the VIP, whether ucarp runs, what the agents logged and reported.
import assert from 'node:assert/strict'
import {copyFileSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {execa} from 'execa'
import {validateVipInput} from '../../src/lib/config/vip-config.js'
import {renderManifests} from '../../src/lib/manifests/render.js'
import {clusterOrSkip, uniqueName} from '../integration/cluster-env.js'
import {killGroup, Lab, labSkipReason, sleep, VIP, waitFor, type LabNode, type Proc} from '../../lab/agent-lab.js'
import {ROLE_CONDITION} from '../../src/lib/constants.js'

const skip = labSkipReason()
const cluster = clusterOrSkip()
const FORWARD_PORT = 6445
/** KARP_NODE_INTERVAL as installed: the agent reads its Node every 2 s. */
const NODE_INTERVAL_MS = 2000
/** KARP_VIP_LIFETIME as the agents here get it by default (dead interval 3 s + 1). */
const LIFETIME_S = 4

describe('the agent hands the VIP over when its Node is cordoned', {skip: skip || cluster.skip}, () => {
  let lab: Lab
  const namespace = uniqueName('karp-cordon')
  // Nodes are cluster-wide: names of this run's own.
  const nodeName = (n: LabNode) => `${namespace}-${n.name}`
  const forwarders = new Map<string, Proc>()
  const kubectl = (args: string[], input?: string) =>
    execa(join(cluster.binDir, 'kubectl'), ['--kubeconfig', cluster.kubeconfig, ...args], {input})
  const cordon = (n: LabNode) => kubectl(['cordon', nodeName(n)])
  const uncordon = (n: LabNode) => kubectl(['uncordon', nodeName(n)])

  // What karp ships for the agent's identity, ClusterRole (get nodes) and its binding included.
  const identity = renderManifests({...validateVipInput({namespace}).settings, vip: VIP, password: 'unused'}).filter((o) =>
    [
      'ServiceAccount',
      'Role',
      'RoleBinding',
      'ClusterRole',
      'ClusterRoleBinding',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
    ].includes(o.kind),
  )
  const clusterRoleBinding = identity.find((o) => o.kind === 'ClusterRoleBinding')!

  function ucarpRunning(n: LabNode): boolean {
    const pid = lab.statePid(n, 'ucarp.pid')
    if (pid === undefined) return false
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'ucarp'
    } catch {
      return false
    }
  }

  /** The agent's own lines (not ucarp's), from the given offset of its log on. */
  const agentLines = (n: LabNode, from = 0) =>
    lab
      .agentLog(n)
      .slice(from)
      .split('\n')
      .filter((l) => / karp node=\S+ /.test(l))

  const waitEligible = (n: LabNode) => waitFor(`${n.name} running ucarp`, 30_000, () => ucarpRunning(n))
  const waitLogged = (n: LabNode, from: number, line: RegExp) =>
    waitFor(
      `${n.name} logging ${line}`,
      30_000,
      () => agentLines(n, from).some((l) => line.test(l)),
      () => agentLines(n, from).join('\n'),
    )

  /**
   * Samples who holds the VIP (and whether the given nodes run ucarp) as fast as the lab answers, until
   * stopped: what a client would have found at each moment.
   */
  function sample(watch: LabNode[] = []): {stop: () => Promise<Array<{holders: string[]; ucarp: boolean[]}>>} {
    let running = true
    const samples: Array<{holders: string[]; ucarp: boolean[]}> = []
    const loop = (async () => {
      while (running) {
        samples.push({holders: await lab.holders(), ucarp: watch.map(ucarpRunning)})
        await sleep(50)
      }
    })()
    return {
      stop: async () => {
        running = false
        await loop
        return samples
      },
    }
  }

  /**
   * Never nobody: the VIP always had a holder. `from` held it first and let it go once (make-before-break:
   * it answers until it sees another node answer), never to take it again; `to` holds it at the end. Two
   * holders at once are the handover's overlap, and two backups promoted together (ucarp's own race, which
   * the yielding master's drain makes harmless to clients); their count is printed, not judged.
   */
  function assertHandedOver(samples: Array<{holders: string[]}>, from: string, to: string): void {
    const shown = samples.map((s) => `[${s.holders.join(',')}]`).join(' ')
    assert.ok(samples.length > 0)
    assert.ok(
      samples.every((s) => s.holders.length > 0),
      `a moment without a holder: ${shown}`,
    )
    assert.ok(samples[0]?.holders.includes(from), `${from} did not hold the VIP first: ${shown}`)
    const released = samples.findIndex((s) => !s.holders.includes(from))
    assert.ok(released > 0, `${from} never let the VIP go: ${shown}`)
    assert.ok(
      samples.slice(released).every((s) => !s.holders.includes(from)),
      `${from} took the VIP back: ${shown}`,
    )
    assert.deepEqual(samples.at(-1)?.holders, [to], shown)
    const runs: string[] = []
    for (const [i, s] of samples.entries()) {
      const holders = s.holders.join('+')
      if (i > 0 && holders === samples[i - 1]?.holders.join('+'))
        runs[runs.length - 1] = runs.at(-1)!.replace(/ x(\d+)$/, (_, n: string) => ` x${Number(n) + 1}`)
      else runs.push(`${holders} x1`)
    }
    console.error(`holders over ${samples.length} samples: ${runs.join(', ')}`)
  }

  function startForwarders(): void {
    const socket = join(lab.dir, 'api.sock')
    for (const n of lab.nodes) {
      forwarders.set(
        n.name,
        lab.spawnIn(
          n.ns,
          ['socat', `TCP-LISTEN:${FORWARD_PORT},bind=127.0.0.1,fork,reuseaddr`, `UNIX-CONNECT:${socket}`],
          {},
          join(n.dir, 'socat.log'),
        ),
      )
    }
  }

  async function stopForwarders(): Promise<void> {
    for (const proc of forwarders.values()) killGroup(proc.pid, 'SIGKILL')
    await Promise.all([...forwarders.values()].map((p) => p.exited))
    forwarders.clear()
  }

  before(async () => {
    await kubectl(['create', 'namespace', namespace])
    await kubectl(['apply', '-f', '-'], JSON.stringify({apiVersion: 'v1', kind: 'List', items: identity}))
    lab = await Lab.create(3)
    for (const n of lab.nodes) {
      // Only an object: no kubelet heartbeats it, and the test's Pods are bound to it as DaemonSet pods are.
      await kubectl(
        ['create', '-f', '-'],
        JSON.stringify({apiVersion: 'v1', kind: 'Node', metadata: {name: nodeName(n), labels: {'karp-test/cordon': namespace}}}),
      )
      const name = `karp-${n.name}`
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {name, namespace},
        spec: {
          nodeName: nodeName(n),
          serviceAccountName: 'karp',
          tolerations: [{operator: 'Exists'}],
          containers: [{name: 'agent', image: 'karp.invalid/agent:test'}],
        },
      }
      await kubectl(['apply', '-f', '-'], JSON.stringify(pod))
      const token = (
        await kubectl([
          'create',
          'token',
          'karp',
          '-n',
          namespace,
          '--duration=1h',
          '--bound-object-kind=Pod',
          `--bound-object-name=${name}`,
        ])
      ).stdout.trim()
      writeFileSync(join(n.dir, 'token'), `${token}\n`, {mode: 0o600})
      copyFileSync(cluster.caFile, join(n.dir, 'ca.crt'))
    }
    const api = new URL(cluster.server)
    lab.spawnHere(
      ['socat', `UNIX-LISTEN:${join(lab.dir, 'api.sock')},fork,unlink-early`, `TCP:${api.hostname}:${api.port}`],
      join(lab.dir, 'socat.log'),
    )
    startForwarders()
    for (const n of lab.nodes) lab.startService(n)
    for (const n of lab.nodes) await lab.waitForService(n)
    for (const n of lab.nodes) {
      // Under busybox ash with busybox's tools, as in the image.
      lab.startAgent(n, {
        toolset: 'busybox',
        env: {
          KUBERNETES_SERVICE_HOST: '127.0.0.1',
          KUBERNETES_SERVICE_PORT: String(FORWARD_PORT),
          POD_NAMESPACE: namespace,
          NODE_NAME: nodeName(n),
        },
      })
    }
    for (const n of lab.nodes) await waitEligible(n)
  })

  after(async () => {
    await lab?.destroy()
    await kubectl(['delete', 'nodes', '-l', `karp-test/cordon=${namespace}`, '--wait=false']).catch(() => undefined)
    await kubectl(['delete', 'namespace', namespace, '--wait=false']).catch(() => undefined)
    for (const o of identity.filter((i) => !i.metadata.namespace))
      await kubectl(['delete', o.kind, o.metadata.name, '--ignore-not-found']).catch(() => undefined)
  })

  it('moves the VIP off a cordoned holder without a moment unheld, keeps the node out of CARP, and takes it back in on uncordon without a flap', async () => {
    const old = lab.node(await lab.waitForOneHolder())
    const logFrom = lab.agentLog(old).length
    const sampler = sample([old])
    await cordon(old)
    const successor = await lab.waitForOneHolder(30_000, old.name)
    // Stays out while cordoned: a few more checks of its Node change nothing.
    await sleep(3 * NODE_INTERVAL_MS)
    const samples = await sampler.stop()
    assertHandedOver(samples, old.name, successor)
    const afterHandover = samples.findIndex((s) => s.holders.length === 1 && s.holders[0] === successor)
    assert.ok(
      samples.slice(afterHandover).every((s) => !s.ucarp[0]),
      'the cordoned node ran ucarp again',
    )
    assert.equal(ucarpRunning(old), false)
    assert.deepEqual(await lab.holders(), [successor])
    assert.ok(
      agentLines(old, logFrom).some((l) =>
        new RegExp(
          `role=backup from=master vip=${VIP.replaceAll('.', '\\.')} iface=eth0 reason="node cordoned" successor=seen vip_released=now`,
        ).test(l),
      ),
      agentLines(old, logFrom).join('\n'),
    )
    assert.equal(await lab.healthcheck(old), 0, 'a cordoned agent stays live and ready')
    assert.equal(readFileSync(join(old.dir, 'state', 'gated'), 'utf8').trim(), 'node cordoned')
    // Reported as the other transitions are: the pod condition, and an Event with the reason.
    await waitFor(`${old.name} reported backup because cordoned`, 20_000, async () => {
      const pod = JSON.parse((await kubectl(['get', 'pod', `karp-${old.name}`, '-n', namespace, '-o', 'json'])).stdout) as {
        status: {conditions?: Array<{type: string; reason?: string}>}
      }
      const events = JSON.parse((await kubectl(['get', 'events', '-n', namespace, '-o', 'json'])).stdout) as {
        items: Array<{reason: string; message: string; involvedObject: {name: string}}>
      }
      return (
        pod.status.conditions?.find((c) => c.type === ROLE_CONDITION)?.reason === 'Backup' &&
        events.items.some(
          (e) =>
            e.involvedObject.name === `karp-${old.name}` &&
            e.reason === 'BecameBackup' &&
            e.message === `${nodeName(old)} is backup for ${VIP}: node cordoned`,
        )
      )
    })

    const uncordonFrom = lab.agentLog(old).length
    const steady = sample()
    await uncordon(old)
    await waitEligible(old)
    await waitLogged(old, uncordonFrom, /node=uncordoned eligible=true/)
    await waitLogged(old, uncordonFrom, /role=backup from=init .*reason="started \(node uncordoned\): listening for a master"/)
    // No flap: preempt is off, so the VIP stays where it went.
    await sleep(3 * NODE_INTERVAL_MS)
    const after = await steady.stop()
    assert.ok(
      after.every((s) => s.holders.length === 1 && s.holders[0] === successor),
      `holders after the uncordon: ${after.map((s) => s.holders.join(',')).join(' ')}`,
    )
    assert.ok(!lab.nodes.some((n) => agentLines(n).some((l) => /warning=node-check-failing/.test(l))), 'every node check got an answer')
  })

  it("keeps a cordoned holder's VIP while no other node can take it, and lets it go as soon as one can", async () => {
    const holder = lab.node(await lab.waitForOneHolder())
    const [first, second] = lab.nodes.filter((n) => n !== holder) as [LabNode, LabNode]
    const sampler = sample([holder])
    for (const n of [first, second]) {
      const from = lab.agentLog(n).length
      await cordon(n)
      await waitLogged(n, from, /role=backup from=backup .*reason="node cordoned" eligible=false/)
      assert.equal(ucarpRunning(n), false)
    }
    // The last eligible node cordoned: its API server is fine, so letting the VIP go would only cut clients off.
    let from = lab.agentLog(holder).length
    await cordon(holder)
    await waitLogged(
      holder,
      from,
      /role=master from=master .*reason="node cordoned, but no other node took the VIP within 11 s: holding it until one does" successor=timeout vip_released=no eligible=false/,
    )
    assert.equal(ucarpRunning(holder), false)
    assert.deepEqual(await lab.holders(), [holder.name])
    // Through the 7 s wait and after it, still a lease, which the agent keeps renewing out of CARP.
    const lifetimes: Array<number | 'forever' | undefined> = []
    for (const end = Date.now() + (LIFETIME_S + 2) * 1000; Date.now() < end; await sleep(200)) lifetimes.push(await lab.vipLifetime(holder))
    assert.ok(
      lifetimes.every((l) => typeof l === 'number' && l <= LIFETIME_S),
      `valid_lft while holding: ${lifetimes.join(' ')}`,
    )

    // Uncordoned while holding: ucarp starts without running its down script, and is elected.
    from = lab.agentLog(holder).length
    await uncordon(holder)
    await waitLogged(holder, from, /role=master from=master .*reason="elected: no preferred master advertised within the dead interval"/)
    assert.ok(ucarpRunning(holder))
    assert.ok(!agentLines(holder, from).some((l) => / role=backup /.test(l)), agentLines(holder, from).join('\n'))

    // Cordoned again, holding again; then another node gets uncordoned and takes the VIP.
    from = lab.agentLog(holder).length
    await cordon(holder)
    await waitLogged(holder, from, /role=master from=master .*holding it until one does/)
    await uncordon(first)
    await lab.waitForOneHolder(30_000, holder.name)
    await waitLogged(
      holder,
      from,
      /role=backup from=master .*reason="node cordoned: another node took the VIP" successor=seen vip_released=now/,
    )
    const samples = await sampler.stop()
    assertHandedOver(samples, holder.name, first.name)
    assert.ok(
      samples.every((s) => s.holders.length > 0),
      'never without a holder',
    )

    for (const n of [holder, second]) {
      await uncordon(n)
      await waitEligible(n)
    }
    assert.equal(await lab.waitForOneHolder(), first.name)
  })

  it('changes nothing while its Node cannot be read: the API server refuses (403) or cannot be reached', async () => {
    const holder = lab.node(await lab.waitForOneHolder())
    const [outside, other] = lab.nodes.filter((n) => n !== holder) as [LabNode, LabNode]
    const from = new Map(lab.nodes.map((n) => [n.name, lab.agentLog(n).length]))
    await cordon(outside)
    await waitLogged(outside, from.get(outside.name)!, /reason="node cordoned" eligible=false/)

    // 403: the agent may no longer get Nodes.
    await kubectl(['delete', 'clusterrolebinding', clusterRoleBinding.metadata.name])
    for (const n of lab.nodes) await waitLogged(n, from.get(n.name)!, /warning=node-check-failing reason="HTTP status 403"/)
    await uncordon(outside)
    await cordon(holder)
    await sleep(3 * NODE_INTERVAL_MS)
    assert.deepEqual(await lab.holders(), [holder.name], 'the holder did not learn of its cordon, and kept the VIP')
    assert.ok(ucarpRunning(holder) && ucarpRunning(other))
    assert.equal(ucarpRunning(outside), false, 'the node that cannot see its uncordon stays out')
    assert.match(
      agentLines(outside, from.get(outside.name)).join('\n'),
      /warning=node-check-failing reason="HTTP status 403" assumed=cordoned/,
    )
    assert.match(
      agentLines(holder, from.get(holder.name)).join('\n'),
      /warning=node-check-failing reason="HTTP status 403" assumed=uncordoned/,
    )

    // No answer at all: connections refused on two nodes, a server that never answers on the third. (The
    // binding comes back only once the agents cannot reach the API server any more.)
    await stopForwarders()
    const silent = lab.startSilentServer(outside, '127.0.0.1', FORWARD_PORT)
    await kubectl(['apply', '-f', '-'], JSON.stringify(clusterRoleBinding))
    for (const n of lab.nodes) {
      await waitLogged(
        n,
        from.get(n.name)!,
        n === outside
          ? /warning=node-check-failing reason="karp-tls: timed out[^"]*" assumed=cordoned/
          : /warning=node-check-failing reason="karp-tls: cannot connect to 127\.0\.0\.1 port 6445: Connection refused"/,
      )
    }
    await sleep(3 * NODE_INTERVAL_MS)
    assert.deepEqual(await lab.holders(), [holder.name])
    assert.equal(ucarpRunning(outside), false)
    assert.ok(ucarpRunning(holder))
    // Once per reason, not once per check.
    for (const n of lab.nodes) {
      const failing = agentLines(n, from.get(n.name)).filter((l) => /warning=node-check-failing/.test(l))
      assert.equal(new Set(failing.map((l) => l.replace(/^\S+ /, ''))).size, failing.length, failing.join('\n'))
    }

    // Answers again: what changed meanwhile takes effect, make-before-break.
    killGroup(silent.pid, 'SIGKILL')
    await silent.exited
    const sampler = sample()
    startForwarders()
    const successor = await lab.waitForOneHolder(30_000, holder.name)
    await waitEligible(outside)
    for (const n of lab.nodes) await waitLogged(n, from.get(n.name)!, /node_check=ok/)
    assertHandedOver(await sampler.stop(), holder.name, successor)
    await uncordon(holder)
    await waitEligible(holder)
    assert.equal(await lab.waitForOneHolder(), successor)
  })
})
