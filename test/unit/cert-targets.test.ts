import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import type {V1Node} from '@kubernetes/client-node'

import {certCheckExitCode} from '../../src/lib/cert/check-cert.js'
import {chooseInstall, clusterTargets, isControlPlaneNode, parseServerAddress} from '../../src/lib/cert/targets.js'
import type {EndpointReport} from '../../src/lib/cert/verdict.js'
import {UsageError} from '../../src/lib/errors.js'
import {describeInstall} from '../../src/lib/kube/karp-installs.js'
import {API_PORT_ANNOTATION, VIP_ANNOTATION} from '../../src/lib/constants.js'

// Addresses here are data only: nothing in this file opens a connection.
function node(name: string, labels: Record<string, string>, addresses: Array<[string, string]>): V1Node {
  return {metadata: {name, labels}, status: {addresses: addresses.map(([type, address]) => ({type, address}))}}
}

describe('parseServerAddress', () => {
  const good: Array<[string, string, number]> = [
    ['10.0.0.11', '10.0.0.11', 6443],
    ['10.0.0.11:443', '10.0.0.11', 443],
    ['[fd00::11]:6443', 'fd00::11', 6443],
    ['[fd00::11]', 'fd00::11', 6443],
    ['fd00::11', 'fd00::11', 6443],
    ['api.example.com:8443', 'api.example.com', 8443],
    ['https://api.example.com:6443', 'api.example.com', 6443],
    ['https://10.0.0.11:6443/', '10.0.0.11', 6443],
    ['https://[fd00::11]:7443/k8s', 'fd00::11', 7443],
  ]
  for (const [text, host, port] of good) {
    it(`reads ${text}`, () => {
      assert.deepEqual(parseServerAddress(text, 6443), {ok: true, value: {host, port}})
    })
  }

  const bad: Array<[string, RegExp]> = [
    ['10.0.0.11:0', /port must be a whole number from 1 to 65535/],
    ['10.0.0.11:65536', /port must be a whole number/],
    ['10.0.0.11:https', /port must be a whole number/],
    ['fd00::11:6443:x', /expected host\[:port\]/],
    ['[10.0.0.11]:6443', /expected host\[:port\]/],
    ['http://10.0.0.11:6443', /the API server speaks https only/],
    ['bad_host:6443', /expected host\[:port\]/],
    ['', /expected host\[:port\]/],
  ]
  for (const [text, problem] of bad) {
    it(`refuses ${JSON.stringify(text)}, naming the flag and value`, () => {
      const checked = parseServerAddress(text, 6443)
      assert.equal(checked.ok, false)
      assert.match(checked.ok ? '' : checked.problem, new RegExp(`^invalid --server ${JSON.stringify(text).replace(/[[\]]/g, '\\$&')}: `))
      assert.match(checked.ok ? '' : checked.problem, problem)
    })
  }
})

describe('isControlPlaneNode', () => {
  it('knows the control-plane, master and RKE controlplane=true labels', () => {
    assert.equal(isControlPlaneNode(node('a', {'node-role.kubernetes.io/control-plane': ''}, [])), true)
    assert.equal(isControlPlaneNode(node('b', {'node-role.kubernetes.io/master': 'true'}, [])), true)
    assert.equal(isControlPlaneNode(node('c', {'node-role.kubernetes.io/controlplane': 'true'}, [])), true)
    assert.equal(isControlPlaneNode(node('d', {'node-role.kubernetes.io/controlplane': 'false'}, [])), false)
    assert.equal(isControlPlaneNode(node('e', {'node-role.kubernetes.io/worker': 'true'}, [])), false)
  })
})

describe('clusterTargets', () => {
  const cp = {'node-role.kubernetes.io/control-plane': ''}

  it('lists the VIP, then each control-plane node by name on its InternalIP, IPv4 first, workers left out', () => {
    const nodes = [
      node('cp2', cp, [
        ['InternalIP', 'fd00::12'],
        ['InternalIP', '10.0.0.12'],
      ]),
      node('cp1', cp, [
        ['ExternalIP', '203.0.113.1'],
        ['InternalIP', '10.0.0.11'],
      ]),
      node('w1', {}, [['InternalIP', '10.0.0.21']]),
      node('cp3', {'node-role.kubernetes.io/master': ''}, [['InternalIP', 'fd00::13']]),
    ]
    assert.deepEqual(clusterTargets('10.0.0.250', nodes, 6443), {
      targets: [
        {role: 'vip', host: '10.0.0.250', port: 6443},
        {role: 'node', node: 'cp1', host: '10.0.0.11', port: 6443},
        {role: 'node', node: 'cp2', host: '10.0.0.12', port: 6443},
        {role: 'node', node: 'cp3', host: 'fd00::13', port: 6443},
      ],
      warnings: [],
    })
  })

  it('warns about a control-plane node without InternalIP, and when there is none at all', () => {
    const {targets, warnings} = clusterTargets('10.0.0.250', [node('cp1', cp, [['Hostname', 'cp1']])], 443)
    assert.deepEqual(targets, [{role: 'vip', host: '10.0.0.250', port: 443}])
    assert.deepEqual(warnings, ['control-plane node cp1 has no InternalIP; its certificate was not checked'])
    assert.match(
      clusterTargets('10.0.0.250', [node('w1', {}, [['InternalIP', '10.0.0.21']])], 6443).warnings[0] ?? '',
      /^no control-plane node found \(label node-role\.kubernetes\.io\/control-plane, /,
    )
  })
})

describe('chooseInstall', () => {
  const install = (namespace: string, name: string, vip?: string) =>
    describeInstall({metadata: {namespace, name, annotations: vip ? {[VIP_ANNOTATION]: vip, [API_PORT_ANNOTATION]: '7443'} : {}}})

  it('takes the only install, with its VIP and port', () => {
    const chosen = chooseInstall([install('karp-system', 'karp', '10.0.0.250')], {})
    assert.deepEqual([chosen.namespace, chosen.name, chosen.vip, chosen.apiPort], ['karp-system', 'karp', '10.0.0.250', 7443])
  })

  it('picks one of several by --name and --namespace, and refuses to guess', () => {
    const installs = [
      install('karp-system', 'karp', '10.0.0.250'),
      install('infra', 'karp', '10.0.1.250'),
      install('infra', 'second', '10.0.1.251'),
    ]
    assert.equal(chooseInstall(installs, {namespace: 'infra', name: 'second'}).vip, '10.0.1.251')
    assert.equal(chooseInstall(installs, {namespace: 'karp-system'}).vip, '10.0.0.250')
    assert.throws(
      () => chooseInstall(installs, {name: 'karp'}),
      (e: UsageError) =>
        e instanceof UsageError &&
        e.message === '2 karp installs found for --name karp: karp-system/karp (VIP 10.0.0.250), infra/karp (VIP 10.0.1.250)' &&
        e.hint === 'choose one with --name and -n/--namespace, or pass --vip',
    )
    assert.throws(
      () => chooseInstall(installs, {name: 'nope'}),
      /^UsageError: no karp install matches --name nope; installed: karp-system\/karp \(VIP 10\.0\.0\.250\), /,
    )
  })

  it('says what to do with no install, or one without a VIP', () => {
    assert.throws(
      () => chooseInstall([], {}),
      (e: UsageError) => e.exitCode === 2 && /^no karp install found in the cluster/.test(e.message) && /pass --vip/.test(e.hint ?? ''),
    )
    assert.throws(
      () => chooseInstall([install('karp-system', 'karp')], {}),
      /karp install karp-system\/karp has no karp\.io\/vip annotation/,
    )
  })
})

describe('certCheckExitCode', () => {
  const report = (status: EndpointReport['status']) => ({endpoint: 'x', host: 'x', port: 1, status})
  it('is 0 when every endpoint is fine, warnings included', () => {
    assert.equal(certCheckExitCode([report('ok'), report('warning')]), 0)
  })
  it('is 4 when a check failed or some endpoint was unreachable', () => {
    assert.equal(certCheckExitCode([report('ok'), report('failed')]), 4)
    assert.equal(certCheckExitCode([report('ok'), report('unreachable')]), 4)
  })
  it('is 3 when nothing was reachable', () => {
    assert.equal(certCheckExitCode([report('unreachable'), report('unreachable')]), 3)
  })
})
