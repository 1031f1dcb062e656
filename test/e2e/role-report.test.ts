// Role reporting against the real control plane (test/global-setup.ts): the agents in the netns lab report
// the condition karp.io/role (reason Master|Backup) in their pods' status and post an Event per transition,
// each with a service-account token bound to its own pod, under the Role and admission policy karp renders.
// The API server listens on loopback of the
// root namespace; a socat pair bridges it through a Unix socket to 127.0.0.1:6445 inside each node, where
// the agent finds it as KUBERNETES_SERVICE_HOST/PORT (no lab address ever reaches the root namespace).
import assert from 'node:assert/strict'
import {copyFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {execa} from 'execa'
import {validateVipInput} from '../../src/lib/config/vip-config.js'
import {renderManifests} from '../../src/lib/manifests/render.js'
import {clusterOrSkip, uniqueName} from '../integration/cluster-env.js'
import {killGroup, Lab, labSkipReason, waitFor, type LabNode, type Proc} from '../../lab/agent-lab.js'
import {ROLE_CONDITION} from '../../src/lib/constants.js'

const skip = labSkipReason()
const cluster = clusterOrSkip()
const FORWARD_PORT = '6445'

interface KubeEvent {
  reason: string
  message: string
  involvedObject: {name: string}
}

describe('role reporting through a real API server', {skip: skip || cluster.skip}, () => {
  let lab: Lab
  const namespace = uniqueName('karp-e2e')
  const kubectl = (args: string[], input?: string) =>
    execa(join(cluster.binDir, 'kubectl'), ['--kubeconfig', cluster.kubeconfig, ...args], {input})

  type Condition = {type: string; status: string; reason?: string; lastTransitionTime?: string}
  async function podRoles(): Promise<Record<string, string | undefined>> {
    const out = await kubectl(['get', 'pods', '-n', namespace, '-o', 'json'])
    const pods = JSON.parse(out.stdout) as {
      items: {metadata: {name: string; labels?: Record<string, string>}; status?: {conditions?: Condition[]}}[]
    }
    const roles: Record<string, string | undefined> = {}
    for (const p of pods.items) {
      const role = p.status?.conditions?.find((c) => c.type === ROLE_CONDITION)
      // Every role comes with the time it changed, which karp status shows and judges staleness by.
      if (role) {
        const at = role.lastTransitionTime
        assert.ok(
          at && Math.abs(Date.now() - Date.parse(at)) < 10 * 60_000,
          `${p.metadata.name}: role ${role.reason} without a recent lastTransitionTime (${at})`,
        )
        assert.equal(role.status, 'True')
      }
      assert.equal(p.metadata.labels?.[ROLE_CONDITION], undefined, 'no role label: the agent may not change labels')
      roles[p.metadata.name] = role?.reason?.toLowerCase()
    }
    return roles
  }

  async function events(): Promise<KubeEvent[]> {
    const out = await kubectl(['get', 'events', '-n', namespace, '-o', 'json'])
    return (JSON.parse(out.stdout) as {items: KubeEvent[]}).items
  }

  async function waitForRoles(master: string): Promise<void> {
    let roles: Record<string, string | undefined> = {}
    await waitFor(
      `pod conditions naming ${master} master`,
      20_000,
      async () => {
        roles = await podRoles()
        return lab.nodes.every((n) => roles[`karp-${n.name}`] === (n.name === master ? 'master' : 'backup'))
      },
      () => JSON.stringify(roles),
    )
  }

  // What karp ships for the agent's identity: its ServiceAccount, Role, RoleBinding and admission policy.
  const identity = renderManifests({...validateVipInput({namespace}).settings, vip: '10.77.0.10', password: 'unused'}).filter((o) =>
    ['ServiceAccount', 'Role', 'RoleBinding', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding'].includes(o.kind),
  )

  before(async () => {
    await kubectl(['create', 'namespace', namespace])
    await kubectl(['apply', '-f', '-'], JSON.stringify({apiVersion: 'v1', kind: 'List', items: identity}))

    lab = await Lab.create(3)
    for (const n of lab.nodes) {
      const name = `karp-${n.name}`
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {name, namespace},
        spec: {serviceAccountName: 'karp', containers: [{name: 'agent', image: 'karp.invalid/agent:test'}]},
      }
      await kubectl(['apply', '-f', '-'], JSON.stringify(pod))
      // As the kubelet mounts it: bound to the pod, so the policy lets the agent report on this pod only.
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
    lab.spawnHere(['socat', `UNIX-LISTEN:${socket()},fork,unlink-early`, `TCP:${api.hostname}:${api.port}`], join(lab.dir, 'socat.log'))
    for (const n of lab.nodes) {
      startForwarder(n)
      lab.startService(n)
    }
    for (const n of lab.nodes) await lab.waitForService(n)
    for (const n of lab.nodes) startAgent(n)
  })

  const socket = () => join(lab.dir, 'api.sock')
  const forwarders = new Map<string, Proc>()
  function startForwarder(n: LabNode): void {
    forwarders.set(
      n.name,
      lab.spawnIn(
        n.ns,
        ['socat', `TCP-LISTEN:${FORWARD_PORT},bind=127.0.0.1,fork,reuseaddr`, `UNIX-CONNECT:${socket()}`],
        {},
        join(n.dir, 'socat.log'),
      ),
    )
  }
  function startAgent(n: LabNode): void {
    lab.startAgent(n, {env: {KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: FORWARD_PORT, POD_NAMESPACE: namespace}})
  }

  after(async () => {
    await lab?.destroy()
    await kubectl(['delete', 'namespace', namespace, '--wait=false']).catch(() => undefined)
    for (const o of identity.filter((i) => !i.metadata.namespace))
      await kubectl(['delete', o.kind, o.metadata.name, '--ignore-not-found']).catch(() => undefined)
  })

  it('reports the holder master and the others backup, and records each transition as an Event', async () => {
    const holder = await lab.waitForOneHolder()
    await waitForRoles(holder)
    await waitFor('a BecameMaster event for the holder', 20_000, async () =>
      (await events()).some((e) => e.reason === 'BecameMaster' && e.involvedObject.name === `karp-${holder}`),
    )
    const backups = (await events()).filter((e) => e.reason === 'BecameBackup')
    for (const n of lab.nodes)
      assert.ok(
        backups.some((e) => e.involvedObject.name === `karp-${n.name}`),
        `no BecameBackup event for ${n.name}`,
      )
    const master = (await events()).find((e) => e.reason === 'BecameMaster' && e.involvedObject.name === `karp-${holder}`)
    assert.match(master?.message ?? '', new RegExp(`^${holder} is master for 10\\.77\\.0\\.10: elected`))
    for (const n of lab.nodes) assert.doesNotMatch(lab.agentLog(n), /warning=report/)
  })

  it('moves the master role with the VIP on a graceful handover', async () => {
    const old = await lab.waitForOneHolder()
    await lab.stopAgent(lab.node(old))
    const holder = await lab.waitForOneHolder(20_000, old)
    let roles: Record<string, string | undefined> = {}
    await waitFor(
      `${holder} reported master and ${old} backup`,
      20_000,
      async () => {
        roles = await podRoles()
        return roles[`karp-${holder}`] === 'master' && roles[`karp-${old}`] === 'backup'
      },
      () => JSON.stringify(roles),
    )
    assert.equal(Object.values(roles).filter((r) => r === 'master').length, 1)
  })

  it('sends a role report again until the API server takes it', async () => {
    const old = await lab.waitForOneHolder()
    // The reports' way to the API server is gone (after a power loss, the Service can route to a dead one).
    for (const proc of forwarders.values()) {
      killGroup(proc.pid, 'SIGKILL')
      await proc.exited
    }
    await lab.stopAgent(lab.node(old))
    const holder = lab.node(await lab.waitForOneHolder(20_000, old))
    await waitFor(`${holder.name} failed to report master`, 20_000, () =>
      /warning=report-role http=000 role=master/.test(lab.agentLog(holder)),
    )
    for (const n of lab.nodes) startForwarder(n)
    let roles: Record<string, string | undefined> = {}
    await waitFor(
      `${holder.name} reported master once the API server was back`,
      30_000,
      async () => {
        roles = await podRoles()
        return roles[`karp-${holder.name}`] === 'master'
      },
      () => JSON.stringify(roles),
    )
    assert.match(lab.agentLog(holder), /report_role=sent role=master failures=[1-9]/)
    startAgent(lab.node(old))
    await waitForRoles(holder.name)
  })
})
