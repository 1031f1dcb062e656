import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import type {V1Node, V1NodeSystemInfo} from '@kubernetes/client-node'

import {sanAdvice} from '../../src/lib/cert/advice.js'
import {detectDistribution, DISTRIBUTIONS, type DistributionId} from '../../src/lib/cert/distribution.js'

// Nodes as each distribution registers them (labels, annotations and nodeInfo trimmed to what tells them apart).
function node(
  name: string,
  {
    labels = {},
    annotations = {},
    kubeletVersion = 'v1.31.4',
    osImage = 'Ubuntu 24.04.1 LTS',
  }: {labels?: Record<string, string>; annotations?: Record<string, string>; kubeletVersion?: string; osImage?: string},
): V1Node {
  return {
    metadata: {
      name,
      labels: {'kubernetes.io/hostname': name, ...labels},
      annotations: {'node.alpha.kubernetes.io/ttl': '0', ...annotations},
    },
    status: {nodeInfo: {kubeletVersion, osImage} as V1NodeSystemInfo},
  }
}

const CP = {'node-role.kubernetes.io/control-plane': 'true'}

const clusters: Array<[DistributionId, V1Node[], string]> = [
  [
    'k3s',
    [
      node('k3s-1', {
        labels: {...CP, 'node-role.kubernetes.io/master': 'true', 'node.kubernetes.io/instance-type': 'k3s'},
        annotations: {'k3s.io/node-args': '["server"]'},
        kubeletVersion: 'v1.31.4+k3s1',
      }),
    ],
    'node k3s-1: kubeletVersion v1.31.4+k3s1',
  ],
  [
    'rke2',
    [
      node('rke2-1', {
        labels: {...CP, 'node.kubernetes.io/instance-type': 'rke2', 'rke.cattle.io/machine': 'abc'},
        annotations: {'rke2.io/node-args': '["server"]', 'k3s.io/node-args': '["server"]'},
        kubeletVersion: 'v1.31.4+rke2r1',
      }),
    ],
    'node rke2-1: kubeletVersion v1.31.4+rke2r1',
  ],
  [
    'rke',
    [
      node('rke-1', {
        labels: {'node-role.kubernetes.io/controlplane': 'true', 'node-role.kubernetes.io/etcd': 'true'},
        annotations: {'rke.cattle.io/internal-ip': '10.0.0.11', 'rke.cattle.io/external-ip': '10.0.0.11'},
      }),
    ],
    'node rke-1: annotation rke.cattle.io/internal-ip',
  ],
  [
    'kubeadm',
    [
      node('w1', {}),
      node('cp1', {
        labels: {...CP, 'node.kubernetes.io/exclude-from-external-load-balancers': ''},
        annotations: {'kubeadm.alpha.kubernetes.io/cri-socket': 'unix:///run/containerd/containerd.sock'},
      }),
    ],
    'node cp1: annotation kubeadm.alpha.kubernetes.io/cri-socket',
  ],
  [
    'kubeadm',
    [node('cp1', {labels: {...CP, 'node.kubernetes.io/exclude-from-external-load-balancers': ''}})],
    'node cp1: label node.kubernetes.io/exclude-from-external-load-balancers=',
  ],
  [
    'talos',
    [node('talos-cp-1', {labels: {...CP, 'node.kubernetes.io/exclude-from-external-load-balancers': ''}, osImage: 'Talos (v1.8.3)'})],
    'node talos-cp-1: osImage "Talos (v1.8.3)"',
  ],
  [
    'k0s',
    [node('k0s-worker-1', {labels: {'node.k0sproject.io/role': 'worker'}, kubeletVersion: 'v1.31.3+k0s'})],
    'node k0s-worker-1: kubeletVersion v1.31.3+k0s',
  ],
  ['unknown', [node('n1', {labels: CP})], ''],
  ['unknown', [], ''],
]

describe('detectDistribution', () => {
  for (const [id, nodes, evidence] of clusters) {
    it(`tells ${id} by ${evidence || 'nothing'}`, () => {
      assert.deepEqual(detectDistribution(nodes), {id, evidence})
    })
  }

  it('prefers what the control-plane nodes say over the workers', () => {
    const mixed = [node('w1', {kubeletVersion: 'v1.31.4+k3s1'}), node('cp1', {labels: CP, kubeletVersion: 'v1.31.4+k3s1'})]
    assert.deepEqual(detectDistribution(mixed), {id: 'k3s', evidence: 'node cp1: kubeletVersion v1.31.4+k3s1'})
  })
})

describe('sanAdvice', () => {
  const vip = '192.168.1.250'

  it('fills in the VIP for every distribution and says where it goes', () => {
    for (const id of [...DISTRIBUTIONS, 'unknown'] as const) {
      const advice = sanAdvice(id, vip)
      assert.equal(advice.distribution, id)
      assert.ok(advice.summary.includes(vip), `${id}: ${advice.summary}`)
      assert.ok(advice.steps.length >= 2, id)
      assert.ok(
        advice.steps.some((s) => s.includes(vip)),
        id,
      )
    }
  })

  it('RKE: authentication.sans in cluster.yml, then rke up', () => {
    const text = sanAdvice('rke', vip).steps.join('\n')
    assert.match(text, /authentication:\n {4}strategy: x509\n {4}sans:\n {6}- "192\.168\.1\.250"/)
    assert.match(text, /^rke up --config cluster\.yml$/m)
  })

  it('RKE2 and k3s: tls-san in their own config.yaml, and a restart of their own service', () => {
    const rke2 = sanAdvice('rke2', vip)
    assert.equal(
      rke2.summary,
      'add 192.168.1.250 to tls-san in /etc/rancher/rke2/config.yaml on every server node, then restart rke2-server',
    )
    assert.match(rke2.steps.join('\n'), /tls-san:\n {4}- "192\.168\.1\.250"[\s\S]*sudo systemctl restart rke2-server/)
    const k3s = sanAdvice('k3s', vip)
    assert.match(k3s.steps.join('\n'), /\/etc\/rancher\/k3s\/config\.yaml[\s\S]*sudo systemctl restart k3s\n/)
  })

  it('kubeadm: certSANs, move the old certificate away, regenerate it, restart the static pod', () => {
    const steps = sanAdvice('kubeadm', vip).steps.join('\n')
    assert.match(steps, /apiServer:\n {4}certSANs:\n {6}- "192\.168\.1\.250"/)
    const move = steps.indexOf('sudo mv /etc/kubernetes/pki/apiserver.crt /etc/kubernetes/pki/apiserver.key')
    const regenerate = steps.indexOf('sudo kubeadm init phase certs apiserver --config kubeadm.yaml')
    const restart = steps.indexOf('sudo mv /etc/kubernetes/manifests/kube-apiserver.yaml')
    assert.ok(move > 0 && regenerate > move && restart > regenerate, steps)
  })

  it('Talos: cluster.apiServer.certSANs, patched on the control-plane nodes given', () => {
    const advice = sanAdvice('talos', vip, {controlPlaneAddresses: ['10.0.0.11', '10.0.0.12']})
    assert.match(
      advice.steps[0] ?? '',
      /^talosctl -n 10\.0\.0\.11,10\.0\.0\.12 patch machineconfig --patch '\{"cluster": \{"apiServer": \{"certSANs": \["192\.168\.1\.250"\]\}\}\}'/,
    )
    assert.match(sanAdvice('talos', vip).steps[0] ?? '', /-n <control-plane node IPs>/)
  })

  it('k0s: spec.api.sans, then restart the controller', () => {
    const steps = sanAdvice('k0s', vip).steps.join('\n')
    assert.match(steps, /spec:\n {4}api:\n {6}sans:\n {8}- "192\.168\.1\.250"/)
    assert.match(steps, /sudo systemctl restart k0scontroller/)
  })

  it('falls back to the change itself when the distribution is unknown', () => {
    assert.match(sanAdvice('unknown', vip).steps[0] ?? '', /--tls-cert-file.*IP:192\.168\.1\.250/)
  })
})
