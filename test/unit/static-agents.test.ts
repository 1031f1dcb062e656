// Static-pod agents (karp bootstrap) as install and status read them: parsing their mirror pods, install's
// refusals and the order of the handover, and what status makes of them.
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import type {V1DaemonSet, V1Node, V1Pod} from '@kubernetes/client-node'

import {InvalidInputError} from '../../src/lib/errors.js'
import {checkHandover, type HandoverInput, handoverPlan, handoverSteps, staticAgentsVip} from '../../src/lib/install/handover.js'
import {checkPlacement, type NodeFacts} from '../../src/lib/install/preflight.js'
import {isStaticAgentPod, staticAgentOf, staticAgentsIn} from '../../src/lib/kube/static-agents.js'
import {formatStatus} from '../../src/lib/status/display.js'
import {statusFromSnapshot} from '../../src/lib/status/status.js'
import {
  APP_NAME,
  DEFAULT_SUBNET_PREFIX,
  INSTANCE_LABEL,
  NAME_LABEL,
  STATIC_MANIFEST_ANNOTATION,
  STATIC_POD_NAMESPACE,
  VHID_ANNOTATION,
} from '../../src/lib/constants.js'
import {rolledOutDaemonSet, staticAgentMirrorPod} from '../helpers/agent-fixtures.js'
import {assertMatchesSchema} from '../helpers/json-schema.js'

const NOW = new Date('2026-12-01T12:00:00Z')
const VIP = '192.168.1.250'
const MANIFEST = '/etc/kubernetes/manifests/karp.yaml'

const mirrorPod = (
  node: string,
  opts: {
    vip?: string
    vhid?: string
    ready?: boolean
    mirror?: boolean
    manifest?: string | null
    passwordFile?: string
    namespace?: string
  } = {},
): V1Pod =>
  staticAgentMirrorPod(node, {
    ...opts,
    vip: opts.vip ?? VIP,
    vhid: opts.vhid ?? '10',
    mirror: opts.mirror === false ? false : 'abc',
    created: new Date(NOW.getTime() - 90_000),
  })

const agents = (...pods: V1Pod[]) => staticAgentsIn(pods)
const three = () => agents(mirrorPod('cp1'), mirrorPod('cp2'), mirrorPod('cp3'))

describe('static-pod agents: parsing their mirror pods', () => {
  it('reads node, pod, VIP, vhid, port, paths, readiness, phase and whether a kubelet made the pod', () => {
    assert.deepEqual(staticAgentOf(mirrorPod('cp1')), {
      node: 'cp1',
      pod: 'karp-cp1',
      vip: VIP,
      vhid: 10,
      apiPort: 6443,
      manifest: MANIFEST,
      passwordFile: '/etc/karp/password',
      ready: true,
      phase: 'Running',
      mirror: true,
      createdAt: '2026-12-01T11:58:30.000Z',
    })
    const odd = staticAgentOf({...mirrorPod('cp2', {ready: false, mirror: false, vhid: 'ten', manifest: null})})
    assert.deepEqual([odd.ready, odd.mirror, odd.vhid, odd.manifest], [false, false, undefined, undefined])
    const leaving = mirrorPod('cp3')
    leaving.metadata = {...leaving.metadata, deletionTimestamp: NOW}
    assert.equal(staticAgentOf(leaving).phase, 'Terminating')
  })

  it('tells static-pod agents from DaemonSet agents by namespace and labels, and sorts them by node', () => {
    const daemonSetPod: V1Pod = {metadata: {name: 'karp-x1', namespace: 'karp-system', labels: {[NAME_LABEL]: APP_NAME}}}
    const elsewhere = mirrorPod('cp9', {namespace: 'karp-system'})
    assert.equal(isStaticAgentPod(daemonSetPod), false)
    assert.equal(isStaticAgentPod(elsewhere), false, 'the manifest names kube-system')
    assert.deepEqual(
      agents(mirrorPod('cp3'), daemonSetPod, mirrorPod('cp1'), elsewhere).map((a) => a.node),
      ['cp1', 'cp3'],
    )
  })
})

describe('checkHandover: install taking over from static-pod agents', () => {
  const input = (overrides: Partial<HandoverInput> = {}): HandoverInput => ({
    vip: VIP,
    vhid: 10,
    apiPort: 6443,
    vhidGiven: false,
    passwordGiven: true,
    agents: three(),
    ...overrides,
  })
  const problemsOf = (fn: () => unknown): string[] => {
    try {
      fn()
    } catch (error) {
      assert.ok(error instanceof InvalidInputError, String(error))
      return error.problems
    }
    assert.fail('no error')
  }

  it('passes anything when there are none, and takes their vhid when --vhid is unset', () => {
    assert.deepEqual(checkHandover(input({agents: [], vhid: 33, vhidGiven: true, passwordGiven: false})), {vhid: 33})
    assert.deepEqual(checkHandover(input({agents: agents(mirrorPod('cp1', {vhid: '42'})), vhid: 10})), {vhid: 42})
  })

  it('refuses another VIP and another vhid, naming both values and the nodes, and a missing password, all at once', () => {
    const problems = problemsOf(() => checkHandover(input({vip: '192.168.1.251', vhid: 11, vhidGiven: true, passwordGiven: false})))
    const where = 'the static-pod agents on cp1, cp2, cp3'
    assert.deepEqual(problems, [
      `--vip 192.168.1.251 differs from VIP ${VIP} of ${where}: the DaemonSet takes over their VIP; give --vip ${VIP}`,
      `--vhid 11 differs from vhid 10 of ${where}: give --vhid 10, or leave it out to take theirs`,
      `${where} run VIP ${VIP}, and the DaemonSet must use their CARP password, which is not in the API: it is in /etc/karp/password on those nodes; ` +
        'copy it from one and give it with --password-file, e.g. --password-file ./password (or --password-file - to read it from stdin)',
    ])
  })

  it('refuses another API server port than theirs', () => {
    assert.deepEqual(
      problemsOf(() => checkHandover(input({apiPort: 8443}))),
      ['--api-port 8443 differs from port 6443 of the static-pod agents on cp1, cp2, cp3: give --api-port 6443'],
    )
  })

  it('refuses static-pod agents that disagree among themselves, or lack their annotations', () => {
    assert.deepEqual(
      problemsOf(() => checkHandover(input({agents: agents(mirrorPod('cp1'), mirrorPod('cp2', {vip: '192.168.1.9', vhid: '9'}))}))),
      [
        `the static-pod agents disagree: VIP ${VIP} (vhid 10) on cp1; VIP 192.168.1.9 (vhid 9) on cp2; karp install takes over from one VIP: fix or remove the manifests that differ`,
      ],
    )
    assert.deepEqual(staticAgentsVip(agents(mirrorPod('cp1', {vhid: ''}))), {
      problems: [`static-pod agent ${STATIC_POD_NAMESPACE}/karp-cp1 on cp1 has no valid ${VHID_ANNOTATION} annotation`],
    })
  })
})

describe('the handover order and steps', () => {
  const node = (name: string, ...addresses: string[]) => ({name, addresses})

  it('removes the manifests by node name, the node listing the VIP among its addresses last', () => {
    const plan = handoverPlan(three(), VIP, [node('cp1', '192.168.1.11', VIP), node('cp2'), node('cp3')], new Set(['cp1', 'cp2', 'cp3']))
    assert.deepEqual(
      plan.order.map((s) => s.node),
      ['cp2', 'cp3', 'cp1'],
    )
    assert.equal(plan.holder, 'cp1')
  })

  it('knows no holder when none or several nodes list the VIP, and says how to find it', () => {
    for (const nodes of [
      [node('cp1'), node('cp2')],
      [node('cp1', VIP), node('cp2', VIP)],
    ]) {
      const plan = handoverPlan(three(), VIP, nodes, new Set(['cp1', 'cp2', 'cp3']))
      assert.equal(plan.holder, undefined)
      assert.deepEqual(
        plan.order.map((s) => s.node),
        ['cp1', 'cp2', 'cp3'],
      )
    }
    const steps = handoverSteps(handoverPlan(three(), VIP, [], new Set(['cp1', 'cp2', 'cp3'])), three(), VIP, true)
    assert.ok(
      steps.includes(
        `Static-pod agents report no role: \`ip -brief address show to ${VIP}/32\` on a node shows whether it holds the VIP; leave that node for last.`,
      ),
    )
    assert.ok(!steps.some((l) => l.startsWith('First wait for the rollout')), 'install waited for it')
  })

  it('names each node and manifest, a node the DaemonSet does not select, an unannotated manifest, and the password files', () => {
    const list = agents(
      mirrorPod('cp1'),
      mirrorPod('cp2', {manifest: '/var/lib/rancher/k3s/agent/pod-manifests/karp.yaml'}),
      mirrorPod('cp3', {manifest: null}),
    )
    const steps = handoverSteps(handoverPlan(list, VIP, [], new Set(['cp1', 'cp3'])), list, VIP, false)
    assert.deepEqual(steps.slice(1, 6), [
      'First wait for the rollout (--no-wait did not): karp status shows every DaemonSet agent ready.',
      'Remove the static pod manifests one node at a time, the node that holds the VIP last; after each, wait until karp status shows the DaemonSet agent on that node as backup (or master) before the next:',
      `  1. on cp1: rm ${MANIFEST}`,
      '  2. on cp2: rm /var/lib/rancher/k3s/agent/pod-manifests/karp.yaml (the DaemonSet does not select cp2: no agent of its takes over there)',
      `  3. on cp3: remove the karp static pod manifest of pod karp-cp3 from the kubelet's manifest directory (its ${STATIC_MANIFEST_ANNOTATION} annotation is missing)`,
    ])
    assert.equal(
      steps.at(-1),
      'Then, if you like, delete the password file copies (the DaemonSet keeps the password in its Secret): rm /etc/karp/password on cp1, cp2, cp3.',
    )
  })
})

describe('preflight with static-pod agents', () => {
  const facts = (name: string, ip: string, extra: string[] = []): NodeFacts => ({
    name,
    labels: {},
    internalIPv4: [ip],
    addresses: [ip, ...extra],
  })
  const nodes = [facts('cp1', '192.168.1.11', [VIP]), facts('cp2', '192.168.1.12'), facts('cp3', '192.168.1.13')]
  const placement = (staticAgentNodes: string[]) =>
    checkPlacement({
      vip: VIP,
      vhid: 10,
      namespace: 'karp-system',
      name: 'karp',
      subnetPrefix: DEFAULT_SUBNET_PREFIX,
      selected: nodes,
      allNodes: nodes,
      installs: [],
      selection: 'control-plane nodes',
      staticAgentNodes,
    })

  it('passes the VIP among the addresses of a node whose static-pod agent holds it, and refuses it on any other node', () => {
    assert.deepEqual(placement(['cp1', 'cp2', 'cp3']).problems, [])
    assert.deepEqual(placement(['cp2', 'cp3']).problems, [`VIP ${VIP} is already an address of node cp1`])
    assert.deepEqual(placement([]).problems, [`VIP ${VIP} is already an address of node cp1`])
  })
})

describe('status with static-pod agents', () => {
  const kube = {contextName: 'c', server: 'https://127.0.0.1:6443'}
  const readyNode = (name: string): V1Node => ({
    metadata: {name, labels: {'node-role.kubernetes.io/control-plane': ''}},
    status: {conditions: [{type: 'Ready', status: 'True'}]},
  })
  const daemonSet = rolledOutDaemonSet

  /** A DaemonSet agent waiting behind the static pod: running and ready, out of CARP (no role). */
  const waiting = (node: string): V1Pod => ({
    metadata: {name: `karp-${node}-ds`, namespace: 'karp-system', labels: {[NAME_LABEL]: APP_NAME, [INSTANCE_LABEL]: 'karp'}},
    spec: {nodeName: node, containers: []},
    status: {
      phase: 'Running',
      conditions: [{type: 'Ready', status: 'True'}],
      containerStatuses: [{name: 'agent', image: '', imageID: '', ready: true, restartCount: 0, state: {running: {startedAt: NOW}}}],
    },
  })
  const cps = ['cp1', 'cp2', 'cp3']
  const judge = (pods: V1Pod[], daemonSets: V1DaemonSet[] = [], options = {}) =>
    statusFromSnapshot({daemonSets, pods, nodes: cps.map(readyNode), events: []}, kube, {probe: false, timeoutMs: 1000, ...options}, NOW)

  it('calls bootstrap agents alone healthy (exit 0), with how to hand over; no install is made up of their pods', async () => {
    const result = await judge(cps.map((n) => mirrorPod(n)))
    assertMatchesSchema('status', result)
    assert.deepEqual([result.verdict, result.exitCode, result.installs], ['healthy', 0, []])
    assert.equal(
      result.summary,
      `no karp install yet: the cluster runs bootstrap static-pod agents for VIP ${VIP} (vhid 10) on cp1, cp2, cp3, all ready; ` +
        `hand over to a DaemonSet with: karp install --vip ${VIP} --password-file FILE (FILE: a copy of /etc/karp/password from one of these nodes)`,
    )
    assert.deepEqual(
      result.staticAgents?.map((a) => [a.node, a.age, a.install]),
      cps.map((n) => [n, 90, undefined]),
    )
    const lines = formatStatus(result, NOW)
    assert.equal(lines[0], 'Static-pod agents (karp bootstrap; without API credentials they report no role):')
    assert.match(
      lines[2] as string,
      new RegExp(`^ {2}cp1\\s+karp-cp1\\s+Running\\s+true\\s+90s\\s+${VIP} \\(vhid 10\\)\\s+${MANIFEST}\\s+-`),
    )
    assert.equal(lines.at(-1), result.summary)
  })

  it('shows their annotations escaped: anyone who may create a pod in kube-system writes them', async () => {
    const result = await judge([mirrorPod('cp1', {manifest: '/etc/\x1b[2Jkarp.yaml', passwordFile: '/etc/\x1b[2Jpassword'})])
    const shown = formatStatus(result, NOW).join('\n')
    assert.ok(shown.includes('/etc/\\x1b[2Jkarp.yaml') && shown.includes('/etc/\\x1b[2Jpassword'), shown)
    assert.ok(!shown.includes('\x1b[2J'), shown)
  })

  it('calls them degraded (exit 4) when one is not ready or they disagree', async () => {
    const unready = await judge([mirrorPod('cp1'), mirrorPod('cp2', {ready: false})])
    assert.deepEqual([unready.verdict, unready.exitCode], ['degraded', 4])
    assert.match(unready.summary, /, and static-pod agent karp-cp2 on cp2 is not ready \(Running\); hand over/)
    const split = await judge([mirrorPod('cp1'), mirrorPod('cp2', {vip: '192.168.1.9'})])
    assert.equal(split.verdict, 'degraded')
    assert.match(split.summary, /for VIP 192\.168\.1\.250 and VIP 192\.168\.1\.9 on cp1, cp2, and the static-pod agents disagree: /)
  })

  it('calls static-pod agents beside the DaemonSet a handover in progress: a warning, the VIP held by a static-pod agent, no outage', async () => {
    const result = await judge([...cps.map((n) => mirrorPod(n)), ...cps.map(waiting)], [daemonSet])
    assertMatchesSchema('status', result)
    assert.deepEqual([result.verdict, result.exitCode], ['healthy', 0])
    const install = result.installs[0]
    assert.deepEqual([install?.holder, install?.state, install?.problems], ['static-pod', 'healthy', []])
    assert.deepEqual(install?.warnings, [
      'handover in progress: static-pod agents still run on cp1, cp2, cp3; remove their manifests one node at a time, ' +
        `each once the DaemonSet agent of the node before is backup, the node holding VIP ${VIP} last: ` +
        `rm ${MANIFEST} on cp1; rm ${MANIFEST} on cp2; rm ${MANIFEST} on cp3`,
    ])
    assert.equal(result.summary, 'karp is healthy; a handover from static-pod agents is in progress (see the warnings)')
    assert.deepEqual(
      result.staticAgents?.map((a) => a.install),
      ['karp-system/karp', 'karp-system/karp', 'karp-system/karp'],
    )
  })

  it('is down as before when no static-pod agent of the VIP is ready and no DaemonSet agent holds it', async () => {
    const result = await judge([...cps.map((n) => mirrorPod(n, {ready: false})), ...cps.map(waiting)], [daemonSet])
    assert.deepEqual([result.verdict, result.installs[0]?.holder], ['down', 'none'])
  })

  it('hides the static-pod agents of an install filtered out, and notes those of no install', async () => {
    const other = await judge([...cps.map((n) => mirrorPod(n)), ...cps.map(waiting)], [daemonSet], {namespace: 'elsewhere'})
    assert.deepEqual([other.verdict, other.staticAgents], ['not-installed', undefined])
    const strays = await judge([mirrorPod('cp1', {vip: '192.168.1.9', vhid: '9'}), ...cps.map(waiting)], [daemonSet])
    assert.equal(strays.installs[0]?.warnings, undefined)
    assert.match(strays.summary, /; static-pod agents on cp1 serve VIP 192\.168\.1\.9, which no karp install has$/)
  })
})
