import type {V1Container, V1EnvVar, V1PodSpec, V1Volume, V1VolumeMount} from '@kubernetes/client-node'

import type {VipConfig} from '../config/vip-config.js'
import {STATIC_MANIFEST_ANNOTATION, STATIC_PASSWORD_FILE_ANNOTATION, STATIC_POD_LABEL, STATIC_POD_NAMESPACE} from '../constants.js'
import {renderAgentDaemonSet} from '../manifests/render.js'

/** What a static-pod agent is made of: the install's settings but the password, and three host paths. */
export interface StaticPodConfig extends Pick<
  VipConfig,
  'name' | 'vip' | 'vhid' | 'advbase' | 'preempt' | 'apiPort' | 'interface' | 'image'
> {
  /** Absolute host path the manifest is to be saved as (annotated, so install can name the file to remove). */
  manifestFile: string
  /** Absolute host path of the password file, mounted into the pod. */
  passwordFile: string
  /** Absolute host path of the cluster CA, mounted into the pod. */
  caFile: string
}

export type StaticPodManifest = {
  apiVersion: 'v1'
  kind: 'Pod'
  metadata: {name: string; namespace: string; labels: Record<string, string>; annotations: Record<string, string>}
  spec: V1PodSpec & {containers: V1Container[]; volumes: V1Volume[]}
}

/** Where the agent container reads the cluster CA from: the host file the pod mounts there. */
export const STATIC_POD_CA_PATH = '/etc/karp/ca.crt'

/** The DaemonSet's variables a static pod leaves out: ranks need the API, which a static pod cannot read. */
export const STATIC_POD_DROPPED_ENV = ['KARP_PEER_SELECTOR', 'KARP_REVISION']

/**
 * The variables a static pod adds. The agent starts CARP at once (a bootstrap VIP must exist before the API
 * server answers, the gate arms once the check has passed), verifies the API server with the CA it mounts,
 * and has no API address: the kubelet injects the `kubernetes` Service's once it knows it, and the agent
 * must not try node checks and role reports it has no credentials for.
 */
export const STATIC_POD_ADDED_ENV: V1EnvVar[] = [
  {name: 'KARP_HEALTH_GATE', value: 'after-first-ready'},
  {name: 'KARP_CA_FILE', value: STATIC_POD_CA_PATH},
  {name: 'KUBERNETES_SERVICE_HOST', value: ''},
]

/** The pod-spec fields of the DaemonSet that only the scheduler or the API use: a static pod has neither. */
const SCHEDULING_FIELDS = ['serviceAccountName', 'affinity', 'nodeSelector', 'tolerations'] as const

/**
 * The agent as a static pod for one node, rendered from the DaemonSet's own pod spec (the same image,
 * command, env values, securityContext, resources and probes; test/unit/bootstrap.test.ts holds the
 * differences to the ones listed here). The password is never in it: the pod mounts the host's file.
 */
export function renderStaticPod(config: StaticPodConfig): StaticPodManifest {
  const daemonSet = renderAgentDaemonSet({...config, namespace: STATIC_POD_NAMESPACE, healthCheck: true})
  const daemonSetSpec = structuredClone(daemonSet.spec.template.spec) as unknown as V1PodSpec
  for (const field of SCHEDULING_FIELDS) delete daemonSetSpec[field]
  // The API refuses a mirror pod that uses a service account; a static pod has no API credentials at all.
  const spec = {automountServiceAccountToken: false, ...daemonSetSpec} as StaticPodManifest['spec']

  const agent = spec.containers.find((c) => c.name === 'agent')
  if (!agent) throw new Error('template daemonset.yaml: no container named agent')
  const env = (agent.env ?? []).filter((e) => !STATIC_POD_DROPPED_ENV.includes(e.name))
  const passwordPath = env.find((e) => e.name === 'KARP_PASSWORD_FILE')?.value
  if (!passwordPath) throw new Error('template daemonset.yaml: the agent has no KARP_PASSWORD_FILE')
  agent.env = [...env, ...STATIC_POD_ADDED_ENV]
  const otherMounts = (agent.volumeMounts ?? []).filter((m) => m.name !== 'password')
  const hostMounts: V1VolumeMount[] = [
    {name: 'password', mountPath: passwordPath, readOnly: true},
    {name: 'ca', mountPath: STATIC_POD_CA_PATH, readOnly: true},
  ]
  agent.volumeMounts = [...hostMounts, ...otherMounts]
  spec.volumes = [
    {name: 'password', hostPath: {path: config.passwordFile, type: 'File'}},
    {name: 'ca', hostPath: {path: config.caFile, type: 'File'}},
    ...spec.volumes.filter((v) => v.name !== 'password'),
  ]

  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: config.name,
      namespace: STATIC_POD_NAMESPACE,
      labels: {...daemonSet.metadata.labels, [STATIC_POD_LABEL]: 'true'},
      annotations: {
        ...daemonSet.metadata.annotations,
        [STATIC_MANIFEST_ANNOTATION]: config.manifestFile,
        [STATIC_PASSWORD_FILE_ANNOTATION]: config.passwordFile,
      },
    },
    spec,
  }
}
