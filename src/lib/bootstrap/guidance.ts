import {DEFAULTS} from '../config/vip-config.js'
import {DEFAULT_API_PORT} from '../constants.js'
import {DISTRIBUTIONS, type Distribution} from './distribution.js'
import type {StaticPodConfig} from './static-pod.js'

export interface GuidanceInput {
  distribution: Distribution
  config: StaticPodConfig
}

/** kubeadm's preflight check that refuses a non-empty manifest directory (its name is the directory's path). */
export const KUBEADM_MANIFESTS_CHECK = 'DirAvailable--etc-kubernetes-manifests'

const shellQuote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`)

/** The `karp install` that takes over: the same VIP, vhid and agent settings, and the same password. */
export function handoverCommand(config: StaticPodConfig): string {
  const flags = [`--vip ${config.vip}`, `--vhid ${config.vhid}`]
  if (config.apiPort !== DEFAULT_API_PORT) flags.push(`--api-port ${config.apiPort}`)
  if (config.interface !== undefined) flags.push(`--interface ${config.interface}`)
  if (config.advbase !== DEFAULTS.advbase) flags.push(`--advbase ${config.advbase}`)
  if (config.preempt !== DEFAULTS.preempt) flags.push('--preempt')
  if (config.image !== DEFAULTS.image) flags.push(`--image ${shellQuote(config.image)}`)
  return `karp install ${flags.join(' ')} --password-file <a copy of ${config.passwordFile}>`
}

function distributionSteps({distribution, config}: GuidanceInput): string[] {
  const endpoint = `${config.vip}:${config.apiPort}`
  const {title, caFile} = DISTRIBUTIONS[distribution]
  const waitsForCa =
    config.caFile === caFile ? `the agent starts once ${title} has written ${caFile}` : `the agent starts once ${config.caFile} exists`
  if (distribution === 'kubeadm') {
    return [
      `2. First node: kubeadm init --control-plane-endpoint ${endpoint} --upload-certs --ignore-preflight-errors=${KUBEADM_MANIFESTS_CHECK}`,
      `   (or controlPlaneEndpoint: ${endpoint} in the ClusterConfiguration): the VIP goes into the API server certificate and every kubeconfig;`,
      `   the flag lets kubeadm's preflight accept a non-empty /etc/kubernetes/manifests; ${waitsForCa}.`,
      `3. Other control-plane nodes: the kubeadm join ${endpoint} ... --control-plane --certificate-key ... that kubeadm init printed,`,
      `   with --ignore-preflight-errors=${KUBEADM_MANIFESTS_CHECK}. Workers join through ${endpoint} too.`,
    ]
  }
  const join =
    distribution === 'k3s'
      ? [
          `3. First server: k3s server --cluster-init --tls-san ${config.vip}; other servers: k3s server --server https://${endpoint} --token <token> --tls-san ${config.vip};`,
          `   agents: k3s agent --server https://${endpoint} --token <token>. --tls-san (config.yaml: tls-san) puts the VIP into the API server certificate.`,
        ]
      : [
          `3. Every server: tls-san: [${config.vip}] in /etc/rancher/rke2/config.yaml, which puts the VIP into the API server certificate;`,
          `   other servers and agents register on port 9345 through the VIP: server: https://${config.vip}:9345 and token: <token> in their config.yaml.`,
        ]
  return [
    `2. ${title}'s kubelet reads static pods from ${DISTRIBUTIONS[distribution].manifestDir}; ${waitsForCa}.`,
    ...join,
    `   ${title}'s API server refuses anonymous requests, so the agent's health check (a static pod has no credentials) never passes:`,
    '   until karp install hands over, the agent holds the VIP without the health gate.',
  ]
}

/** What to do next (steps 2 and 3 are the distribution's), with the user's values: the same password everywhere, the cluster on the VIP, the handover. */
export function bootstrapGuidance(input: GuidanceInput): string[] {
  const {distribution, config} = input
  const {title} = DISTRIBUTIONS[distribution]
  const node = distribution === 'kubeadm' ? 'control-plane node' : 'server'
  return [
    `Next, for a new ${title} cluster whose API server is at ${config.vip}:${config.apiPort} from the start:`,
    `1. Copy ${config.passwordFile} (mode 0600) to every other ${node}, then run this same command there before it joins: one password for all.`,
    ...distributionSteps(input),
    `4. Once the cluster runs: ${handoverCommand(config)}`,
    '   hands the VIP to the DaemonSet without it going away, and says which static pod manifests to remove, in which order.',
  ]
}
