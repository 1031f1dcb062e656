import type {V1Node} from '@kubernetes/client-node'

import {isControlPlaneNode} from './targets.js'

export const DISTRIBUTIONS = ['rke', 'rke2', 'k3s', 'kubeadm', 'talos', 'k0s'] as const
export type DistributionId = (typeof DISTRIBUTIONS)[number] | 'unknown'

export const DISTRIBUTION_NAMES: Record<DistributionId, string> = {
  rke: 'RKE',
  rke2: 'RKE2',
  k3s: 'k3s',
  kubeadm: 'kubeadm',
  talos: 'Talos',
  k0s: 'k0s',
  unknown: 'an unrecognised distribution',
}

export interface DetectedDistribution {
  id: DistributionId
  /** What gave it away, e.g. "node cp1: kubeletVersion v1.30.4+k3s1"; empty when unknown. */
  evidence: string
}

type Clue = (node: V1Node) => string | undefined

const kubeletVersion =
  (marker: string): Clue =>
  (node) => {
    const version = node.status?.nodeInfo?.kubeletVersion ?? ''
    return version.includes(marker) ? `kubeletVersion ${version}` : undefined
  }

const osImage =
  (pattern: RegExp): Clue =>
  (node) => {
    const image = node.status?.nodeInfo?.osImage ?? ''
    return pattern.test(image) ? `osImage ${JSON.stringify(image)}` : undefined
  }

const annotationPrefix =
  (prefix: string): Clue =>
  (node) => {
    const key = Object.keys(node.metadata?.annotations ?? {}).find((k) => k.startsWith(prefix))
    return key ? `annotation ${key}` : undefined
  }

const label =
  (key: string, value?: string): Clue =>
  (node) => {
    const actual = node.metadata?.labels?.[key]
    if (actual === undefined || (value !== undefined && actual !== value)) return undefined
    return `label ${key}=${actual}`
  }

const labelPrefix =
  (prefix: string): Clue =>
  (node) => {
    const key = Object.keys(node.metadata?.labels ?? {}).find((k) => k.startsWith(prefix))
    return key ? `label ${key}` : undefined
  }

// First match wins, so the most specific markers come first: RKE2 grew out of k3s and Rancher-provisioned
// RKE2 nodes carry rke.cattle.io markers; the kubeadm control-plane label is the weakest clue, so it comes last.
const RULES: Array<[DistributionId, Clue[]]> = [
  ['talos', [osImage(/^Talos\b/i)]],
  ['k0s', [kubeletVersion('+k0s'), labelPrefix('node.k0sproject.io/')]],
  ['rke2', [kubeletVersion('+rke2'), annotationPrefix('rke2.io/'), label('node.kubernetes.io/instance-type', 'rke2')]],
  ['k3s', [kubeletVersion('+k3s'), annotationPrefix('k3s.io/'), label('node.kubernetes.io/instance-type', 'k3s')]],
  ['rke', [annotationPrefix('rke.cattle.io/'), label('node-role.kubernetes.io/controlplane', 'true')]],
  ['kubeadm', [annotationPrefix('kubeadm.alpha.kubernetes.io/'), label('node.kubernetes.io/exclude-from-external-load-balancers')]],
]

/** Which distribution installed the cluster, from node labels, annotations and versions. */
export function detectDistribution(nodes: V1Node[]): DetectedDistribution {
  // Control-plane nodes first: they carry the markers of whatever runs the API server.
  const ordered = [...nodes.filter(isControlPlaneNode), ...nodes.filter((n) => !isControlPlaneNode(n))]
  for (const [id, clues] of RULES) {
    for (const clue of clues) {
      for (const node of ordered) {
        const found = clue(node)
        if (found) return {id, evidence: `node ${node.metadata?.name ?? '?'}: ${found}`}
      }
    }
  }
  return {id: 'unknown', evidence: ''}
}
