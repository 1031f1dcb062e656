import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import type {CoreV1Event, V1DaemonSet, V1Node, V1Pod} from '@kubernetes/client-node'

import {formatStatus} from '../../src/lib/status/display.js'
import {statusFromSnapshot} from '../../src/lib/status/status.js'
import {installsIn, installStatus} from '../../src/lib/status/verdict.js'
import {APP_NAME, INSTANCE_LABEL, NAME_LABEL, ROLE_CONDITION} from '../../src/lib/constants.js'
import {makeCa, makeCertificate, startTlsServer, testKey, unusedPort} from '../helpers/certs.js'
import {rolledOutDaemonSet} from '../helpers/agent-fixtures.js'
import {assertMatchesSchema} from '../helpers/json-schema.js'

const NOW = new Date('2026-11-26T12:00:00Z')
const ago = (s: number) => new Date(NOW.getTime() - s * 1000)

const daemonSet = rolledOutDaemonSet

function node(name: string, ready = true, controlPlane = true, cordoned = false): V1Node {
  return {
    metadata: {name, labels: controlPlane ? {'node-role.kubernetes.io/control-plane': ''} : {}},
    ...(cordoned ? {spec: {unschedulable: true}} : {}),
    status: {conditions: [{type: 'Ready', status: ready ? 'True' : 'False'}]},
  }
}

function pod(
  nodeName: string,
  role?: string,
  opts: {changedAt?: Date; startedAt?: Date; crash?: boolean; ready?: boolean; created?: Date; name?: string} = {},
): V1Pod {
  const startedAt = opts.startedAt ?? ago(600)
  return {
    metadata: {
      name: opts.name ?? `karp-${nodeName}`,
      namespace: 'karp-system',
      creationTimestamp: opts.created ?? ago(700),
      labels: {[NAME_LABEL]: APP_NAME, [INSTANCE_LABEL]: 'karp'},
    },
    spec: {nodeName, containers: []},
    status: {
      phase: 'Running',
      conditions: [
        {type: 'Ready', status: opts.ready === false || opts.crash ? 'False' : 'True'},
        // As agent/lib.sh reports it; without changedAt the condition has no time (karp status then looks at Events).
        ...(role
          ? [
              {
                type: ROLE_CONDITION,
                status: 'True',
                reason: role === 'master' ? 'Master' : 'Backup',
                ...(opts.changedAt ? {lastTransitionTime: opts.changedAt} : {}),
              },
            ]
          : []),
      ],
      containerStatuses: [
        {
          name: 'agent',
          image: '',
          imageID: '',
          ready: !opts.crash,
          restartCount: opts.crash ? 7 : 0,
          state: opts.crash ? {waiting: {reason: 'CrashLoopBackOff'}} : {running: {startedAt}},
        },
      ],
    },
  }
}

const nodes = [node('cp1'), node('cp2'), node('cp3'), node('w1', true, false)]
const judge = (
  pods: V1Pod[],
  extra: {nodes?: V1Node[]; events?: CoreV1Event[]; ds?: V1DaemonSet | null; heartbeats?: Record<string, string>} = {},
) =>
  installStatus(
    extra.ds === null
      ? {namespace: 'karp-system', name: 'karp'}
      : {namespace: 'karp-system', name: 'karp', daemonSet: extra.ds ?? daemonSet},
    {pods, nodes: extra.nodes ?? nodes, events: extra.events ?? [], ...(extra.heartbeats ? {heartbeats: extra.heartbeats} : {})},
    NOW,
  )

describe('installStatus', () => {
  it('is healthy with exactly one master among ready agents on every selected node', () => {
    const status = judge([pod('cp1', 'master', {changedAt: ago(300)}), pod('cp2', 'backup'), pod('cp3', 'backup')])
    assert.equal(status.state, 'healthy')
    assert.equal(status.holder, 'one')
    assert.deepEqual(status.holders, ['cp1'])
    assert.deepEqual(status.problems, [])
    assert.deepEqual(
      status.agents.map((a) => a.node),
      ['cp1', 'cp2', 'cp3'],
    )
    assert.equal(status.agents[0]?.pod?.roleChangedAt, ago(300).toISOString())
    assert.equal(status.vip, '192.168.1.250')
  })

  it('is down with no holder', () => {
    const status = judge([pod('cp1', 'backup'), pod('cp2', 'backup'), pod('cp3')])
    assert.equal(status.state, 'down')
    assert.equal(status.holder, 'none')
    assert.match(status.problems[0] as string, /no node holds VIP 192\.168\.1\.250/)
  })

  it('calls two masters a split brain', () => {
    const status = judge([pod('cp1', 'master'), pod('cp2', 'master'), pod('cp3', 'backup')])
    assert.equal(status.holder, 'split-brain')
    assert.equal(status.state, 'degraded')
    assert.deepEqual(status.holders, ['cp1', 'cp2'])
    assert.match(status.problems[0] as string, /split brain: cp1 and cp2/)
  })

  it("believes the newer of two masters when the older one's kubelet fell silent before it took over", () => {
    // cp1 lost power 20 s ago: its pod still shows Running and its last report until the node controller notices.
    const pods = [pod('cp1', 'master', {changedAt: ago(300)}), pod('cp2', 'backup'), pod('cp3', 'master', {changedAt: ago(17)})]
    const status = judge(pods, {heartbeats: {cp1: ago(21).toISOString(), cp3: ago(4).toISOString()}})
    assert.equal(status.holder, 'one')
    assert.deepEqual(status.holders, ['cp3'])
    assert.equal(status.state, 'degraded')
    assert.deepEqual(status.problems, [
      `node cp1 last reported holding the VIP, but cp3 took it at ${ago(17).toISOString()} and the kubelet of cp1 has not been heard from since ${ago(21).toISOString()}: cp1 is probably down`,
    ])
  })

  it('still calls two masters a split brain when both kubelets are heard from, or the heartbeats are unknown', () => {
    const pods = [pod('cp1', 'master', {changedAt: ago(300)}), pod('cp2', 'backup'), pod('cp3', 'master', {changedAt: ago(17)})]
    // cp1's kubelet renewed its Lease after cp3 took over: both run, and both say they hold the VIP.
    assert.equal(judge(pods, {heartbeats: {cp1: ago(5).toISOString(), cp3: ago(4).toISOString()}}).holder, 'split-brain')
    assert.equal(judge(pods).holder, 'split-brain')
    assert.equal(judge(pods, {heartbeats: {cp3: ago(4).toISOString()}}).holder, 'split-brain')
  })

  it('does not believe a role reported before the container restarted', () => {
    const status = judge([pod('cp1', 'master', {changedAt: ago(900), startedAt: ago(60)}), pod('cp2', 'backup'), pod('cp3', 'backup')])
    assert.equal(status.holder, 'none')
    assert.equal(status.agents[0]?.pod?.stale, true)
    assert.ok(status.problems.some((p) => /karp-cp1 on cp1 last reported master before its container \(re\)started: stale/.test(p)))
  })

  it('does not count a crash-looping master as the holder, and says it crash-loops', () => {
    const status = judge([pod('cp1', 'master', {crash: true}), pod('cp2', 'master'), pod('cp3', 'backup')])
    assert.equal(status.holder, 'one')
    assert.deepEqual(status.holders, ['cp2'])
    assert.ok(status.problems.some((p) => p === 'pod karp-cp1 on cp1 is crash-looping (7 restarts)'))
    assert.equal(status.state, 'degraded')
  })

  it('reports a selected node that is NotReady, and one without a pod', () => {
    const status = judge([pod('cp1', 'master'), pod('cp2', 'backup')], {nodes: [node('cp1'), node('cp2', false), node('cp3')]})
    assert.ok(status.problems.includes('node cp2 is NotReady'))
    assert.ok(status.problems.includes('node cp3 is selected but runs no karp pod'))
    assert.equal(status.agents.find((a) => a.node === 'cp3')?.pod, null)
  })

  it('shows cordoned nodes as kubectl does, and a cordoned holder as a problem', () => {
    const sgr = new RegExp(`${String.fromCharCode(0x1b)}\\[[0-9;]*m`, 'g')
    const table = (status: ReturnType<typeof judge>) =>
      formatStatus(
        {context: 'c', server: 'https://127.0.0.1:6443', installs: [status], verdict: 'healthy', summary: 'ok', exitCode: 0},
        NOW,
      ).map((l) => l.replaceAll(sgr, ''))
    // Drained for maintenance, the VIP already elsewhere: nothing wrong, the node is shown cordoned.
    const handedOver = judge([pod('cp1', 'backup'), pod('cp2', 'master'), pod('cp3', 'backup')], {
      nodes: [node('cp1', true, true, true), node('cp2'), node('cp3')],
    })
    assert.deepEqual(
      handedOver.agents.map((a) => [a.node, a.cordoned]),
      [
        ['cp1', true],
        ['cp2', false],
        ['cp3', false],
      ],
    )
    assert.deepEqual(handedOver.problems, [])
    assert.equal(handedOver.state, 'healthy')
    assert.match(table(handedOver).find((l) => /^\s+cp1 /.test(l)) ?? '', /^\s+cp1\s+Ready,SchedulingDisabled\s+karp-cp1\s/)
    assert.match(table(handedOver).find((l) => /^\s+cp2 /.test(l)) ?? '', /^\s+cp2\s+Ready\s+karp-cp2\s/)
    // Still holding it (the handover under way, or no other node could take it): not done yet.
    const holding = judge([pod('cp1', 'master'), pod('cp2', 'backup'), pod('cp3', 'backup')], {
      nodes: [node('cp1', true, true, true), node('cp2'), node('cp3')],
    })
    assert.equal(holding.holder, 'one')
    assert.equal(holding.state, 'degraded')
    assert.deepEqual(holding.problems, [
      'node cp1 is cordoned but holds the VIP: its agent hands it over once another node can take it (an uncordoned node with a healthy API server)',
    ])
    const notReady = judge([pod('cp1', 'backup'), pod('cp2', 'master'), pod('cp3', 'backup')], {
      nodes: [node('cp1', false, true, true), node('cp2'), node('cp3')],
    })
    assert.match(table(notReady).find((l) => /^\s+cp1 /.test(l)) ?? '', /^\s+cp1\s+NotReady,SchedulingDisabled\s/)
  })

  it('reports agents whose DaemonSet is gone', () => {
    const snapshot = {daemonSets: [], pods: [pod('cp1', 'master'), pod('cp2', 'backup')]}
    assert.deepEqual(
      installsIn(snapshot).map((i) => [i.namespace, i.name, i.daemonSet]),
      [['karp-system', 'karp', undefined]],
    )
    const status = judge(snapshot.pods, {ds: null})
    assert.equal(status.daemonSet, null)
    assert.match(status.problems[0] as string, /DaemonSet karp-system\/karp is missing: 2 agent pods left without it/)
  })

  it('lets the newer of two pods on one node speak for it during a rolling update', () => {
    const old = pod('cp1', 'master', {name: 'karp-old', created: ago(800)})
    const fresh = pod('cp1', 'backup', {name: 'karp-new', created: ago(10)})
    const status = judge([fresh, old, pod('cp2', 'master'), pod('cp3', 'backup')])
    assert.equal(status.agents.find((a) => a.node === 'cp1')?.pod?.name, 'karp-new')
    assert.deepEqual(status.holders, ['cp2'])
  })

  it('reads the role only from the karp.io/role condition, never from a label anyone could set', () => {
    const labelled = pod('cp1')
    labelled.metadata!.labels![ROLE_CONDITION] = 'master'
    const odd = pod('cp2')
    odd.status!.conditions!.push({type: ROLE_CONDITION, status: 'True', reason: 'Overlord'})
    const status = judge([labelled, odd, pod('cp3', 'master', {changedAt: ago(30)})])
    assert.deepEqual(
      status.agents.map((a) => a.pod?.role),
      ['unknown', 'unknown', 'master'],
    )
    assert.deepEqual(status.holders, ['cp3'])
    assert.equal(status.agents[2]?.pod?.roleChangedAt, ago(30).toISOString())
  })

  it('lists the agent events newest first, and takes a role time from them when the condition has none', () => {
    const event = (name: string, reason: string, at: Date): CoreV1Event => ({
      metadata: {name: `${name}.${reason}`},
      involvedObject: {kind: 'Pod', namespace: 'karp-system', name},
      reason,
      message: `${name} ${reason}`,
      lastTimestamp: at,
    })
    const events = [
      event('karp-cp1', 'BecameBackup', ago(500)),
      event('karp-cp1', 'BecameMaster', ago(120)),
      event('other-x', 'BecameMaster', ago(1)),
    ]
    const status = judge([pod('cp1', 'master'), pod('cp2', 'backup'), pod('cp3', 'backup')], {events})
    assert.deepEqual(
      status.events.map((e) => e.reason),
      ['BecameMaster', 'BecameBackup'],
    )
    assert.equal(status.agents[0]?.pod?.roleChangedAt, ago(120).toISOString())
  })

  it('shows what agents wrote in Events with control characters escaped, never raw on the terminal', () => {
    // An agent's token may create Events about its own pod: their text is not to be trusted with a terminal.
    const hostile: CoreV1Event = {
      metadata: {name: 'karp-cp1.x'},
      involvedObject: {kind: 'Pod', namespace: 'karp-system', name: 'karp-cp1'},
      reason: 'BecameMaster\u001b[2J',
      message: 'cp1 is master\u001b]0;pwned\u0007\nfake line',
      lastTimestamp: ago(5),
    }
    const status = judge([pod('cp1', 'master'), pod('cp2', 'backup'), pod('cp3', 'backup')], {events: [hostile]})
    const lines = formatStatus(
      {context: 'c', server: 'https://127.0.0.1:6443', installs: [status], verdict: 'healthy', summary: 'ok', exitCode: 0},
      NOW,
    )
    // karp's own colours (on a terminal) aside, no control character reaches the screen.
    const sgr = new RegExp(`${String.fromCharCode(0x1b)}\\[[0-9;]*m`, 'g')
    const text = lines.map((l) => l.replaceAll(sgr, '')).join('\n')
    assert.doesNotMatch(text, /(?!\n)\p{Cc}/u, 'no raw control character')
    assert.match(text, /BecameMaster\\x1b\[2J/)
    assert.match(text, /cp1 is master\\x1b\]0;pwned\\x07\\nfake line/)
  })
})

describe('statusFromSnapshot: the status result', () => {
  const kube = {contextName: 'lab', server: 'https://127.0.0.1:6443'}
  /** The install's DaemonSet with its VIP and port where a loopback server (or nothing) stands for the VIP. */
  const installAt = (port: number, name = 'karp'): V1DaemonSet => ({
    ...daemonSet,
    metadata: {
      ...daemonSet.metadata,
      name,
      annotations: {'karp.io/vip': '127.0.0.1', 'karp.io/vhid': '10', 'karp.io/api-port': String(port)},
    },
  })

  it('matches schemas/status.schema.json in every state, probed or not, and declares its exit code', async () => {
    const ca = makeCa('status-ca')
    const server = await startTlsServer([
      makeCertificate({commonName: 'kube-apiserver', key: testKey('apiserver'), issuer: ca, ipSans: ['10.0.0.11']}),
    ])
    try {
      const becameMaster: CoreV1Event = {
        metadata: {name: 'e'},
        involvedObject: {kind: 'Pod', namespace: 'karp-system', name: 'karp-cp1'},
        reason: 'BecameMaster',
        message: 'cp1 is master',
        lastTimestamp: ago(5),
      }
      const snapshots = {
        healthy: {
          daemonSets: [daemonSet],
          pods: [pod('cp1', 'master', {changedAt: ago(30)}), pod('cp2', 'backup'), pod('cp3', 'backup')],
          nodes,
          events: [becameMaster],
        },
        down: {
          daemonSets: [daemonSet],
          pods: [pod('cp1', 'master', {crash: true}), pod('cp2', 'backup')],
          nodes: [...nodes, node('cp4', false)],
          events: [],
        },
        splitBrain: {daemonSets: [], pods: [pod('cp1', 'master'), pod('cp2', 'master')], nodes, events: [], heartbeats: {}},
        none: {daemonSets: [], pods: [], nodes: [], events: []},
        probedLacksVip: {
          daemonSets: [installAt(server.port)],
          pods: [pod('cp1', 'master'), pod('cp2', 'backup'), pod('cp3', 'backup')],
          nodes,
          events: [],
        },
        probedSilent: {
          daemonSets: [installAt(await unusedPort())],
          pods: [pod('cp1', 'master'), pod('cp2', 'backup'), pod('cp3', 'backup')],
          nodes,
          events: [],
        },
      }
      const verdicts: Record<string, [string, number]> = {}
      for (const [name, snapshot] of Object.entries(snapshots)) {
        const probe = name.startsWith('probed')
        const result = await statusFromSnapshot(snapshot, kube, {probe, timeoutMs: 2000, ...(probe ? {caPem: ca.certPem} : {})}, NOW)
        assertMatchesSchema('status', result)
        verdicts[name] = [result.verdict, result.exitCode]
        if (name === 'probedLacksVip') assert.equal(result.installs[0]?.vipProbe?.vipSan?.state, 'absent')
        if (name === 'probedSilent') assert.equal(result.installs[0]?.vipProbe?.error?.kind, 'refused')
      }
      assert.deepEqual(verdicts, {
        healthy: ['healthy', 0],
        down: ['down', 4],
        splitBrain: ['degraded', 4],
        none: ['not-installed', 4],
        probedLacksVip: ['degraded', 4],
        probedSilent: ['degraded', 4],
      })
    } finally {
      await server.close()
    }
  })
})
