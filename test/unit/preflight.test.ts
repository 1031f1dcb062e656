import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {checkPlacement, type NodeFacts, type PlacementInput} from '../../src/lib/install/preflight.js'
import {describeInstall} from '../../src/lib/kube/karp-installs.js'
import {DEFAULT_SUBNET_PREFIX, VHID_ANNOTATION, VIP_ANNOTATION} from '../../src/lib/constants.js'

const node = (name: string, ip: string, extra: string[] = []): NodeFacts => ({
  name,
  labels: {},
  internalIPv4: [ip],
  addresses: [ip, ...extra],
})
const three = [node('cp1', '192.168.1.11'), node('cp2', '192.168.1.12'), node('cp3', '192.168.1.13')]

function input(overrides: Partial<PlacementInput> = {}): PlacementInput {
  return {
    vip: '192.168.1.250',
    vhid: 10,
    namespace: 'karp-system',
    name: 'karp',
    subnetPrefix: DEFAULT_SUBNET_PREFIX,
    selected: three,
    allNodes: three,
    installs: [],
    selection: 'control-plane nodes',
    ...overrides,
  }
}

const install = (namespace: string, name: string, vip: string, vhid: number) =>
  describeInstall({metadata: {namespace, name, annotations: {[VIP_ANNOTATION]: vip, [VHID_ANNOTATION]: String(vhid)}}})

describe('checkPlacement', () => {
  it('passes three nodes sharing the VIP subnet, without warnings', () => {
    assert.deepEqual(checkPlacement(input()), {problems: [], warnings: []})
  })

  it('fails with no selected node, naming the selection', () => {
    const {problems} = checkPlacement(input({selected: []}))
    assert.equal(problems.length, 1)
    assert.match(problems[0] as string, /no node matches the node selection \(control-plane nodes\)/)
  })

  it('warns below three nodes and says when failover is impossible', () => {
    assert.match(
      checkPlacement(input({selected: three.slice(0, 1)})).warnings[0] as string,
      /only 1 node selected \(cp1\): the VIP cannot fail over; 3 control-plane nodes are recommended/,
    )
    const two = checkPlacement(input({selected: three.slice(0, 2)}))
    assert.deepEqual(two.problems, [])
    assert.match(two.warnings[0] as string, /only 2 nodes selected .*3 control-plane nodes are recommended/)
  })

  it('fails a VIP outside a node subnet, naming node, subnet and address', () => {
    const {problems} = checkPlacement(input({vip: '192.168.2.250'}))
    assert.equal(problems.length, 3)
    assert.match(problems[0] as string, /VIP 192.168.2.250 is outside node cp1's subnet 192.168.1.0\/24 \(InternalIP 192.168.1.11\)/)
  })

  it('honours --subnet-prefix', () => {
    assert.deepEqual(checkPlacement(input({vip: '192.168.2.250', subnetPrefix: 16})).problems, [])
    assert.equal(checkPlacement(input({vip: '192.168.1.250', subnetPrefix: 28})).problems.length, 3)
  })

  it('fails the network and broadcast addresses', () => {
    assert.deepEqual(checkPlacement(input({vip: '192.168.1.0'})).problems, ['VIP 192.168.1.0 is the network address of 192.168.1.0/24'])
    assert.deepEqual(checkPlacement(input({vip: '192.168.1.255'})).problems, [
      'VIP 192.168.1.255 is the broadcast address of 192.168.1.0/24',
    ])
  })

  it('fails a VIP that is any node address, selected or not', () => {
    assert.deepEqual(checkPlacement(input({vip: '192.168.1.12'})).problems, ['VIP 192.168.1.12 is already an address of node cp2'])
    const worker = node('w1', '192.168.1.40')
    assert.deepEqual(checkPlacement(input({vip: '192.168.1.40', allNodes: [...three, worker]})).problems, [
      'VIP 192.168.1.40 is already an address of node w1',
    ])
  })

  it('fails a node without an IPv4 InternalIP', () => {
    const v6 = {name: 'cp6', labels: {}, internalIPv4: [], addresses: ['fd00::6']}
    assert.deepEqual(checkPlacement(input({selected: [...three, v6]})).problems, [
      "node cp6 has no IPv4 InternalIP; karp needs one on the VIP's subnet",
    ])
  })

  it('fails a vhid or VIP used by another karp install, but not by this one', () => {
    const other = install('infra', 'other', '192.168.1.240', 10)
    assert.deepEqual(checkPlacement(input({installs: [other]})).problems, [
      'vhid 10 is already used by karp install infra/other (VIP 192.168.1.240); pick another --vhid',
    ])
    assert.deepEqual(checkPlacement(input({installs: [install('infra', 'other', '192.168.1.250', 11)]})).problems, [
      'VIP 192.168.1.250 is already managed by karp install infra/other',
    ])
    assert.deepEqual(checkPlacement(input({installs: [install('karp-system', 'karp', '192.168.1.250', 10)]})).problems, [])
  })
})
