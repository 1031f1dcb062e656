import type {V1Node} from '@kubernetes/client-node'
import ipaddr from 'ipaddr.js'

import type {KarpInstall} from '../kube/karp-installs.js'

export interface NodeFacts {
  name: string
  labels: Record<string, string>
  /** IPv4 InternalIPs: the addresses CARP peers meet on. */
  internalIPv4: string[]
  /** Every address the node reports, of any type or family. */
  addresses: string[]
}

export function nodeFacts(node: V1Node): NodeFacts {
  const addresses = node.status?.addresses ?? []
  return {
    name: node.metadata?.name ?? '',
    labels: node.metadata?.labels ?? {},
    internalIPv4: addresses.filter((a) => a.type === 'InternalIP' && ipaddr.IPv4.isValidFourPartDecimal(a.address)).map((a) => a.address),
    addresses: addresses.map((a) => a.address),
  }
}

export interface PlacementInput {
  vip: string
  vhid: number
  namespace: string
  name: string
  subnetPrefix: number
  selected: NodeFacts[]
  allNodes: NodeFacts[]
  /** Every karp install in the cluster, this one included if it exists. */
  installs: KarpInstall[]
  /** How the nodes were selected, for the message when none was. */
  selection: string
  /** Nodes running a static-pod agent of this VIP (karp bootstrap): the VIP among their addresses is that agent's, held for the handover. */
  staticAgentNodes?: string[]
}

export interface PlacementVerdict {
  problems: string[]
  warnings: string[]
}

/**
 * Whether the VIP can float between the selected nodes: CARP only works inside one L2 subnet, so every
 * node must share a subnet with the VIP, and the VIP must collide with nothing already there.
 */
export function checkPlacement(input: PlacementInput): PlacementVerdict {
  const problems: string[] = []
  const warnings: string[] = []
  const vip = ipaddr.IPv4.parse(input.vip)
  if (input.selected.length === 0) {
    problems.push(`no node matches the node selection (${input.selection}); karp needs at least one node to run its agent on`)
  } else if (input.selected.length < 3) {
    warnings.push(
      `only ${input.selected.length} node${input.selected.length === 1 ? '' : 's'} selected (${input.selected.map((n) => n.name).join(', ')}): ` +
        (input.selected.length === 1 ? 'the VIP cannot fail over; ' : '') +
        '3 control-plane nodes are recommended',
    )
  }
  for (const node of input.selected) {
    const own = node.internalIPv4[0]
    if (own === undefined) {
      problems.push(`node ${node.name} has no IPv4 InternalIP; karp needs one on the VIP's subnet`)
      continue
    }
    const cidr = `${own}/${input.subnetPrefix}`
    const network = ipaddr.IPv4.networkAddressFromCIDR(cidr).toString()
    if (!vip.match(ipaddr.IPv4.parse(own), input.subnetPrefix)) {
      problems.push(
        `VIP ${input.vip} is outside node ${node.name}'s subnet ${network}/${input.subnetPrefix} (InternalIP ${own}); ` +
          'the VIP must be on the subnet the nodes share (--subnet-prefix sets its size)',
      )
      continue
    }
    if (input.vip === network) problems.push(`VIP ${input.vip} is the network address of ${network}/${input.subnetPrefix}`)
    if (input.vip === ipaddr.IPv4.broadcastAddressFromCIDR(cidr).toString()) {
      problems.push(`VIP ${input.vip} is the broadcast address of ${network}/${input.subnetPrefix}`)
    }
  }
  for (const node of input.allNodes) {
    if (node.addresses.includes(input.vip) && !input.staticAgentNodes?.includes(node.name))
      problems.push(`VIP ${input.vip} is already an address of node ${node.name}`)
  }
  for (const other of input.installs) {
    if (other.namespace === input.namespace && other.name === input.name) continue
    const where = `karp install ${other.namespace}/${other.name}`
    if (other.vhid === input.vhid)
      problems.push(`vhid ${input.vhid} is already used by ${where} (VIP ${other.vip ?? 'unknown'}); pick another --vhid`)
    if (other.vip === input.vip) problems.push(`VIP ${input.vip} is already managed by ${where}`)
  }
  return {problems: [...new Set(problems)], warnings}
}
