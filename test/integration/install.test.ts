import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {chmod, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {AppsV1Api, CoreV1Api, KubeConfig, KubernetesObjectApi} from '@kubernetes/client-node'
import {execa} from 'execa'

import {controlPlaneNode, createFakeNodes, deleteFakeNodes, workerNode} from '../cluster/nodes.js'
import {karp, karpBin, karpOnTerminal} from '../helpers/karp.js'
import {clusterOrSkip} from './cluster-env.js'

const cluster = clusterOrSkip()

type Applied = {kind: string; name: string; namespace?: string; action: string}
type InstallJson = {vip: string; vhid: number; passwordSource: string; nodes: string[]; objects: Applied[]; rollout: {desired: number; available: number} | null; warnings: string[]}

// Nodes of this file only, picked by --node-selector so other suites' nodes never count.
const LABEL = 'karp-test/install'
const nodes = [
  controlPlaneNode('inst-cp1', '10.77.0.11', {[LABEL]: 'yes'}),
  controlPlaneNode('inst-cp2', '10.77.0.12', {[LABEL]: 'yes'}),
  controlPlaneNode('inst-cp3', '10.77.0.13', {[LABEL]: 'yes'}),
  workerNode('inst-w1', '10.77.0.21', {[LABEL]: 'worker'}),
]

describe('karp install / uninstall against a real control plane', {skip: cluster.skip}, () => {
  let kc: KubeConfig
  let core: CoreV1Api
  let apps: AppsV1Api
  let objects: KubernetesObjectApi
  let kubeconfig: string
  let userKubeconfig: string

  const base = (namespace: string, extra: string[] = []) => [
    '--kubeconfig', kubeconfig, '--namespace', namespace, '--timeout', '90s', '--json', ...extra,
    ...(extra.includes('--node-selector') ? [] : ['--node-selector', `${LABEL}=yes`]),
  ]
  const install = (namespace: string, extra: string[] = []) => karp(['install', ...base(namespace, extra)])

  async function resourceVersions(namespace: string, name = 'karp'): Promise<Record<string, string>> {
    const headers = [
      {apiVersion: 'v1', kind: 'Namespace', metadata: {name: namespace}},
      ...[['admissionregistration.k8s.io/v1', 'ValidatingAdmissionPolicy'], ['admissionregistration.k8s.io/v1', 'ValidatingAdmissionPolicyBinding'],
        ['rbac.authorization.k8s.io/v1', 'ClusterRole'], ['rbac.authorization.k8s.io/v1', 'ClusterRoleBinding']].map(([apiVersion, kind]) => ({
        apiVersion: apiVersion as string,
        kind: kind as string,
        metadata: {name: `karp-agent.${namespace}.${name}`},
      })),
      ...[['v1', 'ServiceAccount'], ['rbac.authorization.k8s.io/v1', 'Role'], ['rbac.authorization.k8s.io/v1', 'RoleBinding'], ['v1', 'Secret'], ['apps/v1', 'DaemonSet']].map(([apiVersion, kind]) => ({
        apiVersion: apiVersion as string,
        kind: kind as string,
        metadata: {name, namespace},
      })),
    ]
    const entries = await Promise.all(headers.map(async (h) => [h.kind, (await objects.read(h)).metadata?.resourceVersion ?? ''] as const))
    return Object.fromEntries(entries)
  }

  async function namespaceExists(namespace: string): Promise<boolean> {
    try {
      await core.readNamespace({name: namespace})
      return true
    } catch {
      return false
    }
  }

  before(async () => {
    kubeconfig = cluster.kubeconfig as string
    userKubeconfig = cluster.userKubeconfig as string
    kc = new KubeConfig()
    kc.loadFromFile(kubeconfig)
    core = kc.makeApiClient(CoreV1Api)
    apps = kc.makeApiClient(AppsV1Api)
    objects = KubernetesObjectApi.makeApiClient(kc)
    await createFakeNodes(kc, nodes)
  })

  after(async () => {
    if (kc) await deleteFakeNodes(kc, nodes.map((n) => n.name))
  })

  it('installs, rolls out on exactly the selected nodes, and reports every object created', async () => {
    const run = await install('inst-a', ['--vip', '10.77.0.250'])
    assert.equal(run.exitCode, 0, run.stderr)
    const result = run.json as InstallJson
    assert.deepEqual(result.objects.map((o) => [o.kind, o.action]), [
      ['Namespace', 'created'], ['ServiceAccount', 'created'], ['ValidatingAdmissionPolicy', 'created'], ['ValidatingAdmissionPolicyBinding', 'created'],
      ['Role', 'created'], ['RoleBinding', 'created'], ['ClusterRole', 'created'], ['ClusterRoleBinding', 'created'], ['Secret', 'created'], ['DaemonSet', 'created'],
    ])
    assert.deepEqual(result.nodes.sort(), ['inst-cp1', 'inst-cp2', 'inst-cp3'])
    assert.equal(result.passwordSource, 'generated')
    assert.deepEqual(result.rollout && [result.rollout.desired, result.rollout.available], [3, 3])
    const pods = await core.listNamespacedPod({namespace: 'inst-a', labelSelector: 'app.kubernetes.io/instance=karp'})
    assert.deepEqual(pods.items.map((p) => p.spec?.nodeName).sort(), ['inst-cp1', 'inst-cp2', 'inst-cp3'])
    assert.ok(pods.items.every((p) => p.status?.phase === 'Running'))
    const ns = await core.readNamespace({name: 'inst-a'})
    assert.equal(ns.metadata?.labels?.['pod-security.kubernetes.io/enforce'], 'privileged')
    assert.equal(ns.metadata?.annotations?.['karp.io/created-by'], 'karp')
    // The API server type-checks a new policy in the background and records it in its status (a new
    // resourceVersion); the next test compares resourceVersions, so it waits for that, once.
    const policy = {apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicy', metadata: {name: 'karp-agent.inst-a.karp'}}
    for (let checked = false, deadline = Date.now() + 30_000; !checked; ) {
      const read = (await objects.read(policy)) as {metadata: {generation?: number}; status?: {observedGeneration?: number; typeChecking?: {expressionWarnings?: unknown[]}}}
      checked = read.status?.observedGeneration === read.metadata.generation
      if (checked) assert.deepEqual(read.status?.typeChecking?.expressionWarnings ?? [], [], 'the policy type-checks without warnings')
      else if (Date.now() > deadline) assert.fail('the API server never type-checked the policy')
      else await new Promise((resolve) => setTimeout(resolve, 100))
    }
  })

  it('changes nothing when run again with the same input, keeping the generated password', async () => {
    const before = await resourceVersions('inst-a')
    const secretBefore = await core.readNamespacedSecret({name: 'karp', namespace: 'inst-a'})
    const run = await install('inst-a', ['--vip', '10.77.0.250'])
    assert.equal(run.exitCode, 0, run.stderr)
    const result = run.json as InstallJson
    assert.ok(result.objects.every((o) => o.action === 'unchanged'), JSON.stringify(result.objects))
    assert.equal(result.passwordSource, 'cluster')
    assert.deepEqual(await resourceVersions('inst-a'), before)
    const secretAfter = await core.readNamespacedSecret({name: 'karp', namespace: 'inst-a'})
    assert.deepEqual(secretAfter.data, secretBefore.data)
  })

  it('upgrades in place when the input changes, and only what changed', async () => {
    const before = await resourceVersions('inst-a')
    const run = await install('inst-a', ['--vip', '10.77.0.250', '--advbase', '2'])
    assert.equal(run.exitCode, 0, run.stderr)
    const actions = Object.fromEntries((run.json as InstallJson).objects.map((o) => [o.kind, o.action]))
    assert.deepEqual(actions, {
      Namespace: 'unchanged', ServiceAccount: 'unchanged', ValidatingAdmissionPolicy: 'unchanged', ValidatingAdmissionPolicyBinding: 'unchanged',
      Role: 'unchanged', RoleBinding: 'unchanged', ClusterRole: 'unchanged', ClusterRoleBinding: 'unchanged', Secret: 'unchanged', DaemonSet: 'configured',
    })
    const after = await resourceVersions('inst-a')
    assert.notEqual(after.DaemonSet, before.DaemonSet)
    assert.equal(after.Secret, before.Secret)
    const ds = await apps.readNamespacedDaemonSet({name: 'karp', namespace: 'inst-a'})
    const env = ds.spec?.template.spec?.containers[0]?.env ?? []
    assert.equal(env.find((e) => e.name === 'KARP_ADVBASE')?.value, '2')
  })

  it('replaces the password only when --password is given, rolling the pods', async () => {
    const run = await install('inst-a', ['--vip', '10.77.0.250', '--advbase', '2', '--password', 'n3w-secret'])
    assert.equal(run.exitCode, 0, run.stderr)
    const actions = Object.fromEntries((run.json as InstallJson).objects.map((o) => [o.kind, o.action]))
    assert.equal(actions.Secret, 'configured')
    assert.equal(actions.DaemonSet, 'configured')
    const secret = await core.readNamespacedSecret({name: 'karp', namespace: 'inst-a'})
    assert.equal(Buffer.from(secret.data?.password ?? '', 'base64').toString(), 'n3w-secret')
    // The agents on the new password listen while an old one holds the VIP (agent/README.md): nothing to warn about.
    assert.deepEqual((run.json as InstallJson).warnings.filter((w) => /password/.test(w)), [])
  })

  it('takes the password from --password-file, here stdin, and rolls the pods with a digest that is not the password\'s hash', async () => {
    const before = (await apps.readNamespacedDaemonSet({name: 'karp', namespace: 'inst-a'})).spec?.template.metadata?.annotations?.['karp.io/password-hash']
    const run = await execa(process.execPath, [karpBin, 'install', ...base('inst-a', ['--vip', '10.77.0.250', '--advbase', '2', '--password-file', '-'])], {
      reject: false, input: 'fr0m-stdin\n', env: {NO_COLOR: '1'}, timeout: 180_000,
    })
    assert.equal(run.exitCode, 0, run.stderr)
    const actions = Object.fromEntries((JSON.parse(run.stdout) as InstallJson).objects.map((o) => [o.kind, o.action]))
    assert.deepEqual([actions.Secret, actions.DaemonSet], ['configured', 'configured'])
    const secret = await core.readNamespacedSecret({name: 'karp', namespace: 'inst-a'})
    assert.equal(Buffer.from(secret.data?.password ?? '', 'base64').toString(), 'fr0m-stdin')
    const after = (await apps.readNamespacedDaemonSet({name: 'karp', namespace: 'inst-a'})).spec?.template.metadata?.annotations?.['karp.io/password-hash']
    assert.notEqual(after, before)
    assert.match(after ?? '', /^scrypt:[0-9a-f]{16}$/)
    assert.ok(!(after ?? '').includes(createHash('sha256').update('fr0m-stdin').digest('hex').slice(0, 16)))
  })

  const refusals: Array<[string, string[], number, RegExp]> = [
    ['a VIP outside the nodes\' subnet', ['--vip', '10.78.0.250'], 4, /VIP 10\.78\.0\.250 is outside node inst-cp1's subnet 10\.77\.0\.0\/24/],
    ['a VIP that is a node address', ['--vip', '10.77.0.21'], 4, /VIP 10\.77\.0\.21 is already an address of node inst-w1/],
    ['the broadcast address', ['--vip', '10.77.0.255'], 4, /broadcast address of 10\.77\.0\.0\/24/],
    ['a vhid another install uses', ['--vip', '10.77.0.249'], 4, /vhid 10 is already used by karp install inst-a\/karp/],
    ['a selector no node matches', ['--vip', '10.77.0.249', '--vhid', '11', '--node-selector', `${LABEL}=nobody`], 4, /no node matches the node selection \(--node-selector karp-test\/install=nobody\)/],
    ['an invalid vhid', ['--vip', '10.77.0.249', '--vhid', '256'], 2, /invalid --vhid "256"/],
    ['an unknown context', ['--vip', '10.77.0.249', '--vhid', '11', '--context', 'nope'], 2, /invalid --context "nope": no such context .*; contexts: /],
  ]
  for (const [what, args, code, message] of refusals) {
    it(`refuses ${what} with exit ${code}, applying nothing`, async () => {
      const run = await install('inst-refused', args)
      assert.equal(run.exitCode, code, run.stderr + run.stdout)
      assert.match((run.json as {error: {message: string}}).error.message, message)
      assert.equal(await namespaceExists('inst-refused'), false)
    })
  }

  it('refuses an unreadable kubeconfig with exit 2, naming the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'karp-kc-'))
    try {
      const run = await karp(['install', '--kubeconfig', join(dir, 'missing.yaml'), '--vip', '10.77.0.249', '--yes'])
      assert.equal(run.exitCode, 2)
      assert.match(run.stderr, new RegExp(`^error: cannot read kubeconfig ${join(dir, 'missing.yaml')}: ENOENT`, 'm'))
      await writeFile(join(dir, 'broken.yaml'), 'clusters: [\n')
      const broken = await karp(['install', '--kubeconfig', join(dir, 'broken.yaml'), '--vip', '10.77.0.249'])
      assert.equal(broken.exitCode, 2)
      assert.match(broken.stderr, /kubeconfig .*broken\.yaml is not valid/)
      await writeFile(join(dir, 'private.yaml'), 'apiVersion: v1\n')
      await chmod(join(dir, 'private.yaml'), 0o000)
      if (process.getuid?.() !== 0) {
        const denied = await karp(['install', '--kubeconfig', join(dir, 'private.yaml'), '--vip', '10.77.0.249'])
        assert.match(denied.stderr, /EACCES/)
      }
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })

  it('refuses an identity RBAC forbids with exit 3, naming the missing permissions, applying nothing', async () => {
    const run = await karp(['install', ...base('inst-rbac', ['--vip', '10.77.0.248', '--vhid', '12']).map((a) => (a === kubeconfig ? userKubeconfig : a))])
    assert.equal(run.exitCode, 3, run.stderr + run.stdout)
    const message = (run.json as {error: {message: string}}).error.message
    assert.match(message, /forbidden: .* may not /)
    assert.match(message, /create daemonsets\.apps in namespace inst-rbac/)
    assert.match(message, /create clusterroles\.rbac\.authorization\.k8s\.io \(cluster-wide\); .*create clusterrolebindings\.rbac\.authorization\.k8s\.io \(cluster-wide\)/)
    assert.match(message, /nothing was applied/)
    assert.equal(await namespaceExists('inst-rbac'), false)
  })

  it('refuses an uninstall RBAC forbids with exit 3, deleting nothing', async () => {
    const before = await resourceVersions('inst-a')
    const run = await karp(['uninstall', '--kubeconfig', userKubeconfig, '--namespace', 'inst-a', '--yes', '--json'])
    assert.equal(run.exitCode, 3, run.stderr + run.stdout)
    const message = (run.json as {error: {message: string}}).error.message
    assert.match(message, /^forbidden: .* may not delete daemonsets\.apps in namespace inst-a; .*nothing was deleted$/)
    assert.deepEqual(await resourceVersions('inst-a'), before)
  })

  it('installs into a namespace it does not own without relabelling it, and uninstall keeps it', async () => {
    await core.createNamespace({body: {metadata: {name: 'inst-owned', labels: {team: 'infra'}, annotations: {'team.example/owner': 'infra'}}}})
    try {
      const before = await core.readNamespace({name: 'inst-owned'})
      const run = await install('inst-owned', ['--vip', '10.77.0.247', '--vhid', '13', '--no-wait'])
      assert.equal(run.exitCode, 0, run.stderr)
      assert.equal((run.json as InstallJson).objects.find((o) => o.kind === 'Namespace')?.action, 'unchanged')
      const ns = await core.readNamespace({name: 'inst-owned'})
      assert.deepEqual([ns.metadata?.labels, ns.metadata?.annotations, ns.metadata?.resourceVersion], [before.metadata?.labels, before.metadata?.annotations, before.metadata?.resourceVersion])
      const removed = await karp(['uninstall', '--kubeconfig', kubeconfig, '--namespace', 'inst-owned', '--json', '--timeout', '60s'])
      assert.equal(removed.exitCode, 0, removed.stderr)
      const kept = (removed.json as {objects: Applied[]}).objects.find((o) => o.kind === 'Namespace')
      assert.equal(kept?.action, 'kept')
      assert.equal(await namespaceExists('inst-owned'), true)
    } finally {
      await core.deleteNamespace({name: 'inst-owned'})
    }
  })

  it('never deletes a namespace it did not create, even one carrying karp\'s labels', async () => {
    // As an earlier `karp render -n team-ns | kubectl apply` left it, or a hand-made copy of karp's labels.
    const labels = {team: 'infra', 'app.kubernetes.io/name': 'karp', 'app.kubernetes.io/managed-by': 'karp', 'pod-security.kubernetes.io/enforce': 'privileged'}
    await core.createNamespace({body: {metadata: {name: 'inst-labelled', labels}}})
    try {
      await core.createNamespacedConfigMap({namespace: 'inst-labelled', body: {metadata: {name: 'team-data'}, data: {keep: 'me'}}})
      const run = await install('inst-labelled', ['--vip', '10.77.0.245', '--vhid', '15', '--no-wait'])
      assert.equal(run.exitCode, 0, run.stderr)
      const removed = await karp(['uninstall', '--kubeconfig', kubeconfig, '--namespace', 'inst-labelled', '--json', '--timeout', '60s'])
      assert.equal(removed.exitCode, 0, removed.stderr)
      assert.equal((removed.json as {objects: Applied[]}).objects.find((o) => o.kind === 'Namespace')?.action, 'kept')
      const ns = await core.readNamespace({name: 'inst-labelled'})
      assert.equal(ns.status?.phase, 'Active')
      assert.equal(ns.metadata?.deletionTimestamp, undefined)
      assert.equal((await core.readNamespacedConfigMap({name: 'team-data', namespace: 'inst-labelled'})).data?.keep, 'me')
    } finally {
      await core.deleteNamespace({name: 'inst-labelled'}).catch(() => undefined)
    }
  })

  it('refuses a namespace whose Pod Security level rejects the agent, with the command that allows it', async () => {
    const labels = {team: 'infra', 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest'}
    await core.createNamespace({body: {metadata: {name: 'inst-restricted', labels}}})
    try {
      const run = await install('inst-restricted', ['--vip', '10.77.0.244', '--vhid', '16', '--no-wait'])
      assert.equal(run.exitCode, 4, run.stderr + run.stdout)
      const message = (run.json as {error: {message: string}}).error.message
      assert.match(message, /^preflight failed, nothing was applied:\n {2}- namespace inst-restricted enforces Pod Security level "restricted", which rejects the agent/)
      const command = /allow it with: (kubectl label namespace inst-restricted pod-security\.kubernetes\.io\/enforce=privileged --overwrite)$/m.exec(message)?.[1]
      assert.ok(command, message)
      // Nothing applied: no karp object in the namespace, its labels as they were.
      assert.equal((await core.listNamespacedServiceAccount({namespace: 'inst-restricted', labelSelector: 'app.kubernetes.io/name=karp'})).items.length, 0)
      assert.equal((await apps.listNamespacedDaemonSet({namespace: 'inst-restricted'})).items.length, 0)
      assert.deepEqual((await core.readNamespace({name: 'inst-restricted'})).metadata?.labels, {...labels, 'kubernetes.io/metadata.name': 'inst-restricted'})
      // The command it gives is the whole fix: after it, the same install goes through.
      const [, ...args] = command.split(' ')
      const labelled = await execa(join(cluster.binDir, 'kubectl'), ['--kubeconfig', kubeconfig, ...args], {reject: false})
      assert.equal(labelled.exitCode, 0, labelled.stderr)
      const again = await install('inst-restricted', ['--vip', '10.77.0.244', '--vhid', '16', '--no-wait'])
      assert.equal(again.exitCode, 0, again.stderr)
      const removed = await karp(['uninstall', '--kubeconfig', kubeconfig, '--namespace', 'inst-restricted', '--json', '--timeout', '60s'])
      assert.equal(removed.exitCode, 0, removed.stderr)
      assert.equal(await namespaceExists('inst-restricted'), true)
    } finally {
      await core.deleteNamespace({name: 'inst-restricted'})
    }
  })

  it('refuses a system namespace unless --allow-system-namespace, and never labels or deletes it', async () => {
    const before = await core.readNamespace({name: 'kube-system'})
    const refused = await install('kube-system', ['--vip', '10.77.0.243', '--vhid', '17', '--no-wait'])
    assert.equal(refused.exitCode, 2, refused.stderr + refused.stdout)
    assert.match((refused.json as {error: {message: string}}).error.message, /^invalid --namespace "kube-system": a system namespace, .*; pass --allow-system-namespace to install there anyway$/)
    assert.equal((await apps.listNamespacedDaemonSet({namespace: 'kube-system', labelSelector: 'app.kubernetes.io/name=karp'})).items.length, 0)
    assert.equal((await core.listNamespacedServiceAccount({namespace: 'kube-system', labelSelector: 'app.kubernetes.io/name=karp'})).items.length, 0)

    const allowed = await install('kube-system', ['--vip', '10.77.0.243', '--vhid', '17', '--no-wait', '--allow-system-namespace'])
    assert.equal(allowed.exitCode, 0, allowed.stderr)
    const removed = await karp(['uninstall', '--kubeconfig', kubeconfig, '--namespace', 'kube-system', '--json', '--timeout', '60s'])
    assert.equal(removed.exitCode, 0, removed.stderr)
    assert.equal((removed.json as {objects: Applied[]}).objects.find((o) => o.kind === 'Namespace')?.action, 'kept')
    const after = await core.readNamespace({name: 'kube-system'})
    assert.deepEqual([after.metadata?.labels, after.metadata?.annotations, after.status?.phase], [before.metadata?.labels, before.metadata?.annotations, 'Active'])
  })

  it('on a terminal, shows the selected nodes, asks for the VIP until valid, and confirms before applying', async () => {
    const args = ['install', '--kubeconfig', kubeconfig, '--namespace', 'inst-tty', '--vhid', '14', '--node-selector', `${LABEL}=yes`, '--no-wait']
    const declined = await karpOnTerminal(args, [[/Virtual IP for the API server/, '10.77.0.246'], [/Apply\?/, 'n']])
    // Declining is the person's decision carried out, not a failure (exit 0, as kubectl delete --interactive).
    assert.equal(declined.exitCode, 0, declined.output)
    assert.match(declined.output, /cancelled; nothing was applied/)
    assert.equal(await namespaceExists('inst-tty'), false)

    const run = await karpOnTerminal(args, [
      [/Virtual IP for the API server/, '10.77.0.999'],
      // The prompt keeps the rejected text: erase it (DEL, as a terminal sends for Backspace), then retype.
      [/invalid --vip "10\.77\.0\.999"/, `${'\x7f'.repeat(11)}10.77.0.246`],
      [/Apply\?/, 'y'],
    ])
    assert.equal(run.exitCode, 0, run.output)
    assert.match(run.output, /inst-cp1\s+10\.77\.0\.11/)
    assert.match(run.output, /VIP 10\.77\.0\.246 \(vhid 14, port 6443\) on inst-cp1, inst-cp2, inst-cp3/)
    assert.equal(await namespaceExists('inst-tty'), true)
    const removed = await karp(['uninstall', '--kubeconfig', kubeconfig, '--namespace', 'inst-tty', '--yes', '--json'])
    assert.equal(removed.exitCode, 0, removed.stderr)
  })

  it('uninstalls everything it created and waits until the pods are gone', async () => {
    const run = await karp(['uninstall', '--kubeconfig', kubeconfig, '--namespace', 'inst-a', '--json', '--timeout', '60s'])
    assert.equal(run.exitCode, 0, run.stderr)
    const result = run.json as {objects: Applied[]; podsRemaining: number}
    assert.deepEqual(result.objects.map((o) => [o.kind, o.action]), [
      ['DaemonSet', 'deleted'], ['Secret', 'deleted'], ['ClusterRoleBinding', 'deleted'], ['ClusterRole', 'deleted'], ['RoleBinding', 'deleted'], ['Role', 'deleted'],
      ['ValidatingAdmissionPolicyBinding', 'deleted'], ['ValidatingAdmissionPolicy', 'deleted'], ['ServiceAccount', 'deleted'], ['Namespace', 'deleted'],
    ])
    assert.equal(result.podsRemaining, 0)
    const pods = await core.listNamespacedPod({namespace: 'inst-a', labelSelector: 'app.kubernetes.io/instance=karp'})
    assert.equal(pods.items.length, 0)
    const again = await karp(['uninstall', '--kubeconfig', kubeconfig, '--namespace', 'inst-a', '--json'])
    assert.equal(again.exitCode, 0, again.stderr)
    assert.ok((again.json as {objects: Applied[]}).objects.every((o) => o.action === 'absent' || o.kind === 'Namespace'))
  })
})
