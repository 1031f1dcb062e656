// karp bootstrap's pure parts: the static pod rendered from the DaemonSet's pod spec, the distributions'
// paths, the checks of the paths a hostPath names, and the guidance. The binary on real files:
// cli-bootstrap.test.ts; on a full disk: test/integration/bootstrap-full-disk.test.ts.
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import type {V1Container, V1DaemonSet, V1PodSpec} from '@kubernetes/client-node'

import {AGENT_ENV, KUBERNETES_ENV} from '../../agent/env.js'
import {checkDistribution, DISTRIBUTIONS} from '../../src/lib/bootstrap/distribution.js'
import {bootstrapGuidance, handoverCommand} from '../../src/lib/bootstrap/guidance.js'
import {checkHostPath} from '../../src/lib/bootstrap/host-files.js'
import {renderStaticPod, type StaticPodConfig} from '../../src/lib/bootstrap/static-pod.js'
import {validateVipInput} from '../../src/lib/config/vip-config.js'
import {
  API_PORT_ANNOTATION,
  STATIC_MANIFEST_ANNOTATION,
  STATIC_PASSWORD_FILE_ANNOTATION,
  STATIC_POD_LABEL,
  VHID_ANNOTATION,
  VIP_ANNOTATION,
} from '../../src/lib/constants.js'
import {renderManifests} from '../../src/lib/manifests/render.js'
import {KARP_VERSION} from '../../src/lib/version.js'

const PATHS = {
  manifestFile: '/etc/kubernetes/manifests/karp.yaml',
  passwordFile: '/etc/karp/password',
  caFile: '/etc/kubernetes/pki/ca.crt',
}

function staticConfig(overrides: Partial<StaticPodConfig> = {}): StaticPodConfig {
  return {...validateVipInput({}).settings, vip: '192.168.1.250', ...PATHS, ...overrides}
}

/** The install's own DaemonSet for the same settings, as `karp install` applies it. */
function installDaemonSet(config: StaticPodConfig): V1DaemonSet {
  const objects = renderManifests({...config, namespace: 'karp-system', healthCheck: true, password: 's3cret'})
  return objects.find((o) => o.kind === 'DaemonSet') as unknown as V1DaemonSet
}

const envOf = (container: V1Container | undefined) =>
  Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]))

describe('renderStaticPod: the DaemonSet pod spec, as a static pod', () => {
  const config = staticConfig({vhid: 42, advbase: 2, preempt: true, interface: 'eth0', apiPort: 7443})
  const pod = renderStaticPod(config)
  const daemonSetSpec = installDaemonSet(config).spec?.template.spec as V1PodSpec

  it('runs the same agent container, but for the listed env and mounts', () => {
    const agent = daemonSetSpec.containers[0] as V1Container
    const expected: V1Container = {
      ...agent,
      env: [
        ...(agent.env ?? []).filter((e) => e.name !== 'KARP_PEER_SELECTOR' && e.name !== 'KARP_REVISION'),
        {name: 'KARP_HEALTH_GATE', value: 'after-first-ready'},
        {name: 'KARP_CA_FILE', value: '/etc/karp/ca.crt'},
        {name: 'KUBERNETES_SERVICE_HOST', value: ''},
      ],
      volumeMounts: [
        {name: 'password', mountPath: '/etc/karp/password', readOnly: true},
        {name: 'ca', mountPath: '/etc/karp/ca.crt', readOnly: true},
        {name: 'state', mountPath: '/run/karp'},
      ],
    }
    assert.deepEqual(pod.spec.containers, [expected])
    // What the differences leave the same, said outright: a template change that breaks them fails here too.
    assert.ok(envOf(agent).KARP_PEER_SELECTOR && envOf(agent).KARP_REVISION, 'the DaemonSet ranks its agents')
    assert.deepEqual(
      (agent.volumeMounts ?? []).find((m) => m.name === 'state'),
      {name: 'state', mountPath: '/run/karp'},
    )
  })

  it('keeps the pod-level fields but those of scheduling and the service account, which a static pod cannot use', () => {
    const {serviceAccountName, affinity, tolerations, containers, volumes, ...kept} = daemonSetSpec
    assert.ok(serviceAccountName && affinity && tolerations && containers.length === 1)
    const {automountServiceAccountToken, containers: _containers, volumes: staticVolumes, ...staticKept} = pod.spec
    assert.deepEqual(staticKept, kept)
    assert.equal(automountServiceAccountToken, false)
    assert.deepEqual(staticVolumes, [
      {name: 'password', hostPath: {path: '/etc/karp/password', type: 'File'}},
      {name: 'ca', hostPath: {path: '/etc/kubernetes/pki/ca.crt', type: 'File'}},
      (volumes ?? []).find((v) => v.name === 'state'),
    ])
    assert.equal(kept.hostNetwork, true)
  })

  it('passes the settings through the env, the health URL always on the API port', () => {
    const env = envOf(pod.spec.containers[0])
    assert.equal(env.KARP_VIP, '192.168.1.250')
    assert.equal(env.KARP_VHID, '42')
    assert.equal(env.KARP_ADVBASE, '2')
    assert.equal(env.KARP_PREEMPT, 'true')
    assert.equal(env.KARP_INTERFACE, 'eth0')
    assert.equal(env.KARP_HEALTH_URL, 'https://127.0.0.1:7443/readyz')
    assert.equal(env.KARP_PASSWORD_FILE, '/etc/karp/password')
    assert.deepEqual(env.NODE_NAME, {fieldRef: {fieldPath: 'spec.nodeName'}})
    assert.ok(!('KARP_INTERFACE' in envOf(renderStaticPod(staticConfig()).spec.containers[0])), 'an unset interface is left to the agent')
  })

  it("speaks the agent's env contract", () => {
    const known = new Set([...AGENT_ENV.map((v) => v.name), ...KUBERNETES_ENV])
    const names = (pod.spec.containers[0]?.env ?? []).map((e) => e.name)
    for (const name of names) assert.ok(known.has(name), `${name} is not in agent/env.ts`)
    for (const v of AGENT_ENV.filter((e) => e.required)) assert.ok(names.includes(v.name), `required ${v.name} missing`)
    assert.equal(new Set(names).size, names.length, 'no variable twice')
  })

  it('is named, labelled and annotated the way install and status find static-pod agents', () => {
    assert.deepEqual(pod.metadata, {
      name: 'karp',
      namespace: 'kube-system',
      labels: {
        'app.kubernetes.io/name': 'karp',
        'app.kubernetes.io/instance': 'karp',
        'app.kubernetes.io/component': 'agent',
        'app.kubernetes.io/managed-by': 'karp',
        'app.kubernetes.io/version': KARP_VERSION,
        [STATIC_POD_LABEL]: 'true',
      },
      annotations: {
        [VIP_ANNOTATION]: '192.168.1.250',
        [VHID_ANNOTATION]: '42',
        [API_PORT_ANNOTATION]: '7443',
        [STATIC_MANIFEST_ANNOTATION]: '/etc/kubernetes/manifests/karp.yaml',
        [STATIC_PASSWORD_FILE_ANNOTATION]: '/etc/karp/password',
      },
    })
    assert.equal(renderStaticPod(staticConfig({name: 'vip2'})).metadata.name, 'vip2')
  })

  it('keeps hostile values as plain strings', () => {
    const hostile = 'x\n---\nkind: Secret'
    const hostilePod = renderStaticPod(staticConfig({image: hostile, passwordFile: '/etc/karp/a: b'}))
    assert.equal(hostilePod.spec.containers[0]?.image, hostile)
    assert.equal(hostilePod.spec.volumes[0]?.hostPath?.path, '/etc/karp/a: b')
  })
})

describe('the distributions', () => {
  it('reads static pods and keeps the CA where each distribution does', () => {
    assert.deepEqual(DISTRIBUTIONS.kubeadm, {
      title: 'kubeadm',
      manifestDir: '/etc/kubernetes/manifests',
      caFile: '/etc/kubernetes/pki/ca.crt',
    })
    assert.equal(DISTRIBUTIONS.k3s.manifestDir, '/var/lib/rancher/k3s/agent/pod-manifests')
    assert.equal(DISTRIBUTIONS.k3s.caFile, '/var/lib/rancher/k3s/server/tls/server-ca.crt')
    assert.equal(DISTRIBUTIONS.rke2.manifestDir, '/var/lib/rancher/rke2/agent/pod-manifests')
    assert.equal(DISTRIBUTIONS.rke2.caFile, '/var/lib/rancher/rke2/server/tls/server-ca.crt')
  })

  it('refuses a distribution it does not know, naming the ones it does', () => {
    assert.deepEqual(checkDistribution('k3s'), {ok: true, value: 'k3s'})
    assert.deepEqual(checkDistribution('K3S'), {ok: false, problem: 'invalid --distribution "K3S": expected kubeadm, k3s or rke2'})
  })
})

describe('checkHostPath', () => {
  it('takes an absolute path, and a relative one only where karp resolves it', () => {
    assert.deepEqual(checkHostPath('ca-file', '/etc/kubernetes/pki/ca.crt'), {ok: true, value: '/etc/kubernetes/pki/ca.crt'})
    assert.deepEqual(checkHostPath('password-file', 'secret/password', '/root'), {ok: true, value: '/root/secret/password'})
    assert.deepEqual(checkHostPath('ca-file', 'pki/ca.crt'), {
      ok: false,
      problem: 'invalid --ca-file "pki/ca.crt": expected an absolute path on the node, such as /etc/kubernetes/pki/ca.crt',
    })
  })

  it('refuses "..", control characters and the empty path', () => {
    assert.deepEqual(checkHostPath('ca-file', '/etc/../ca.crt'), {
      ok: false,
      problem: 'invalid --ca-file "/etc/../ca.crt": a hostPath may not contain ".."; give the path without it',
    })
    assert.deepEqual(checkHostPath('ca-file', '/etc/ca\n.crt'), {
      ok: false,
      problem: 'invalid --ca-file "/etc/ca\\n.crt": expected a path without control characters',
    })
    assert.equal(checkHostPath('manifest-dir', '', '/root').ok, false)
  })
})

describe('bootstrapGuidance', () => {
  const text = (distribution: 'kubeadm' | 'k3s' | 'rke2', overrides: Partial<StaticPodConfig> = {}) =>
    bootstrapGuidance({distribution, config: staticConfig({vhid: 42, ...overrides})}).join('\n')

  it('kubeadm: the endpoint on the VIP, the preflight check the static pod trips, the join through the VIP', () => {
    const kubeadm = text('kubeadm')
    assert.match(
      kubeadm,
      /kubeadm init --control-plane-endpoint 192\.168\.1\.250:6443 --upload-certs --ignore-preflight-errors=DirAvailable--etc-kubernetes-manifests\n/,
    )
    assert.match(kubeadm, /controlPlaneEndpoint: 192\.168\.1\.250:6443 in the ClusterConfiguration/)
    assert.match(kubeadm, /kubeadm join 192\.168\.1\.250:6443 \.\.\. --control-plane/)
    assert.match(kubeadm, /Copy \/etc\/karp\/password \(mode 0600\) to every other control-plane node/)
    assert.doesNotMatch(kubeadm, /anonymous/)
  })

  it('k3s: --tls-san on every server, --server through the VIP, and no health gate until the handover', () => {
    const k3s = text('k3s', {...PATHS, caFile: DISTRIBUTIONS.k3s.caFile, apiPort: 7443})
    assert.match(k3s, /k3s server --cluster-init --tls-san 192\.168\.1\.250;/)
    assert.match(k3s, /k3s server --server https:\/\/192\.168\.1\.250:7443 --token <token> --tls-san 192\.168\.1\.250/)
    assert.match(k3s, /k3s agent --server https:\/\/192\.168\.1\.250:7443/)
    assert.match(k3s, /\/var\/lib\/rancher\/k3s\/agent\/pod-manifests/)
    assert.match(k3s, /refuses anonymous requests/)
    assert.match(k3s, /without the health gate/)
  })

  it('RKE2: tls-san in its config.yaml and registration on port 9345', () => {
    const rke2 = text('rke2')
    assert.match(rke2, /tls-san: \[192\.168\.1\.250\] in \/etc\/rancher\/rke2\/config\.yaml/)
    assert.match(rke2, /server: https:\/\/192\.168\.1\.250:9345/)
    assert.match(rke2, /RKE2's API server refuses anonymous requests/)
  })

  it('ends with the install that takes over with the same settings and password', () => {
    for (const distribution of ['kubeadm', 'k3s', 'rke2'] as const) {
      assert.match(
        text(distribution),
        /4\. Once the cluster runs: karp install --vip 192\.168\.1\.250 --vhid 42 --password-file <a copy of \/etc\/karp\/password>\n/,
      )
    }
    assert.equal(
      handoverCommand(staticConfig({apiPort: 7443, interface: 'bond0', advbase: 3, preempt: true, image: 'registry.local/karp:v1'})),
      'karp install --vip 192.168.1.250 --vhid 10 --api-port 7443 --interface bond0 --advbase 3 --preempt --image registry.local/karp:v1 --password-file <a copy of /etc/karp/password>',
    )
  })
})
