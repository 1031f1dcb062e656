// karp install / uninstall on the real-node lab (lab/cluster.ts): node1..3 are kubeadm-style control-plane
// nodes, worker1 a worker, and real kubelets run the agent image, so an install waits for running, ready
// agents and a roll replaces real pods. The CLI and kubectl run in the lab's client namespace only
// (test/helpers/lab.ts); this process never connects to a lab address.
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {chmod, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {Cluster, clusterSkipReason} from '../../lab/cluster.js'
import {agentImage} from '../../lab/image.js'
import {waitFor} from '../../lab/process.js'
import {assertJsonOutput} from '../helpers/json-schema.js'
import {kubectlJson, labKarp, labKarpOnTerminal, labKubectl, labObjectExists, labUserKubeconfig} from '../helpers/lab.js'
import {
  APP_NAME,
  CREATED_BY_ANNOTATION,
  INSTANCE_LABEL,
  KARP_SELECTOR,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  NAME_LABEL,
  PASSWORD_FINGERPRINT_ANNOTATION,
} from '../../src/lib/constants.js'
import {INSTALL_KINDS} from '../helpers/install-kinds.js'

const skip = await clusterSkipReason()

type Applied = {kind: string; name: string; namespace?: string; action: string}
type InstallJson = {
  vip: string
  vhid: number
  passwordSource: string
  nodes: string[]
  objects: Applied[]
  rollout: {desired: number; updated: number; available: number} | null
  warnings: string[]
}
type EnvVar = {name: string; value?: string; valueFrom?: unknown}
type Meta = {
  name: string
  uid?: string
  resourceVersion?: string
  generation?: number
  deletionTimestamp?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
  managedFields?: {manager: string; operation: string; time?: string; subresource?: string}[]
}
type Pod = {
  metadata: Meta
  spec: {nodeName?: string; containers: {env?: EnvVar[]}[]}
  status: {phase?: string; containerStatuses?: {ready: boolean}[]}
}
type DaemonSet = {metadata: Meta; spec: {template: {metadata: Meta; spec: {containers: {env?: EnvVar[]}[]}}}}
type List<T> = {items: T[]}

/** The default node selection (kubeadm's control-plane label) picks these; worker1 must get no agent. */
const CONTROL_PLANE = ['node1', 'node2', 'node3']
const VIP = '10.78.0.10'
const KINDS = INSTALL_KINDS
const INSTANCE = `${INSTANCE_LABEL}=karp`
/** A rolling update replaces one agent at a time, each after a graceful CARP handover. */
const ROLLOUT_S = 300
const UNINSTALL_S = 120
/** What one CLI run may take on a busy machine on top of what it waits for itself (its --timeout). */
const CLI_MS = 240_000

const envValue = (env: EnvVar[] | undefined, name: string) => env?.find((e) => e.name === name)?.value

describe('karp install / uninstall against a real HA cluster', {skip}, () => {
  let cluster: Cluster
  let imageRef = ''

  const base = (namespace: string, extra: string[] = []) => [
    '--kubeconfig',
    cluster.kubeconfig,
    '--namespace',
    namespace,
    '--image',
    imageRef,
    '--timeout',
    `${ROLLOUT_S}s`,
    '--json',
    ...extra,
  ]
  /** Every --json run: its output matches its schema (or the error's) and declares the exit code it ended with. */
  const checked = async <T extends {exitCode: number; json: unknown}>(command: 'install' | 'uninstall', run: Promise<T>): Promise<T> => {
    const done = await run
    assertJsonOutput(command, done)
    return done
  }
  const install = (namespace: string, extra: string[] = [], input?: string) =>
    checked(
      'install',
      labKarp(cluster, ['install', ...base(namespace, extra)], {
        timeoutMs: ROLLOUT_S * 1000 + CLI_MS,
        ...(input === undefined ? {} : {input}),
      }),
    )
  const uninstall = (namespace: string, extra: string[] = []) =>
    checked(
      'uninstall',
      labKarp(
        cluster,
        ['uninstall', '--kubeconfig', cluster.kubeconfig, '--namespace', namespace, '--json', '--timeout', `${UNINSTALL_S}s`, ...extra],
        {timeoutMs: UNINSTALL_S * 1000 + CLI_MS},
      ),
    )
  /** The CLI for what neither waits nor applies. */
  const karp = (args: string[]) => labKarp(cluster, args, {timeoutMs: CLI_MS})
  const namespaceExists = (namespace: string) => labObjectExists(cluster, ['namespace', namespace])

  const kubectl = (args: string[]) => labKubectl(cluster, args)

  async function createNamespace(name: string, labels: Record<string, string>, annotations: Record<string, string> = {}): Promise<void> {
    const file = join(cluster.dir, `namespace-${name}.json`)
    await writeFile(file, JSON.stringify({apiVersion: 'v1', kind: 'Namespace', metadata: {name, labels, annotations}}))
    await kubectl(['create', '-f', file])
  }

  /**
   * Per kind, what any write to the object changes: its resourceVersion; for the DaemonSet, its generation
   * and the times of its writers other than status updates. The DaemonSet controller rewrites the status
   * (a new resourceVersion) whenever an agent's readiness changes, which a real, busy node causes at any time.
   */
  async function writes(namespace: string, name = 'karp'): Promise<Record<string, string>> {
    const scoped = `karp-agent.${namespace}.${name}`
    const list = await kubectlJson<List<{kind: string; metadata: Meta}>>(cluster, [
      'get',
      '-n',
      namespace,
      `namespace/${namespace}`,
      `validatingadmissionpolicy/${scoped}`,
      `validatingadmissionpolicybinding/${scoped}`,
      `clusterrole/${scoped}`,
      `clusterrolebinding/${scoped}`,
      `serviceaccount/${name}`,
      `role/${name}`,
      `rolebinding/${name}`,
      `secret/${name}`,
      `daemonset/${name}`,
    ])
    assert.equal(list.items.length, 10, list.items.map((o) => o.kind).join(', '))
    return Object.fromEntries(
      list.items.map(({kind, metadata}) => [
        kind,
        kind === 'DaemonSet'
          ? JSON.stringify([
              metadata.generation,
              metadata.managedFields?.filter((f) => f.subresource !== 'status').map((f) => [f.manager, f.operation, f.time]),
            ])
          : (metadata.resourceVersion ?? ''),
      ]),
    )
  }

  const agentPods = async (namespace: string) =>
    (await kubectlJson<List<Pod>>(cluster, ['get', 'pods', '-n', namespace, '-l', INSTANCE])).items
  const daemonSet = (namespace: string) => kubectlJson<DaemonSet>(cluster, ['get', 'daemonset', 'karp', '-n', namespace])
  const secretPassword = async (namespace: string) =>
    Buffer.from(
      (await kubectlJson<{data: {password: string}}>(cluster, ['get', 'secret', 'karp', '-n', namespace])).data.password,
      'base64',
    ).toString()

  /**
   * One Running, Ready agent on each control-plane node and none on the worker, none of them a pod of
   * `before` (the roll really replaced them), each with the DaemonSet's current environment and password
   * digest; the pods.
   */
  async function assertAgentsRolledOut(namespace: string, before: Pod[] = []): Promise<Pod[]> {
    const ds = await daemonSet(namespace)
    const ready = (p: Pod) => p.status.phase === 'Running' && p.status.containerStatuses?.[0]?.ready === true
    const seenReady = new Set<string | undefined>()
    let pods: Pod[] = []
    // Every agent was Ready when karp's rollout ended, but on a busy node an exec probe can time out (the
    // default 1 s) and take an agent out of Ready for a while, at any time: each pod is watched until it
    // has been seen Running and Ready, not all of them at one instant.
    await waitFor(
      `every agent in ${namespace} seen Running and Ready`,
      300_000,
      async () => {
        pods = await agentPods(namespace)
        for (const p of pods.filter(ready)) seenReady.add(p.metadata.uid)
        return pods.every((p) => seenReady.has(p.metadata.uid))
      },
      () =>
        pods
          .map((p) => `${p.metadata.name}@${p.spec.nodeName} ${p.status.phase} ready=${p.status.containerStatuses?.[0]?.ready}`)
          .join(', '),
      1000,
    )
    assert.deepEqual(
      pods.map((p) => p.spec.nodeName).sort(),
      CONTROL_PLANE,
      `agents on the control-plane nodes only, none on worker1: ${pods.map((p) => `${p.metadata.name}@${p.spec.nodeName}`).join(', ')}`,
    )
    const old = new Set(before.map((p) => p.metadata.uid))
    for (const pod of pods) {
      assert.ok(!old.has(pod.metadata.uid), `${pod.metadata.name} on ${pod.spec.nodeName} was replaced`)
      assert.equal(pod.metadata.deletionTimestamp, undefined, `${pod.metadata.name} is not terminating`)
      assert.deepEqual(
        pod.spec.containers[0]?.env,
        ds.spec.template.spec.containers[0]?.env,
        `${pod.metadata.name} has the DaemonSet's environment`,
      )
      assert.equal(
        pod.metadata.annotations?.[PASSWORD_FINGERPRINT_ANNOTATION],
        ds.spec.template.metadata.annotations?.[PASSWORD_FINGERPRINT_ANNOTATION],
      )
    }
    return pods
  }

  /** The agent in each pod reads `password` from its mounted Secret (ucarp reads it once, at start). */
  async function assertAgentsHavePassword(namespace: string, pods: Pod[], password: string): Promise<void> {
    for (const pod of pods) {
      let last = ''
      // Asked again while the exec cannot get in (a busy node's kubelet restarting the container); a wrong
      // password fails every time.
      await waitFor(
        `${pod.metadata.name} having the new password`,
        60_000,
        async () => {
          const same = await cluster.kubectl([
            'exec',
            '-n',
            namespace,
            pod.metadata.name,
            '--',
            'sh',
            '-c',
            `test "$(cat /etc/karp/password)" = '${password}'`,
          ])
          last = `exit ${same.exitCode} ${same.stderr.trim()}`
          return same.exitCode === 0
        },
        () => last,
        1000,
      )
    }
  }

  /** Control-plane nodes with `vip` on eth0, read from their network namespaces (no connection to the lab). */
  async function holders(vip: string): Promise<string[]> {
    const held = await Promise.all(cluster.nodes.map(async (n) => ((await cluster.net.hasAddress(n.host, vip)) ? n.name : undefined)))
    return held.filter((n): n is string => n !== undefined)
  }

  before(async () => {
    const image = await agentImage()
    imageRef = `${image.name}:${image.tag}@${image.indexDigest}`
    cluster = await Cluster.start({workers: 1})
  })

  after(async () => {
    if (cluster) await cluster.stop()
  })

  it('installs, rolls out on exactly the control-plane nodes, and reports every object created', async () => {
    const run = await install('inst-a', ['--vip', VIP])
    assert.equal(run.exitCode, 0, run.stderr)
    const result = run.json as InstallJson
    assert.deepEqual(
      result.objects.map((o) => [o.kind, o.action]),
      KINDS.map((kind) => [kind, 'created']),
    )
    assert.deepEqual([...result.nodes].sort(), CONTROL_PLANE)
    assert.equal(result.passwordSource, 'generated')
    assert.deepEqual(result.rollout && [result.rollout.desired, result.rollout.available], [3, 3])
    await assertAgentsRolledOut('inst-a')
    // The real agents elect one holder among themselves.
    let held: string[] = []
    await waitFor(
      `one node holding ${VIP}`,
      60_000,
      async () => (held = await holders(VIP)).length === 1,
      () => `holders: [${held.join(', ')}]`,
      500,
    )
    const ns = await kubectlJson<{metadata: Meta}>(cluster, ['get', 'namespace', 'inst-a'])
    assert.equal(ns.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'privileged')
    assert.equal(ns.metadata.annotations?.[CREATED_BY_ANNOTATION], MANAGED_BY)
    // The API server type-checks a new policy in the background and records it in its status (a new
    // resourceVersion), which the next tests compare: this waits for that, once.
    type Policy = {metadata: Meta; status?: {observedGeneration?: number; typeChecking?: {expressionWarnings?: unknown[]}}}
    let policy: Policy | undefined
    await waitFor(
      'the API server type-checking the policy',
      30_000,
      async () => {
        policy = await kubectlJson<Policy>(cluster, ['get', 'validatingadmissionpolicy', 'karp-agent.inst-a.karp'])
        return policy.status?.observedGeneration === policy.metadata.generation
      },
      undefined,
      200,
    )
    assert.deepEqual(policy?.status?.typeChecking?.expressionWarnings ?? [], [], 'the policy type-checks without warnings')
  })

  it('changes nothing when run again with the same input, keeping the generated password and the pods', async () => {
    const before = await writes('inst-a')
    const passwordBefore = await secretPassword('inst-a')
    const podsBefore = await agentPods('inst-a')
    const statusBefore = (await daemonSet('inst-a')).metadata.resourceVersion
    const run = await install('inst-a', ['--vip', VIP])
    assert.equal(run.exitCode, 0, run.stderr)
    const result = run.json as InstallJson
    const statusMoved = (await daemonSet('inst-a')).metadata.resourceVersion !== statusBefore
    // karp tells "configured" from "unchanged" by the resourceVersion before and after its apply, so a status
    // update by the DaemonSet controller in between (an agent's readiness changing, which a busy node's probe
    // timeouts cause) shows an unchanged DaemonSet as "configured". Then only writes() below can tell.
    const daemonSetAction = result.objects.find((o) => o.kind === 'DaemonSet')?.action
    assert.deepEqual(
      result.objects.map((o) => [o.kind, o.action]),
      KINDS.map((kind) => [kind, kind === 'DaemonSet' && statusMoved ? daemonSetAction : 'unchanged']),
    )
    assert.equal(result.passwordSource, 'cluster')
    assert.deepEqual(await writes('inst-a'), before)
    assert.equal(await secretPassword('inst-a'), passwordBefore)
    assert.deepEqual(
      (await agentPods('inst-a')).map((p) => p.metadata.uid).sort(),
      podsBefore.map((p) => p.metadata.uid).sort(),
      'no agent pod was replaced',
    )
  })

  it('upgrades in place when the input changes, and only what changed, rolling the agents onto it', async () => {
    const before = await writes('inst-a')
    const podsBefore = await agentPods('inst-a')
    const run = await install('inst-a', ['--vip', VIP, '--advbase', '2'])
    assert.equal(run.exitCode, 0, run.stderr)
    const result = run.json as InstallJson
    const actions = Object.fromEntries(result.objects.map((o) => [o.kind, o.action]))
    assert.deepEqual(actions, {
      Namespace: 'unchanged',
      ServiceAccount: 'unchanged',
      ValidatingAdmissionPolicy: 'unchanged',
      ValidatingAdmissionPolicyBinding: 'unchanged',
      Role: 'unchanged',
      RoleBinding: 'unchanged',
      ClusterRole: 'unchanged',
      ClusterRoleBinding: 'unchanged',
      Secret: 'unchanged',
      DaemonSet: 'configured',
    })
    const after = await writes('inst-a')
    assert.notEqual(after.DaemonSet, before.DaemonSet)
    assert.deepEqual({...after, DaemonSet: ''}, {...before, DaemonSet: ''}, 'every other object as it was')
    assert.deepEqual(result.rollout && [result.rollout.desired, result.rollout.updated, result.rollout.available], [3, 3, 3])
    assert.equal(envValue((await daemonSet('inst-a')).spec.template.spec.containers[0]?.env, 'KARP_ADVBASE'), '2')
    const pods = await assertAgentsRolledOut('inst-a', podsBefore)
    for (const pod of pods)
      assert.equal(envValue(pod.spec.containers[0]?.env, 'KARP_ADVBASE'), '2', `${pod.metadata.name} runs with advbase 2`)
  })

  it('replaces the password only when --password is given, rolling the pods', async () => {
    const podsBefore = await agentPods('inst-a')
    const run = await install('inst-a', ['--vip', VIP, '--advbase', '2', '--password', 'n3w-secret'])
    assert.equal(run.exitCode, 0, run.stderr)
    const actions = Object.fromEntries((run.json as InstallJson).objects.map((o) => [o.kind, o.action]))
    assert.equal(actions.Secret, 'configured')
    assert.equal(actions.DaemonSet, 'configured')
    assert.equal(await secretPassword('inst-a'), 'n3w-secret')
    // The agents on the new password listen while an old one holds the VIP (agent/README.md): nothing to warn about.
    assert.deepEqual(
      (run.json as InstallJson).warnings.filter((w) => /password/.test(w)),
      [],
    )
    const pods = await assertAgentsRolledOut('inst-a', podsBefore)
    await assertAgentsHavePassword('inst-a', pods, 'n3w-secret')
  })

  it("takes the password from --password-file, here stdin, and rolls the pods with a digest that is not the password's hash", async () => {
    const podsBefore = await agentPods('inst-a')
    const digestBefore = (await daemonSet('inst-a')).spec.template.metadata.annotations?.[PASSWORD_FINGERPRINT_ANNOTATION]
    const run = await install('inst-a', ['--vip', VIP, '--advbase', '2', '--password-file', '-'], 'fr0m-stdin\n')
    assert.equal(run.exitCode, 0, run.stderr)
    const actions = Object.fromEntries((run.json as InstallJson).objects.map((o) => [o.kind, o.action]))
    assert.deepEqual([actions.Secret, actions.DaemonSet], ['configured', 'configured'])
    assert.equal(await secretPassword('inst-a'), 'fr0m-stdin')
    const digest = (await daemonSet('inst-a')).spec.template.metadata.annotations?.[PASSWORD_FINGERPRINT_ANNOTATION]
    assert.notEqual(digest, digestBefore)
    assert.match(digest ?? '', /^scrypt:[0-9a-f]{16}$/)
    assert.ok(!(digest ?? '').includes(createHash('sha256').update('fr0m-stdin').digest('hex').slice(0, 16)))
    const pods = await assertAgentsRolledOut('inst-a', podsBefore)
    await assertAgentsHavePassword('inst-a', pods, 'fr0m-stdin')
  })

  const refusals: Array<[string, string[], number, RegExp]> = [
    ["a VIP outside the nodes' subnet", ['--vip', '10.77.0.250'], 4, /VIP 10\.77\.0\.250 is outside node node1's subnet 10\.78\.0\.0\/24/],
    ['a VIP that is a node address', ['--vip', '10.78.0.21'], 4, /VIP 10\.78\.0\.21 is already an address of node worker1/],
    ['the broadcast address', ['--vip', '10.78.0.255'], 4, /broadcast address of 10\.78\.0\.0\/24/],
    ['a vhid another install uses', ['--vip', '10.78.0.249'], 4, /vhid 10 is already used by karp install inst-a\/karp/],
    [
      'a selector no node matches',
      ['--vip', '10.78.0.249', '--vhid', '11', '--node-selector', 'karp-test/install=nobody'],
      4,
      /no node matches the node selection \(--node-selector karp-test\/install=nobody\)/,
    ],
    ['an invalid vhid', ['--vip', '10.78.0.249', '--vhid', '256'], 2, /invalid --vhid "256"/],
    [
      'an unknown context',
      ['--vip', '10.78.0.249', '--vhid', '11', '--context', 'nope'],
      2,
      /invalid --context "nope": no such context .*; contexts: /,
    ],
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
      const run = await karp(['install', '--kubeconfig', join(dir, 'missing.yaml'), '--vip', '10.78.0.249', '--yes'])
      assert.equal(run.exitCode, 2)
      assert.match(run.stderr, new RegExp(`^error: cannot read kubeconfig ${join(dir, 'missing.yaml')}: ENOENT`, 'm'))
      await writeFile(join(dir, 'broken.yaml'), 'clusters: [\n')
      const broken = await karp(['install', '--kubeconfig', join(dir, 'broken.yaml'), '--vip', '10.78.0.249'])
      assert.equal(broken.exitCode, 2)
      assert.match(broken.stderr, /kubeconfig .*broken\.yaml is not valid/)
      await writeFile(join(dir, 'private.yaml'), 'apiVersion: v1\n')
      await chmod(join(dir, 'private.yaml'), 0o000)
      if (process.getuid?.() !== 0) {
        const denied = await karp(['install', '--kubeconfig', join(dir, 'private.yaml'), '--vip', '10.78.0.249'])
        assert.match(denied.stderr, /EACCES/)
      }
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })

  it('refuses an identity RBAC forbids with exit 3, naming the missing permissions, applying nothing', async () => {
    const nobody = labUserKubeconfig(cluster, 'karp-install-test-nobody')
    const run = await karp([
      'install',
      ...base('inst-rbac', ['--vip', '10.78.0.248', '--vhid', '12']).map((a) => (a === cluster.kubeconfig ? nobody : a)),
    ])
    assert.equal(run.exitCode, 3, run.stderr + run.stdout)
    const message = (run.json as {error: {message: string}}).error.message
    assert.match(message, /forbidden: .* may not /)
    assert.match(message, /create daemonsets\.apps in namespace inst-rbac/)
    assert.match(
      message,
      /create clusterroles\.rbac\.authorization\.k8s\.io \(cluster-wide\); .*create clusterrolebindings\.rbac\.authorization\.k8s\.io \(cluster-wide\)/,
    )
    assert.match(message, /nothing was applied/)
    assert.equal(await namespaceExists('inst-rbac'), false)
  })

  it('refuses an uninstall RBAC forbids with exit 3, deleting nothing', async () => {
    const before = await writes('inst-a')
    const podsBefore = await agentPods('inst-a')
    const nobody = labUserKubeconfig(cluster, 'karp-install-test-nobody')
    const run = await karp(['uninstall', '--kubeconfig', nobody, '--namespace', 'inst-a', '--yes', '--json'])
    assert.equal(run.exitCode, 3, run.stderr + run.stdout)
    const message = (run.json as {error: {message: string}}).error.message
    assert.match(message, /^forbidden: .* may not delete daemonsets\.apps in namespace inst-a; .*nothing was deleted$/)
    assert.deepEqual(await writes('inst-a'), before)
    assert.deepEqual(
      (await agentPods('inst-a')).map((p) => p.metadata.uid).sort(),
      podsBefore.map((p) => p.metadata.uid).sort(),
      'the agents run on',
    )
  })

  it('installs into a namespace it does not own without relabelling it, and uninstall keeps it', async () => {
    await createNamespace('inst-owned', {team: 'infra'}, {'team.example/owner': 'infra'})
    try {
      const before = await kubectlJson<{metadata: Meta}>(cluster, ['get', 'namespace', 'inst-owned'])
      const run = await install('inst-owned', ['--vip', '10.78.0.247', '--vhid', '13', '--no-wait'])
      assert.equal(run.exitCode, 0, run.stderr)
      assert.equal((run.json as InstallJson).objects.find((o) => o.kind === 'Namespace')?.action, 'unchanged')
      const ns = await kubectlJson<{metadata: Meta}>(cluster, ['get', 'namespace', 'inst-owned'])
      assert.deepEqual(
        [ns.metadata.labels, ns.metadata.annotations, ns.metadata.resourceVersion],
        [before.metadata.labels, before.metadata.annotations, before.metadata.resourceVersion],
      )
      const removed = await uninstall('inst-owned')
      assert.equal(removed.exitCode, 0, removed.stderr)
      const result = removed.json as {objects: Applied[]; podsRemaining: number}
      assert.equal(result.objects.find((o) => o.kind === 'Namespace')?.action, 'kept')
      assert.equal(result.podsRemaining, 0)
      assert.equal(await namespaceExists('inst-owned'), true)
    } finally {
      await cluster.kubectl(['delete', 'namespace', 'inst-owned', '--wait=false'])
    }
  })

  it("never deletes a namespace it did not create, even one carrying karp's labels", async () => {
    // As an earlier `karp render -n team-ns | kubectl apply` left it, or a hand-made copy of karp's labels.
    const labels = {
      team: 'infra',
      [NAME_LABEL]: APP_NAME,
      [MANAGED_BY_LABEL]: MANAGED_BY,
      'pod-security.kubernetes.io/enforce': 'privileged',
    }
    await createNamespace('inst-labelled', labels)
    try {
      await kubectl(['create', 'configmap', 'team-data', '-n', 'inst-labelled', '--from-literal=keep=me'])
      const run = await install('inst-labelled', ['--vip', '10.78.0.245', '--vhid', '15', '--no-wait'])
      assert.equal(run.exitCode, 0, run.stderr)
      const removed = await uninstall('inst-labelled')
      assert.equal(removed.exitCode, 0, removed.stderr)
      assert.equal((removed.json as {objects: Applied[]}).objects.find((o) => o.kind === 'Namespace')?.action, 'kept')
      const ns = await kubectlJson<{metadata: Meta; status: {phase: string}}>(cluster, ['get', 'namespace', 'inst-labelled'])
      assert.equal(ns.status.phase, 'Active')
      assert.equal(ns.metadata.deletionTimestamp, undefined)
      assert.equal(
        (await kubectlJson<{data: Record<string, string>}>(cluster, ['get', 'configmap', 'team-data', '-n', 'inst-labelled'])).data.keep,
        'me',
      )
    } finally {
      await cluster.kubectl(['delete', 'namespace', 'inst-labelled', '--wait=false'])
    }
  })

  it('refuses a namespace whose Pod Security level rejects the agent, with the command that allows it', async () => {
    const labels = {
      team: 'infra',
      'pod-security.kubernetes.io/enforce': 'restricted',
      'pod-security.kubernetes.io/enforce-version': 'latest',
    }
    await createNamespace('inst-restricted', labels)
    try {
      const run = await install('inst-restricted', ['--vip', '10.78.0.244', '--vhid', '16', '--no-wait'])
      assert.equal(run.exitCode, 4, run.stderr + run.stdout)
      const message = (run.json as {error: {message: string}}).error.message
      assert.match(
        message,
        /^preflight failed, nothing was applied:\n {2}- namespace inst-restricted enforces Pod Security level "restricted", which rejects the agent/,
      )
      const command =
        /allow it with: (kubectl label namespace inst-restricted pod-security\.kubernetes\.io\/enforce=privileged --overwrite)$/m.exec(
          message,
        )?.[1]
      assert.ok(command, message)
      // Nothing applied: no karp object in the namespace, its labels as they were.
      assert.equal(
        (await kubectlJson<List<unknown>>(cluster, ['get', 'serviceaccounts', '-n', 'inst-restricted', '-l', KARP_SELECTOR])).items.length,
        0,
      )
      assert.equal((await kubectlJson<List<unknown>>(cluster, ['get', 'daemonsets', '-n', 'inst-restricted'])).items.length, 0)
      const ns = await kubectlJson<{metadata: Meta}>(cluster, ['get', 'namespace', 'inst-restricted'])
      assert.deepEqual(ns.metadata.labels, {...labels, 'kubernetes.io/metadata.name': 'inst-restricted'})
      // The command it gives is the whole fix: after it, the same install goes through.
      const [, ...args] = command.split(' ')
      await kubectl(args)
      const again = await install('inst-restricted', ['--vip', '10.78.0.244', '--vhid', '16', '--no-wait'])
      assert.equal(again.exitCode, 0, again.stderr)
      const removed = await uninstall('inst-restricted')
      assert.equal(removed.exitCode, 0, removed.stderr)
      assert.equal(await namespaceExists('inst-restricted'), true)
    } finally {
      await cluster.kubectl(['delete', 'namespace', 'inst-restricted', '--wait=false'])
    }
  })

  it('refuses a system namespace unless --allow-system-namespace, and never labels or deletes it', async () => {
    const before = await kubectlJson<{metadata: Meta}>(cluster, ['get', 'namespace', 'kube-system'])
    const karpObjects = async (kind: string) =>
      (await kubectlJson<List<unknown>>(cluster, ['get', kind, '-n', 'kube-system', '-l', KARP_SELECTOR])).items.length
    const refused = await install('kube-system', ['--vip', '10.78.0.243', '--vhid', '17', '--no-wait'])
    assert.equal(refused.exitCode, 2, refused.stderr + refused.stdout)
    assert.match(
      (refused.json as {error: {message: string}}).error.message,
      /^invalid --namespace "kube-system": a system namespace, .*; pass --allow-system-namespace to install there anyway$/,
    )
    assert.equal(await karpObjects('daemonsets'), 0)
    assert.equal(await karpObjects('serviceaccounts'), 0)

    const allowed = await install('kube-system', ['--vip', '10.78.0.243', '--vhid', '17', '--no-wait', '--allow-system-namespace'])
    assert.equal(allowed.exitCode, 0, allowed.stderr)
    const removed = await uninstall('kube-system')
    assert.equal(removed.exitCode, 0, removed.stderr)
    assert.equal((removed.json as {objects: Applied[]}).objects.find((o) => o.kind === 'Namespace')?.action, 'kept')
    assert.equal(await karpObjects('pods'), 0)
    const after = await kubectlJson<{metadata: Meta; status: {phase: string}}>(cluster, ['get', 'namespace', 'kube-system'])
    assert.deepEqual(
      [after.metadata.labels, after.metadata.annotations, after.status.phase],
      [before.metadata.labels, before.metadata.annotations, 'Active'],
    )
  })

  it('on a terminal, shows the selected nodes, asks for the VIP until valid, and confirms before applying', async () => {
    const args = [
      'install',
      '--kubeconfig',
      cluster.kubeconfig,
      '--namespace',
      'inst-tty',
      '--vhid',
      '14',
      '--image',
      imageRef,
      '--no-wait',
    ]
    const declined = await labKarpOnTerminal(
      cluster,
      args,
      [
        [/Virtual IP for the API server/, '10.78.0.246'],
        [/Apply\?/, 'n'],
      ],
      CLI_MS,
    )
    // Declining is the person's decision carried out, not a failure (exit 0, as kubectl delete --interactive).
    assert.equal(declined.exitCode, 0, declined.output)
    assert.match(declined.output, /cancelled; nothing was applied/)
    assert.equal(await namespaceExists('inst-tty'), false)

    const run = await labKarpOnTerminal(
      cluster,
      args,
      [
        [/Virtual IP for the API server/, '10.78.0.999'],
        // The prompt keeps the rejected text: erase it (DEL, as a terminal sends for Backspace), then retype.
        [/invalid --vip "10\.78\.0\.999"/, `${'\x7f'.repeat(11)}10.78.0.246`],
        [/Apply\?/, 'y'],
      ],
      CLI_MS,
    )
    assert.equal(run.exitCode, 0, run.output)
    for (const node of cluster.nodes) assert.match(run.output, new RegExp(`${node.name}\\s+${node.host.ip.replaceAll('.', '\\.')}`))
    assert.doesNotMatch(run.output, /worker1/)
    assert.match(run.output, /VIP 10\.78\.0\.246 \(vhid 14, port 6443\) on node1, node2, node3/)
    assert.equal(await namespaceExists('inst-tty'), true)
    const removed = await uninstall('inst-tty', ['--yes'])
    assert.equal(removed.exitCode, 0, removed.stderr)
  })

  it('uninstalls everything it created and waits until the pods are gone', async () => {
    const run = await uninstall('inst-a')
    assert.equal(run.exitCode, 0, run.stderr)
    const result = run.json as {objects: Applied[]; podsRemaining: number}
    assert.deepEqual(
      result.objects.map((o) => [o.kind, o.action]),
      [
        ['DaemonSet', 'deleted'],
        ['Secret', 'deleted'],
        ['ClusterRoleBinding', 'deleted'],
        ['ClusterRole', 'deleted'],
        ['RoleBinding', 'deleted'],
        ['Role', 'deleted'],
        ['ValidatingAdmissionPolicyBinding', 'deleted'],
        ['ValidatingAdmissionPolicy', 'deleted'],
        ['ServiceAccount', 'deleted'],
        ['Namespace', 'deleted'],
      ],
    )
    assert.equal(result.podsRemaining, 0)
    assert.equal((await agentPods('inst-a')).length, 0)
    // The VIP leaves with the last agent (released on its way out, or when its lease runs out).
    let held: string[] = []
    await waitFor(
      `no node holding ${VIP}`,
      60_000,
      async () => (held = await holders(VIP)).length === 0,
      () => `holders: [${held.join(', ')}]`,
      500,
    )
    const again = await uninstall('inst-a')
    assert.equal(again.exitCode, 0, again.stderr)
    assert.ok((again.json as {objects: Applied[]}).objects.every((o) => o.action === 'absent' || o.kind === 'Namespace'))
  })
})
