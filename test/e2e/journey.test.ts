// The user's journey end to end (issue 8), on a real control plane and real agents in network namespaces
// (journey-lab.ts): install, one holder, check-cert, kubeconfig through the VIP, the holder's agent crashes,
// the holder's pod is deleted, uninstall. Every CLI command and kubectl run inside the client namespace.
// The client outages are printed, not asserted; that requests resume is asserted.
import assert from 'node:assert/strict'
import {readdirSync, readFileSync} from 'node:fs'
import {basename, dirname, join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {parse} from 'yaml'
import type {CheckCertResult} from '../../src/lib/cert/check-cert.js'
import type {InstallResult} from '../../src/lib/install/install.js'
import type {UninstallResult} from '../../src/lib/install/uninstall.js'
import type {StatusResult} from '../../src/lib/status/status.js'
import {API_PORT, JourneyLab, startProbe, VIP} from './journey-lab.js'
import {labSkipReason, waitFor} from '../../lab/agent-lab.js'

const skip = labSkipReason()
const NAMESPACE = 'karp-system'
const log = (line: string) => console.error(`# journey: ${line}`)

interface PodList {
  items: {metadata: {name: string; labels?: Record<string, string>}; spec: {nodeName?: string}; status: {phase?: string; conditions?: {type: string; reason?: string}[]}}[]
}

describe('the user journey: install, hold, fail over, keep kubectl working', {skip}, () => {
  let jl: JourneyLab
  let holder = ''
  // Each step builds on the one before: after a failure the rest would only fail for the same reason.
  let failedStep: string | undefined
  const step = (name: string, fn: () => Promise<void>) =>
    it(name, async (t) => {
      if (failedStep) return t.skip(`step "${failedStep}" failed`)
      try {
        await fn()
      } catch (err) {
        failedStep = name
        throw err
      }
    })

  const karpJson = async <T>(args: string[], expectedExit = 0): Promise<T> => {
    const r = await jl.karp([...args, '--json'])
    assert.equal(r.exitCode, expectedExit, `karp ${args.join(' ')} exited ${r.exitCode}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
    return r.json as T
  }

  /** karp status until it names exactly one holder other than `except`; that holder. */
  const statusHolder = async (except?: string): Promise<string> => {
    let last: StatusResult | undefined
    let exit = -1
    await waitFor(`karp status naming one holder${except ? ` other than ${except}` : ''}`, 30_000, async () => {
      const r = await jl.karp(['status', '--json'])
      exit = r.exitCode
      last = r.json as StatusResult
      const install = last?.installs[0]
      return r.exitCode === 0 && install?.holder === 'one' && install.holders.length === 1 && install.holders[0] !== except
    }, () => `exit ${exit}: ${JSON.stringify(last?.installs[0] ? {holders: last.installs[0].holders, state: last.installs[0].state, problems: last.installs[0].problems} : last)}`)
    const install = last!.installs[0]!
    assert.equal(last!.verdict, 'healthy')
    assert.equal(install.vipProbe?.reachable, true, 'karp status reaches the VIP from the client')
    return install.holders[0]!
  }

  const pods = async (): Promise<PodList['items']> => {
    const r = await jl.kubectl(['get', 'pods', '-n', NAMESPACE, '-o', 'json'])
    assert.equal(r.exitCode, 0, r.stderr)
    return (JSON.parse(r.stdout) as PodList).items
  }

  /** kubectl through the VIP (the rewritten kubeconfig) succeeds within the timeout. */
  const kubectlThroughVipWorks = async (timeoutMs = 10_000): Promise<void> => {
    let last = ''
    await waitFor('kubectl get nodes through the VIP', timeoutMs, async () => {
      const r = await jl.kubectl(['get', 'nodes', '-o', 'name', '--request-timeout=2s'])
      last = r.stderr || r.stdout
      return r.exitCode === 0 && r.stdout.split('\n').length === jl.lab.nodes.length
    }, () => last)
  }

  before(async () => {
    jl = await JourneyLab.start({log})
  })

  after(async () => {
    await jl?.stop()
  })

  step('1. karp install --vip: preflight sees the lab nodes\' addresses, then the DaemonSet rolls out', async () => {
    // A VIP off the nodes' subnet is refused with every node's address named, and nothing is applied.
    const wrong = await jl.karp(['install', '--vip', '10.88.0.10', '--yes'])
    assert.equal(wrong.exitCode, 4, wrong.stderr)
    for (const n of jl.lab.nodes) assert.match(wrong.stderr, new RegExp(`${n.name}.*${n.ip.replaceAll('.', '\\.')}|${n.ip.replaceAll('.', '\\.')}.*${n.name}`))
    assert.equal((await jl.kubectl(['get', 'daemonset', 'karp', '-n', NAMESPACE])).exitCode, 1, 'nothing applied')

    const result = await karpJson<InstallResult>(['install', '--vip', VIP, '--yes', '--timeout', '2m'])
    assert.equal(result.vip, VIP)
    assert.deepEqual([...result.nodes].sort(), jl.lab.nodes.map((n) => n.name))
    assert.equal(result.rollout?.available, jl.lab.nodes.length)
  })

  step('2. the kubelet runs the agent of every pod with the env and files the pod spec gives', async () => {
    await waitFor('an agent on every node', 30_000, async () => jl.lab.nodes.every((n) => jl.kubelet.agentOn(n.name)?.running))
    assert.deepEqual(jl.kubelet.errors, [])
    const secret = await jl.kubectl(['get', 'secret', 'karp', '-n', NAMESPACE, '-o', 'jsonpath={.data.password}'])
    const password = Buffer.from(secret.stdout, 'base64').toString()
    for (const pod of await pods()) {
      const node = jl.lab.node(pod.spec.nodeName!)
      const agent = jl.kubelet.agentOn(node.name)!
      const env = Object.fromEntries(
        readFileSync(`/proc/${agent.pid}/environ`, 'utf8')
          .split('\0')
          .filter(Boolean)
          .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
      )
      assert.equal(env.KARP_VIP, VIP)
      assert.equal(env.KARP_VHID, '10')
      assert.equal(env.NODE_NAME, node.name, 'downward API spec.nodeName')
      assert.equal(env.POD_NAME, pod.metadata.name, 'downward API metadata.name')
      assert.equal(env.POD_NAMESPACE, NAMESPACE)
      assert.equal(env.KARP_HEALTH_URL, `https://127.0.0.1:${API_PORT}/readyz`)
      assert.equal(readFileSync(env.KARP_PASSWORD_FILE!, 'utf8'), password, 'the Secret, mounted as a file')
      const token = readFileSync(env.KARP_TOKEN_FILE!, 'utf8')
      const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as {sub: string; 'kubernetes.io': {pod: {name: string}}}
      assert.equal(claims.sub, `system:serviceaccount:${NAMESPACE}:karp`)
      assert.equal(claims['kubernetes.io'].pod.name, pod.metadata.name, 'token bound to the pod')
    }
  })

  step('3-4. one holder; karp status and check-cert agree; kubeconfig rewrite points kubectl at the VIP', async () => {
    holder = await jl.lab.waitForOneHolder(30_000)
    log(`VIP ${VIP} held by ${holder}`)
    assert.equal(await statusHolder(), holder, 'karp status names the node that has the VIP')
    // Each agent reported its role in its own pod's status, with its pod-bound token, under karp's admission policy.
    const roles = Object.fromEntries((await pods()).map((p) => [p.spec.nodeName, p.status.conditions?.find((c) => c.type === 'karp.io/role')?.reason]))
    for (const n of jl.lab.nodes) assert.equal(roles[n.name], n.name === holder ? 'Master' : 'Backup', `role condition of ${n.name}`)

    const cert = await karpJson<CheckCertResult>(['check-cert'])
    assert.equal(cert.vip, VIP)
    assert.equal(cert.endpoints.length, jl.lab.nodes.length + 1, 'the VIP and every node')
    assert.ok(cert.endpoints.every((e) => e.status === 'ok'), JSON.stringify(cert.endpoints.map((e) => [e.endpoint, e.status])))

    const rewrite = await jl.karp(['kubeconfig', 'rewrite', '--vip', VIP, '--kubeconfig', jl.kubeconfig])
    assert.equal(rewrite.exitCode, 0, rewrite.stderr)
    const config = parse(readFileSync(jl.kubeconfig, 'utf8')) as {clusters: {cluster: {server: string}}[]}
    assert.deepEqual(config.clusters.map((c) => c.cluster.server), [`https://${VIP}:${API_PORT}`])
    await kubectlThroughVipWorks(2000)
  })

  step('5. the holder\'s agent is killed: requests through the VIP resume, karp status shows the new holder', async () => {
    const probe = startProbe(jl)
    await kubectlThroughVipWorks(2000)
    await jl.kubelet.killAgent(holder)
    log(`SIGKILLed the agent on ${holder}`)
    // The killed agent leaves the VIP where it was; a backup takes over, the restarted agent drops its stale VIP.
    const next = await jl.lab.waitForOneHolder(40_000, holder)
    assert.equal(await statusHolder(holder), next)
    // The crashed node's agent was restarted by its kubelet and reports backup; its old master role is history.
    const status = (await jl.karp(['status', '--json'])).json as StatusResult
    const crashed = status.installs[0]?.agents.find((a) => a.node === holder)?.pod
    assert.deepEqual([crashed?.restarts, crashed?.role, crashed?.stale], [1, 'backup', false], JSON.stringify(crashed))
    await kubectlThroughVipWorks()
    const result = await probe.stop()
    log(`holder crash (${holder} -> ${next}): longest client outage ${result.outageSeconds.toFixed(2)} s (${result.failures} of ${result.requests} requests failed)`)
    assert.ok(result.endsOk, 'requests through the VIP succeed again')
    holder = next
  })

  step('6. the holder\'s pod is deleted gracefully: requests through the VIP resume', async () => {
    const pod = (await pods()).find((p) => p.spec.nodeName === holder)
    assert.ok(pod, `a pod on ${holder}`)
    const probe = startProbe(jl)
    await kubectlThroughVipWorks(2000)
    const del = await jl.kubectl(['delete', 'pod', '-n', NAMESPACE, pod.metadata.name, '--wait=false'])
    assert.equal(del.exitCode, 0, del.stderr)
    const next = await jl.lab.waitForOneHolder(40_000, holder)
    // The DaemonSet replaces the pod; its agent joins as a backup.
    await waitFor(`a new agent on ${holder}`, 30_000, async () => Boolean(jl.kubelet.agentOn(holder)?.running))
    assert.equal(await statusHolder(holder), next)
    await kubectlThroughVipWorks()
    const result = await probe.stop()
    log(`graceful delete of ${pod.metadata.name} (${holder} -> ${next}): longest client outage ${result.outageSeconds.toFixed(2)} s (${result.failures} of ${result.requests} requests failed; target <= 0.5 s)`)
    assert.ok(result.endsOk, 'requests through the VIP succeed again')
    assert.deepEqual(await jl.lab.holders(), [next])
  })

  step('7. karp uninstall: pods gone, no VIP left on any node', async () => {
    const result = await karpJson<UninstallResult>(['uninstall', '--yes'])
    assert.equal(result.podsRemaining, 0)
    // The kubeconfig as it was before the rewrite (its backup) points at node1, which still answers.
    const backups = readdirSync(dirname(jl.kubeconfig)).filter((f) => f.startsWith(`${basename(jl.kubeconfig)}.karp-backup-`))
    assert.equal(backups.length, 1, `one backup of the rewritten kubeconfig: ${backups.join(', ')}`)
    const direct = join(dirname(jl.kubeconfig), backups[0]!)
    const left = await jl.kubectl(['--kubeconfig', direct, 'get', 'pods', '-n', NAMESPACE, '-o', 'name'])
    assert.equal(left.exitCode, 0, left.stderr)
    assert.equal(left.stdout.trim(), '', 'no agent pod left')
    // The pods are gone from the API at once (kwok); the agents get their grace period to hand over.
    await waitFor('every agent to exit', 30_000, async () => jl.kubelet.podNames().length === 0, () => jl.kubelet.podNames().join(', '))
    assert.deepEqual(await jl.lab.holders(), [], 'no node has the VIP')
    const status = await jl.karp(['status', '--json', '--kubeconfig', direct])
    assert.equal(status.exitCode, 4, status.stderr)
    assert.equal((status.json as StatusResult).verdict, 'not-installed')
    // And through the VIP nothing answers any more.
    const viaVip = await jl.kubectl(['get', '--raw', '/version', '--request-timeout=3s'])
    assert.notEqual(viaVip.exitCode, 0, 'nothing answers on the VIP')
  })
})
