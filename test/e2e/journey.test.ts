// The user's journey on a real HA cluster (lab/cluster.ts): three control-plane nodes in network namespaces,
// each with an etcd member, kube-apiserver, controller-manager, scheduler, containerd, kubelet and kube-proxy;
// karp installed with the CLI from a client namespace, its agent image run by the real kubelets. Every CLI
// command and kubectl runs in the client namespace. A prober there GETs /readyz through the VIP every
// 50 ms with the kubeconfig's credentials; client outages are printed (bench/failover gathers them over
// trials), never asserted. Holder counts, roles and that requests resume are asserted.
import assert from 'node:assert/strict'
import {readdirSync, readFileSync} from 'node:fs'
import {basename, dirname, join} from 'node:path'
import {after, before, describe} from 'node:test'
import {parse} from 'yaml'
import {Cluster, clusterSkipReason, VIP} from '../../lab/cluster.js'
import {agentImage} from '../../lab/image.js'
import {labSteps} from '../helpers/lab.js'
import {watchHolders, type HoldersSeen} from '../../lab/holders.js'
import {longestOutage, outages, type Probe} from '../../lab/outage.js'
import {sleep, waitFor} from '../../lab/process.js'
import {hostAfterLabs, hostBeforeLabs, type HostState} from '../../lab/kubelet-host.js'
import type {CheckCertResult} from '../../src/lib/cert/check-cert.js'
import {type InstallResult} from '../../src/lib/install/install.js'
import type {UninstallResult} from '../../src/lib/install/uninstall.js'
import type {StatusResult} from '../../src/lib/status/status.js'
import {DEFAULT_API_PORT, MANAGED_BY, MANAGED_BY_LABEL} from '../../src/lib/constants.js'

const skip = await clusterSkipReason()
const NAMESPACE = 'karp-system'
/** The node whose API server certificate starts without the VIP, as on a cluster set up before karp. */
const NO_VIP_NODE = 'node3'
const log = (line: string) => console.error(`# journey: ${line}`)

interface PodList {
  items: {
    metadata: {name: string; creationTimestamp: string; labels?: Record<string, string>}
    spec: {nodeName?: string}
    status: {
      phase?: string
      conditions?: {type: string; status: string; reason?: string}[]
      containerStatuses?: {restartCount: number; ready: boolean; state?: {running?: {startedAt?: string}}}[]
    }
  }[]
}

/** Every handover went to one node: no two backups promoted together (the agents rank themselves). */
function oneBackupTookOver(seen: HoldersSeen, what: string): void {
  assert.deepEqual(seen.promotedTogether, [], `two backups took the VIP together after ${what} (samples every 100 ms)`)
}

function describeOutage(probes: Probe[]): string {
  const all = outages(probes)
  return `longest client outage ${(longestOutage(probes) / 1000).toFixed(2)} s (${all.reduce((n, o) => n + o.failed, 0)} of ${probes.length} requests failed)`
}

describe('the user journey on a real HA cluster: install, hold, fail over, keep kubectl working', {skip}, () => {
  let cluster: Cluster
  let holder = ''
  let imageRef = ''
  let hostBefore: HostState
  const step = labSteps(() => cluster, log)

  const karpJson = async <T>(args: string[], expectedExit = 0): Promise<T> => {
    const r = await cluster.karp([...args, '--json'])
    assert.equal(r.exitCode, expectedExit, `karp ${args.join(' ')} exited ${r.exitCode}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
    return JSON.parse(r.stdout) as T
  }

  /** Waits until exactly one node holds the VIP (other than `except`), still so 1.5 s later; that node. */
  const oneHolder = async (timeoutMs = 40_000, except?: string): Promise<string> => {
    let holders: string[] = []
    await waitFor(
      `exactly one VIP holder${except ? ` other than ${except}` : ''}`,
      timeoutMs,
      async () => {
        holders = await cluster.holders()
        if (holders.length !== 1 || holders[0] === except) return false
        await sleep(1500)
        const again = await cluster.holders()
        return again.length === 1 && again[0] === holders[0]
      },
      () => `holders: [${holders.join(', ')}]`,
    )
    return holders[0] as string
  }

  /**
   * karp status until it names exactly one holder other than `except`, healthy; that holder. Before step 3
   * fixes NO_VIP_NODE's certificate (`certFixed` false), that node holding the VIP is degraded instead, by
   * exactly that certificate: status reads the certificate served at the VIP.
   */
  const statusHolder = async (except?: string, certFixed = true): Promise<string> => {
    let last: StatusResult | undefined
    let exit = -1
    await waitFor(
      `karp status naming one holder${except ? ` other than ${except}` : ''}`,
      60_000,
      async () => {
        const r = await cluster.karp(['status', '--json'])
        exit = r.exitCode
        try {
          last = JSON.parse(r.stdout) as StatusResult
        } catch {
          return false
        }
        const install = last.installs?.[0]
        if (install?.holder !== 'one' || install.holders[0] === except) return false
        if (!certFixed && install.holders[0] === NO_VIP_NODE) {
          return (
            r.exitCode === 4 &&
            install.state === 'degraded' &&
            install.problems.length === 1 &&
            /^VIP \S+ is not an IP SAN /.test(install.problems[0]!)
          )
        }
        return r.exitCode === 0 && last.verdict === 'healthy'
      },
      () => {
        const install = last?.installs?.[0]
        return `exit ${exit}: ${JSON.stringify(install ? {holders: install.holders, state: install.state, problems: install.problems} : last)}`
      },
      1000,
    )
    const install = last!.installs[0]!
    assert.equal(install.vipProbe?.reachable, true, 'karp status reaches the VIP from the client')
    return install.holders[0]!
  }

  const pods = async (): Promise<PodList['items']> => {
    const r = await cluster.kubectl(['get', 'pods', '-n', NAMESPACE, '-o', 'json'])
    assert.equal(r.exitCode, 0, r.stderr)
    return (JSON.parse(r.stdout) as PodList).items
  }
  const podOn = async (node: string) => {
    const pod = (await pods()).find((p) => p.spec.nodeName === node)
    assert.ok(pod, `an agent pod on ${node}`)
    return pod
  }

  /** The command line of the ucarp that the agent on `node` runs. */
  const ucarpArgs = async (node: string): Promise<string> => {
    const r = await cluster.kubectl([
      'exec',
      '-n',
      NAMESPACE,
      (await podOn(node)).metadata.name,
      '--',
      'sh',
      '-c',
      'tr "\\0" " " </proc/$(cat /run/karp/ucarp.pid)/cmdline',
    ])
    return r.exitCode === 0 ? r.stdout : `exit ${r.exitCode}: ${r.stderr}`
  }

  /** The agent on `node` runs in a container started after `since` and is Ready (a status from before a power loss says Ready too). */
  const agentBackSince = async (node: string, since: number): Promise<void> => {
    await waitFor(
      `the agent on ${node} started again and Ready`,
      90_000,
      async () => {
        const status = (await podOn(node)).status.containerStatuses?.[0]
        const started = Date.parse(status?.state?.running?.startedAt ?? '')
        // startedAt has whole seconds.
        return status?.ready === true && started >= Math.floor(since / 1000) * 1000
      },
      undefined,
      1000,
    )
  }

  /** kubectl through the VIP (the rewritten kubeconfig) succeeds within the timeout. */
  const kubectlThroughVipWorks = async (timeoutMs = 15_000): Promise<void> => {
    let last = ''
    await waitFor(
      'kubectl get nodes through the VIP',
      timeoutMs,
      async () => {
        const r = await cluster.kubectl(['get', 'nodes', '-o', 'name', '--request-timeout=2s'])
        last = r.stderr || r.stdout
        return r.exitCode === 0 && r.stdout.trim().split('\n').length === cluster.allNodes.length
      },
      () => last,
    )
  }

  before(async () => {
    hostBefore = hostBeforeLabs()
    const image = await agentImage()
    imageRef = `${image.name}:${image.tag}@${image.indexDigest}`
    cluster = await Cluster.start({log, certWithoutVip: [NO_VIP_NODE], workers: 1})
    const memory = cluster.allNodes.map((n) => `${n.name} ${(cluster.nodeRssKb(n.name) / 1024).toFixed(0)} MB`).join(', ')
    log(
      `lab up in ${cluster.startup.total.toFixed(1)} s (control plane ${cluster.startup.controlPlane.toFixed(1)} s, nodes ${cluster.startup.nodes.toFixed(1)} s); RSS per node: ${memory}`,
    )
  })

  after(async () => {
    if (!cluster) return
    const {prefix, dir} = {prefix: cluster.net.prefix, dir: cluster.dir}
    await cluster.stop()
    // Teardown leaves nothing: no namespace, no mount under the lab, no process of it, host sysctls as before.
    const namespaces = readFileSync('/proc/self/mountinfo', 'utf8')
    assert.ok(!namespaces.includes(dir), `no mount left under ${dir}`)
    const left = readdirSync('/run/netns').filter((ns) => ns.startsWith(prefix))
    assert.deepEqual(left, [], 'no lab namespace left')
    // Put back now, or by the lab of another test process still running (its ledger holds the same record).
    const {heldBy, ...hostAfter} = hostAfterLabs()
    assert.ok(!heldBy.includes(process.pid))
    assert.deepEqual(hostAfter, hostBefore, 'host sysctls and directories as they were')
  })

  step("1. karp install: refused for a VIP off the nodes' subnet, then the real kubelets run the agents", async () => {
    const wrong = await cluster.karp(['install', '--vip', '10.88.0.10', '--image', imageRef, '--yes'])
    assert.equal(wrong.exitCode, 4, wrong.stderr)
    for (const n of cluster.nodes) assert.match(wrong.stderr, new RegExp(n.host.ip.replaceAll('.', '\\.')))
    assert.equal((await cluster.kubectl(['get', 'daemonset', 'karp', '-n', NAMESPACE])).exitCode, 1, 'nothing applied')

    const result = await karpJson<InstallResult>(['install', '--vip', VIP, '--image', imageRef, '--yes', '--timeout', '3m'])
    assert.equal(result.vip, VIP)
    // The control-plane nodes, by their kubeadm label: the worker, a Ready node of the same subnet, is left alone.
    assert.deepEqual(
      [...result.nodes].sort(),
      cluster.nodes.map((n) => n.name),
    )
    assert.equal(result.rollout?.available, cluster.nodes.length)
    const nodesOfPods = (await pods()).map((p) => p.spec.nodeName).sort()
    assert.deepEqual(
      nodesOfPods,
      cluster.nodes.map((n) => n.name),
      `agents run on the control-plane nodes only, not on ${cluster.workers.map((w) => w.name).join(', ')}`,
    )
    for (const pod of await pods()) {
      assert.equal(pod.status.phase, 'Running', `${pod.metadata.name} runs`)
      assert.equal(pod.status.containerStatuses?.[0]?.ready, true, `${pod.metadata.name} is ready (its probes pass)`)
    }
    holder = await oneHolder()
    log(`VIP ${VIP} held by ${holder}`)
    assert.equal(await statusHolder(undefined, false), holder, 'karp status names the node that has the VIP')

    // Ranks (agent/README.md): the backups rank themselves by node name; rank 0 runs ucarp as plain ucarp
    // would with skew 1, rank 1 waits 4 advertisement periods more and keeps its per-node skew.
    const [first, second] = cluster.nodes.map((n) => n.name).filter((n) => n !== holder)
    let args: string[] = []
    await waitFor(
      "the backups running ucarp with their ranks' dead ratio and skew",
      60_000,
      async () => {
        args = await Promise.all([first!, second!].map(ucarpArgs))
        return /--advskew=1 --deadratio=3 /.test(args[0]!) && /--advskew=(?!1 )\d+ --deadratio=7 /.test(args[1]!)
      },
      () => args.join(' | '),
      1000,
    )
  })

  step('2. kubectl exec and logs reach the agents; they run with NET_ADMIN and NET_RAW only, read-only root, the Secret 0400', async () => {
    const secret = await cluster.kubectl(['get', 'secret', 'karp', '-n', NAMESPACE, '-o', 'jsonpath={.data.password}'])
    const password = Buffer.from(secret.stdout, 'base64').toString().trim()
    assert.ok(password.length >= 8, 'install generated a password')
    for (const pod of await pods()) {
      const status = await cluster.kubectl(['exec', '-n', NAMESPACE, pod.metadata.name, '--', 'cat', '/proc/1/status'])
      assert.equal(status.exitCode, 0, status.stderr)
      assert.match(status.stdout, /CapEff:\s+0000000000003000/, `${pod.metadata.name}: effective capabilities`)
      assert.match(status.stdout, /NoNewPrivs:\s+1/)
      const write = await cluster.kubectl(['exec', '-n', NAMESPACE, pod.metadata.name, '--', 'mkdir', '/karp-write-test'])
      assert.notEqual(write.exitCode, 0, 'the root filesystem is read-only')
      const mode = await cluster.kubectl(['exec', '-n', NAMESPACE, pod.metadata.name, '--', 'ls', '-lL', '/etc/karp/password'])
      assert.match(mode.stdout, /^-r-------- /, `the password file is 0400: ${mode.stdout}${mode.stderr}`)
      const logs = await cluster.kubectl(['logs', '-n', NAMESPACE, pod.metadata.name])
      assert.equal(logs.exitCode, 0, logs.stderr)
      assert.match(logs.stdout, /starting vip=10\.78\.0\.10/)
      // The health gate checks this node's own API server.
      assert.match(logs.stdout, /health=https:\/\/127\.0\.0\.1:6443\/readyz/)
      assert.ok(!logs.stdout.includes(password), 'the CARP password never appears in the log')
      // Only the agent's and ucarp's own lines: a shell's complaint ("...sh: line 53: can't open ...") is a bug.
      const shellErrors = (logs.stdout + logs.stderr).split('\n').filter((line) => /^\S*sh: /.test(line))
      assert.deepEqual(shellErrors, [], `${pod.metadata.name} printed shell errors`)
    }
  })

  step('3. check-cert: the node without the VIP in its certificate fails with kubeadm advice; fixed, all four are fine', async () => {
    const failing = await karpJson<CheckCertResult>(['check-cert'], 4)
    const bad = failing.endpoints.filter((e) => e.status !== 'ok').map((e) => e.endpoint)
    // The VIP serves the holder's certificate: bad too when that node holds it (the election decides).
    const expected = [
      `${cluster.node(NO_VIP_NODE).host.ip}:${DEFAULT_API_PORT}`,
      ...(holder === NO_VIP_NODE ? [`${VIP}:${DEFAULT_API_PORT}`] : []),
    ]
    assert.deepEqual(bad.sort(), expected.sort(), JSON.stringify(failing.endpoints.map((e) => [e.endpoint, e.status])))
    assert.equal(failing.advice?.distribution, 'kubeadm', JSON.stringify(failing.distribution))
    assert.match(failing.advice?.steps.join('\n') ?? '', /certSANs|apiserver/)
    // What the advice leads to: a serving certificate with the VIP; the API server reloads it from disk.
    cluster.controlPlane.reissueServingCert(NO_VIP_NODE)
    let fine: CheckCertResult | undefined
    await waitFor(
      'check-cert fine on the VIP and all three nodes',
      30_000,
      async () => {
        const r = await cluster.karp(['check-cert', '--json'])
        fine = JSON.parse(r.stdout) as CheckCertResult
        return r.exitCode === 0
      },
      () => JSON.stringify(fine?.endpoints.map((e) => [e.endpoint, e.status])),
      1000,
    )
    assert.equal(fine!.endpoints.length, 4, 'the VIP and every node')
  })

  step('4. kubeconfig rewrite: kubectl goes through the VIP', async () => {
    const rewrite = await cluster.karp(['kubeconfig', 'rewrite', '--vip', VIP, '--kubeconfig', cluster.kubeconfig])
    assert.equal(rewrite.exitCode, 0, rewrite.stderr)
    const config = parse(readFileSync(cluster.kubeconfig, 'utf8')) as {clusters: {cluster: {server: string}}[]}
    assert.deepEqual(
      config.clusters.map((c) => c.cluster.server),
      [`https://${VIP}:${DEFAULT_API_PORT}`],
    )
    await kubectlThroughVipWorks()
  })

  step('5. power loss of the holder: the VIP moves, etcd keeps quorum, kubectl resumes; back, it rejoins as backup', async () => {
    const lost = holder
    const probe = cluster.startProbe()
    // A person watching: its watches go through the VIP, to the node about to lose power.
    const statusWatch = cluster.startKarp(['status', '--watch', '--json', '--no-probe'])
    const takeover = watchHolders(() => cluster.holders())
    await sleep(1000)
    await cluster.powerOff(lost)
    const lostAt = Date.now()
    log(`power loss of ${lost}`)
    holder = await waitForOther(lost)
    await kubectlThroughVipWorks()
    await sleep(5000)
    oneBackupTookOver(await takeover.stop(), `${lost}'s power loss`)
    const write = await cluster.kubectl(['create', 'configmap', 'karp-journey-quorum', '-n', 'default', '--from-literal=node=' + lost])
    assert.equal(write.exitCode, 0, `a write through the VIP with a member down (etcd quorum): ${write.stderr}`)
    // The lost node's pod still shows Running with its last report (until the node controller notices):
    // karp status must name the survivor, and say why it does not believe the other.
    let reported: StatusResult['installs'][number] | undefined
    await waitFor(
      `karp status naming ${holder} the holder while ${lost} is down`,
      30_000,
      async () => {
        const r = await cluster.karp(['status', '--json'])
        try {
          reported = (JSON.parse(r.stdout) as StatusResult).installs[0]
        } catch {
          return false
        }
        return reported?.holder === 'one' && reported.holders[0] === holder
      },
      () => JSON.stringify(reported && {holders: reported.holders, problems: reported.problems}),
      1000,
    )
    assert.ok(
      reported?.problems.some((p) => p.startsWith(`node ${lost} last reported holding the VIP, but ${holder} took it at `)),
      JSON.stringify(reported?.problems),
    )
    // status --watch comes to the same verdict: it notices its dead connections (at most 30 s of silence),
    // watches on through the new holder, and reads the two nodes' Leases again every 10 s.
    let watched: StatusResult['installs'][number] | undefined
    await waitFor(
      `karp status --watch naming ${holder} the holder while ${lost} is down`,
      90_000,
      () => {
        const lines = statusWatch
          .output()
          .split('\n')
          .filter((l) => l.startsWith('{'))
        watched = lines.length > 0 ? (JSON.parse(lines.at(-1) as string) as StatusResult).installs[0] : undefined
        return (
          watched?.holder === 'one' &&
          watched.holders[0] === holder &&
          watched.problems.some((p) => p.startsWith(`node ${lost} last reported holding the VIP`))
        )
      },
      () =>
        JSON.stringify(watched && {holders: watched.holders, problems: watched.problems}) +
        statusWatch
          .output()
          .split('\n')
          .filter((l) => !l.startsWith('{'))
          .join(' | '),
      1000,
    )
    log(`status --watch named ${holder} the holder ${((Date.now() - lostAt) / 1000).toFixed(1)} s after the power loss`)
    await statusWatch.stop()
    await sleep(1000)
    const down = await probe.stop()
    log(`power loss (${lost} -> ${holder}): ${describeOutage(down)}`)
    assert.ok(down.at(-1)?.ok, 'requests through the VIP succeed again')

    // The node comes back with whatever its eth0 kept: its agent must not leave a second holder behind.
    const watch = watchHolders(() => cluster.holders())
    const poweredOn = Date.now()
    await cluster.powerOn(lost)
    await cluster.node(lost).kube.waitReady(60_000)
    await agentBackSince(lost, poweredOn)
    assert.equal(await oneHolder(), holder, 'the survivor keeps the VIP')
    const seen = await watch.stop()
    log(`node back: two holders for at most ${seen.doubleMs} ms (sampled every 100 ms; target <= 1 s)`)
    assert.equal(seen.zeroAfterFirst, 0, 'the VIP was on some node at every sample')
    assert.ok(
      seen.samples.every((h) => h.length === 1 && h[0] === holder),
      `only ${holder} held the VIP while ${lost} came back: ${JSON.stringify(seen.samples.filter((h) => h.length !== 1).slice(0, 5))}`,
    )
    assert.equal(await statusHolder(), holder)
  })

  step("6. the holder's kube-apiserver dies: the agent gives the VIP up; back, the node is eligible and nothing flaps", async () => {
    const sick = holder
    const probe = cluster.startProbe()
    const takeover = watchHolders(() => cluster.holders())
    await sleep(1000)
    await cluster.killApiServer(sick)
    log(`killed the kube-apiserver of ${sick}`)
    holder = await waitForOther(sick)
    await kubectlThroughVipWorks()
    await sleep(5000)
    oneBackupTookOver(await takeover.stop(), `the death of ${sick}'s API server`)
    const outage = await probe.stop()
    log(`API server death (${sick} -> ${holder}): ${describeOutage(outage)} (target <= 4 s)`)
    assert.ok(outage.at(-1)?.ok, 'requests through the VIP succeed again')

    const watch = watchHolders(() => cluster.holders())
    await cluster.startApiServer(sick)
    await waitFor(
      `the agent on ${sick} eligible again`,
      60_000,
      async () =>
        (await cluster.kubectl(['logs', '-n', NAMESPACE, (await podOn(sick)).metadata.name, '--tail=20'])).stdout.includes(
          'health check passed',
        ),
      undefined,
      1000,
    )
    await sleep(5000)
    const seen = await watch.stop()
    assert.ok(
      seen.samples.every((h) => h.length === 1 && h[0] === holder),
      `no flap after the API server came back: ${JSON.stringify(seen.samples.filter((h) => h.length !== 1 || h[0] !== holder).slice(0, 5))}`,
    )
  })

  step("7. graceful: deleting the holder's pod hands the VIP over", async () => {
    const from = holder
    const pod = await podOn(from)
    const probe = cluster.startProbe()
    const takeover = watchHolders(() => cluster.holders())
    await sleep(1000)
    const del = await cluster.kubectl(['delete', 'pod', '-n', NAMESPACE, pod.metadata.name, '--wait=false'])
    assert.equal(del.exitCode, 0, del.stderr)
    holder = await waitForOther(from)
    await sleep(5000)
    oneBackupTookOver(await takeover.stop(), `the graceful delete on ${from}`)
    await waitFor(
      `a new agent on ${from}`,
      60_000,
      async () => {
        const p = await podOn(from)
        return p.metadata.name !== pod.metadata.name && p.status.containerStatuses?.[0]?.ready === true
      },
      undefined,
      1000,
    )
    const outage = await probe.stop()
    log(`graceful delete of ${pod.metadata.name} (${from} -> ${holder}): ${describeOutage(outage)} (target 0)`)
    assert.ok(outage.at(-1)?.ok)
    assert.equal(await statusHolder(), holder)
  })

  step('8. node maintenance: kubectl drain hands the VIP over before the node shuts down', async () => {
    const drained = holder
    const probe = cluster.startProbe()
    const takeover = watchHolders(() => cluster.holders())
    await sleep(1000)
    const drain = await cluster.kubectl(['drain', drained, '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=60s'], 90_000)
    assert.equal(drain.exitCode, 0, drain.stderr)
    holder = await waitForOther(drained)
    await sleep(5000)
    oneBackupTookOver(await takeover.stop(), `the drain of ${drained}`)
    // What karp status shows a user before they shut the node down.
    assert.equal(await statusHolder(drained), holder)
    await cluster.powerOff(drained)
    log(`drained ${drained}, then powered it off`)
    await sleep(4000)
    const outage = await probe.stop()
    log(`drain + shutdown (${drained} -> ${holder}): ${describeOutage(outage)} (target <= 0.5 s)`)
    assert.ok(outage.at(-1)?.ok)
    assert.deepEqual(await cluster.holders(), [holder], 'the drained node let go of the VIP before it went down')

    const poweredOn = Date.now()
    await cluster.powerOn(drained)
    await cluster.node(drained).kube.waitReady(60_000)
    const uncordon = await cluster.kubectl(['uncordon', drained])
    assert.equal(uncordon.exitCode, 0, uncordon.stderr)
    await agentBackSince(drained, poweredOn)
    assert.equal(await oneHolder(), holder)
  })

  step('9. rolling upgrade to a new password: one node at a time, one holder, every pod on the new password', async () => {
    const before = new Set((await pods()).map((p) => p.metadata.name))
    const probe = cluster.startProbe()
    const watch = watchHolders(() => cluster.holders())
    const result = await karpJson<InstallResult>([
      'install',
      '--vip',
      VIP,
      '--image',
      imageRef,
      '--password',
      'rolled-over-9',
      '--yes',
      '--timeout',
      '5m',
    ])
    assert.equal(result.rollout?.updated, cluster.nodes.length)
    assert.deepEqual(
      result.warnings.filter((w) => /password/.test(w)),
      [],
      'nothing to warn about a password change',
    )
    await oneHolder()
    const seen = await watch.stop()
    const outage = await probe.stop()
    log(`rolling upgrade: two holders for at most ${seen.doubleMs} ms; ${describeOutage(outage)} (target <= 3 s)`)
    assert.equal(seen.zeroAfterFirst, 0, 'the VIP was on some node at every sample')
    oneBackupTookOver(seen, 'the rolling upgrade')
    const now = await pods()
    assert.ok(
      now.every((p) => !before.has(p.metadata.name)),
      'every pod was replaced',
    )
    for (const pod of now) {
      const same = await cluster.kubectl([
        'exec',
        '-n',
        NAMESPACE,
        pod.metadata.name,
        '--',
        'sh',
        '-c',
        'test "$(cat /etc/karp/password)" = rolled-over-9',
      ])
      assert.equal(same.exitCode, 0, `${pod.metadata.name} has the new password`)
    }
    // An agent on the new password that heard the old group's master while a node held the VIP only listened
    // (agent/README.md). A pod is Ready only once its agent runs ucarp (healthcheck.sh ready), so each new
    // agent overlaps the old group; whether it heard the old master before that master's node was rolled
    // depends on timing. The agent lab's test rolls one out step by step and asserts it.
    const logs = await Promise.all(now.map(async (p) => (await cluster.kubectl(['logs', '-n', NAMESPACE, p.metadata.name])).stdout))
    log(
      `rolling upgrade: ${logs.filter((l) => / listening=true/.test(l)).length} of ${logs.length} agents on the new password listened to the old group`,
    )
    holder = await statusHolder()
  })

  step('10. an agent crash (SIGKILL in the container): the kubelet restarts it, karp status shows the restart', async () => {
    const node = cluster.nodes.find((n) => n.name !== holder)!.name
    const killed = await cluster.killAgent(node)
    assert.ok(killed >= 2, `the entrypoint and ucarp at least (${killed} processes)`)
    let restarts = 0
    await waitFor(
      `karp status showing the restart on ${node}`,
      90_000,
      async () => {
        const r = await cluster.karp(['status', '--json'])
        const agent = (JSON.parse(r.stdout) as StatusResult).installs[0]?.agents.find((a) => a.node === node)
        restarts = agent?.pod?.restarts ?? 0
        return restarts >= 1 && agent?.pod?.ready === true
      },
      () => `restarts ${restarts}`,
      1000,
    )
    assert.equal(await oneHolder(), holder, "a backup's crash does not move the VIP")
  })

  step('11. karp uninstall: no VIP on any node, no karp object, the namespace gone', async () => {
    // Through the VIP, which leaves with the agents: karp works through a control-plane node's own address.
    const result = await karpJson<UninstallResult>(['uninstall', '--yes'])
    assert.equal(result.podsRemaining, 0)
    assert.match(result.via ?? '', /^https:\/\/10\.78\.0\.1[1-3]:6443$/, 'uninstall went around the VIP')
    // The kubeconfig as it was before the rewrite (its backup) points at node1, which still answers.
    const backups = readdirSync(dirname(cluster.kubeconfig)).filter((f) => f.startsWith(`${basename(cluster.kubeconfig)}.karp-backup-`))
    assert.equal(backups.length, 1, `one backup of the rewritten kubeconfig: ${backups.join(', ')}`)
    const direct = join(dirname(cluster.kubeconfig), backups[0]!)
    await waitFor('no VIP on any node', 60_000, async () => (await cluster.holders()).length === 0, undefined, 500)
    await waitFor(
      `namespace ${NAMESPACE} gone`,
      60_000,
      async () => (await cluster.kubectl(['--kubeconfig', direct, 'get', 'namespace', NAMESPACE])).exitCode === 1,
      undefined,
      1000,
    )
    const leftovers = await cluster.kubectl([
      '--kubeconfig',
      direct,
      'get',
      'clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings',
      '-l',
      `${MANAGED_BY_LABEL}=${MANAGED_BY}`,
      '-o',
      'name',
    ])
    assert.equal(leftovers.exitCode, 0, leftovers.stderr)
    assert.equal(leftovers.stdout.trim(), '', 'no cluster-scoped karp object left')
    const status = await cluster.karp(['status', '--json', '--kubeconfig', direct])
    assert.equal(status.exitCode, 4, status.stderr)
    assert.equal((JSON.parse(status.stdout) as StatusResult).verdict, 'not-installed')
  })

  /** The VIP on exactly one node other than `from`; waits for it (the take-over itself is the measured part). */
  async function waitForOther(from: string): Promise<string> {
    return oneHolder(60_000, from)
  }
})
