import {echo} from '../echo.js'
import type {Checked} from '../config/validate.js'

/** Where each distribution's kubelet reads static pods from, and where it keeps the cluster CA on a server. */
export const DISTRIBUTIONS = {
  kubeadm: {title: 'kubeadm', manifestDir: '/etc/kubernetes/manifests', caFile: '/etc/kubernetes/pki/ca.crt'},
  k3s: {
    title: 'k3s',
    manifestDir: '/var/lib/rancher/k3s/agent/pod-manifests',
    caFile: '/var/lib/rancher/k3s/server/tls/server-ca.crt',
  },
  rke2: {
    title: 'RKE2',
    manifestDir: '/var/lib/rancher/rke2/agent/pod-manifests',
    caFile: '/var/lib/rancher/rke2/server/tls/server-ca.crt',
  },
} as const

export type Distribution = keyof typeof DISTRIBUTIONS

export const DEFAULT_DISTRIBUTION: Distribution = 'kubeadm'

const NAMES = Object.keys(DISTRIBUTIONS) as Distribution[]

export function checkDistribution(value: string): Checked<Distribution> {
  return (NAMES as string[]).includes(value)
    ? {ok: true, value: value as Distribution}
    : {ok: false, problem: `invalid --distribution ${echo(value)}: expected ${NAMES.slice(0, -1).join(', ')} or ${NAMES.at(-1)}`}
}
