// Objects as the API server shows them, for tests of what install and status read: a rolled-out karp
// DaemonSet, and the mirror pod a kubelet makes of a static-pod agent's manifest (karp bootstrap).
import type {V1DaemonSet, V1Pod} from '@kubernetes/client-node'

import {AGENT_IMAGE} from '../../src/lib/config/agent-image.js'
import {
  API_PORT_ANNOTATION,
  APP_NAME,
  COMPONENT_LABEL,
  INSTANCE_LABEL,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  NAME_LABEL,
  STATIC_MANIFEST_ANNOTATION,
  STATIC_PASSWORD_FILE_ANNOTATION,
  STATIC_POD_LABEL,
  STATIC_POD_NAMESPACE,
  VERSION_LABEL,
  VHID_ANNOTATION,
  VIP_ANNOTATION,
} from '../../src/lib/constants.js'

/** karp-system/karp for VIP 192.168.1.250 (vhid 10) on the control-plane nodes, all 3 agents available. */
export const rolledOutDaemonSet: V1DaemonSet = {
  metadata: {
    name: 'karp',
    namespace: 'karp-system',
    generation: 1,
    annotations: {[VIP_ANNOTATION]: '192.168.1.250', [VHID_ANNOTATION]: '10', [API_PORT_ANNOTATION]: '6443'},
  },
  spec: {
    selector: {},
    template: {spec: {containers: [], nodeSelector: {'node-role.kubernetes.io/control-plane': ''}}},
  },
  status: {
    desiredNumberScheduled: 3,
    currentNumberScheduled: 3,
    numberReady: 3,
    updatedNumberScheduled: 3,
    numberAvailable: 3,
    numberMisscheduled: 0,
    observedGeneration: 1,
  },
}

export interface MirrorPodOptions {
  vip: string
  /** As annotated: text, so a test can give a malformed one. */
  vhid: string
  /** null: no manifest annotation. */
  manifest?: string | null
  passwordFile?: string
  /** The kubelet's config hash, which names the mirror pod's static pod; false: no mirror annotation at all. */
  mirror?: string | false
  ready?: boolean
  namespace?: string
  created?: Date
}

/**
 * The mirror pod a kubelet makes of the static pod karp bootstrap writes for `node`: the manifest's labels,
 * annotations and container, the kubelet's kubernetes.io/config.* annotations, and a Ready status as the
 * kubelet reports it (on create the API server drops the status: set it through the status subresource).
 */
export function staticAgentMirrorPod(node: string, opts: MirrorPodOptions): V1Pod {
  const passwordFile = opts.passwordFile ?? '/etc/karp/password'
  const mirror = opts.mirror ?? node.replace(/[^a-z0-9]/g, '')
  return {
    metadata: {
      name: `karp-${node}`,
      namespace: opts.namespace ?? STATIC_POD_NAMESPACE,
      ...(opts.created ? {creationTimestamp: opts.created} : {}),
      labels: {
        [NAME_LABEL]: APP_NAME,
        [INSTANCE_LABEL]: 'karp',
        [COMPONENT_LABEL]: 'agent',
        [MANAGED_BY_LABEL]: MANAGED_BY,
        [VERSION_LABEL]: '0.1.0',
        [STATIC_POD_LABEL]: 'true',
      },
      annotations: {
        [VIP_ANNOTATION]: opts.vip,
        [VHID_ANNOTATION]: opts.vhid,
        [API_PORT_ANNOTATION]: '6443',
        ...(opts.manifest === null ? {} : {[STATIC_MANIFEST_ANNOTATION]: opts.manifest ?? '/etc/kubernetes/manifests/karp.yaml'}),
        [STATIC_PASSWORD_FILE_ANNOTATION]: passwordFile,
        ...(mirror === false
          ? {}
          : {
              'kubernetes.io/config.hash': mirror,
              'kubernetes.io/config.mirror': mirror,
              'kubernetes.io/config.seen': '2026-12-01T00:00:00.000000000Z',
              'kubernetes.io/config.source': 'file',
            }),
      },
    },
    spec: {
      nodeName: node,
      hostNetwork: true,
      automountServiceAccountToken: false,
      tolerations: [{operator: 'Exists', effect: 'NoExecute'}],
      containers: [
        {
          name: 'agent',
          image: AGENT_IMAGE,
          command: ['/usr/local/lib/karp/entrypoint.sh'],
          env: [
            {name: 'KARP_VIP', value: opts.vip},
            {name: 'KARP_VHID', value: opts.vhid},
            {name: 'KARP_HEALTH_URL', value: 'https://127.0.0.1:6443/readyz'},
            {name: 'KARP_HEALTH_GATE', value: 'after-first-ready'},
            {name: 'KARP_CA_FILE', value: '/etc/karp/ca.crt'},
            {name: 'KARP_PASSWORD_FILE', value: '/etc/karp/password'},
            {name: 'KUBERNETES_SERVICE_HOST', value: ''},
            {name: 'NODE_NAME', valueFrom: {fieldRef: {fieldPath: 'spec.nodeName'}}},
            {name: 'POD_NAME', valueFrom: {fieldRef: {fieldPath: 'metadata.name'}}},
            {name: 'POD_NAMESPACE', valueFrom: {fieldRef: {fieldPath: 'metadata.namespace'}}},
          ],
          volumeMounts: [
            {name: 'password', mountPath: '/etc/karp/password', readOnly: true},
            {name: 'ca', mountPath: '/etc/karp/ca.crt', readOnly: true},
            {name: 'state', mountPath: '/run/karp'},
          ],
        },
      ],
      volumes: [
        {name: 'password', hostPath: {path: passwordFile, type: 'File'}},
        {name: 'ca', hostPath: {path: '/etc/kubernetes/pki/ca.crt', type: 'File'}},
        {name: 'state', emptyDir: {medium: 'Memory'}},
      ],
    },
    status: {phase: 'Running', conditions: [{type: 'Ready', status: opts.ready === false ? 'False' : 'True'}]},
  }
}
