// Role reporting against the real control plane (test/global-setup.ts): the agents in the netns lab label
// their pods karp.io/role=master|backup and post an Event per transition, with a service-account token
// that has exactly the RBAC rules templates/rbac.yaml grants. The API server listens on loopback of the
// root namespace; a socat pair bridges it through a Unix socket to 127.0.0.1:6445 inside each node, where
// the agent finds it as KUBERNETES_SERVICE_HOST/PORT (no lab address ever reaches the root namespace).
import assert from 'node:assert/strict'
import {copyFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {execa} from 'execa'
import {clusterOrSkip, uniqueName} from '../integration/cluster-env.js'
import {Lab, labSkipReason, waitFor} from './lab.js'

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

  async function podRoles(): Promise<Record<string, string | undefined>> {
    const out = await kubectl(['get', 'pods', '-n', namespace, '-o', 'json'])
    const pods = JSON.parse(out.stdout) as {items: {metadata: {name: string; labels?: Record<string, string>; annotations?: Record<string, string>}}[]}
    for (const p of pods.items) {
      // Every role label comes with the time it was reported, which karp status shows and judges staleness by.
      const role = p.metadata.labels?.['karp.io/role']
      const at = p.metadata.annotations?.['karp.io/role-changed-at']
      if (role) assert.ok(at && Math.abs(Date.now() - Date.parse(at)) < 10 * 60_000, `${p.metadata.name}: role ${role} without a recent karp.io/role-changed-at (${at})`)
    }
    return Object.fromEntries(pods.items.map((p) => [p.metadata.name, p.metadata.labels?.['karp.io/role']]))
  }

  async function events(): Promise<KubeEvent[]> {
    const out = await kubectl(['get', 'events', '-n', namespace, '-o', 'json'])
    return (JSON.parse(out.stdout) as {items: KubeEvent[]}).items
  }

  async function waitForRoles(master: string): Promise<void> {
    let roles: Record<string, string | undefined> = {}
    await waitFor(`pod labels naming ${master} master`, 20_000, async () => {
      roles = await podRoles()
      return lab.nodes.every((n) => roles[`karp-${n.name}`] === (n.name === master ? 'master' : 'backup'))
    }, () => JSON.stringify(roles))
  }

  before(async () => {
    await kubectl(['create', 'namespace', namespace])
    await kubectl(['create', 'serviceaccount', 'karp', '-n', namespace])
    const role = {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: {name: 'karp', namespace},
      rules: [
        {apiGroups: [''], resources: ['pods'], verbs: ['get', 'patch']},
        {apiGroups: [''], resources: ['events'], verbs: ['create']},
      ],
    }
    await kubectl(['apply', '-f', '-'], JSON.stringify(role))
    await kubectl(['create', 'rolebinding', 'karp', '--role=karp', `--serviceaccount=${namespace}:karp`, '-n', namespace])
    const token = (await kubectl(['create', 'token', 'karp', '-n', namespace, '--duration=1h'])).stdout.trim()

    lab = await Lab.create(3)
    for (const n of lab.nodes) {
      const pod = {apiVersion: 'v1', kind: 'Pod', metadata: {name: `karp-${n.name}`, namespace}, spec: {containers: [{name: 'agent', image: 'karp.invalid/agent:test'}]}}
      await kubectl(['apply', '-f', '-'], JSON.stringify(pod))
      writeFileSync(join(n.dir, 'token'), `${token}\n`, {mode: 0o600})
      copyFileSync(cluster.caFile, join(n.dir, 'ca.crt'))
    }
    const socket = join(lab.dir, 'api.sock')
    const api = new URL(cluster.server)
    lab.spawnHere(['socat', `UNIX-LISTEN:${socket},fork,unlink-early`, `TCP:${api.hostname}:${api.port}`], join(lab.dir, 'socat.log'))
    for (const n of lab.nodes) {
      lab.spawnIn(n.ns, ['socat', `TCP-LISTEN:${FORWARD_PORT},bind=127.0.0.1,fork,reuseaddr`, `UNIX-CONNECT:${socket}`], {}, join(n.dir, 'socat.log'))
      lab.startService(n)
    }
    for (const n of lab.nodes) await lab.waitForService(n)
    for (const n of lab.nodes) {
      lab.startAgent(n, {env: {KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: FORWARD_PORT, POD_NAMESPACE: namespace}})
    }
  })

  after(async () => {
    await lab?.destroy()
    await kubectl(['delete', 'namespace', namespace, '--wait=false']).catch(() => undefined)
  })

  it('labels the holder master and the others backup, and records each transition as an Event', async () => {
    const holder = await lab.waitForOneHolder()
    await waitForRoles(holder)
    await waitFor('a BecameMaster event for the holder', 20_000, async () =>
      (await events()).some((e) => e.reason === 'BecameMaster' && e.involvedObject.name === `karp-${holder}`),
    )
    const backups = (await events()).filter((e) => e.reason === 'BecameBackup')
    for (const n of lab.nodes) assert.ok(backups.some((e) => e.involvedObject.name === `karp-${n.name}`), `no BecameBackup event for ${n.name}`)
    const master = (await events()).find((e) => e.reason === 'BecameMaster' && e.involvedObject.name === `karp-${holder}`)
    assert.match(master?.message ?? '', new RegExp(`^${holder} is master for 10\\.77\\.0\\.10: elected`))
    for (const n of lab.nodes) assert.doesNotMatch(lab.agentLog(n), /warning=report/)
  })

  it('moves the master label with the VIP on a graceful handover', async () => {
    const old = await lab.waitForOneHolder()
    await lab.stopAgent(lab.node(old))
    const holder = await lab.waitForOneHolder(20_000, old)
    let roles: Record<string, string | undefined> = {}
    await waitFor(`${holder} labelled master and ${old} backup`, 20_000, async () => {
      roles = await podRoles()
      return roles[`karp-${holder}`] === 'master' && roles[`karp-${old}`] === 'backup'
    }, () => JSON.stringify(roles))
    assert.equal(Object.values(roles).filter((r) => r === 'master').length, 1)
  })
})
