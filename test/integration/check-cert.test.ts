import assert from 'node:assert/strict'
import {connect, createServer, type Server, type Socket} from 'node:net'
import {after, before, describe, it} from 'node:test'

import {AppsV1Api, CoreV1Api, KubeConfig} from '@kubernetes/client-node'

import type {CheckCertResult} from '../../src/commands/check-cert.js'
import {type ControlPlane, startControlPlane} from '../cluster/control-plane.js'
import {controlPlaneNode, createNodes, workerNode} from '../cluster/plain-nodes.js'
import {assertMatchesSchema} from '../helpers/json-schema.js'
import {karp} from '../helpers/karp.js'
import {clusterOrSkip} from './cluster-env.js'
import {API_PORT_ANNOTATION, APP_NAME, NAME_LABEL, VHID_ANNOTATION, VIP_ANNOTATION} from '../../src/lib/constants.js'

const cluster = clusterOrSkip()

// check-cert dials every control-plane node of the cluster it is pointed at, and other suites add control-plane
// nodes with made-up addresses to the shared cluster; so the cluster-wide checks run against a control plane
// of this file's own, whose nodes all sit on loopback. Each loopback address below forwards to its one API
// server, as a VIP and each node's own address would reach an API server: 127.0.0.2 is a VIP the serving
// certificate carries, 127.0.0.3 one it does not.
const VIP_IN_CERT = '127.0.0.2'
const VIP_NOT_IN_CERT = '127.0.0.3'
const SECOND_NODE = '127.0.0.4'
const KUBEADM_CRI_SOCKET = 'kubeadm.alpha.kubernetes.io/cri-socket'

/** Forwards host:port to the API server, as the VIP does for whichever node holds it. */
async function forward(host: string, port: number, to: {host: string; port: number}): Promise<Server> {
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const upstream = connect(to.port, to.host)
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('error', () => client.destroy())
      socket.on('close', () => sockets.delete(socket))
    }
    upstream.on('close', () => client.destroy())
    client.on('close', () => upstream.destroy())
    client.pipe(upstream).pipe(client)
  })
  server.on('close', () => sockets.forEach((s) => s.destroy()))
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({host, port, exclusive: true}, resolve)
  })
  return server
}

/** A karp install as the cluster shows it: the DaemonSet with karp's label and annotations (no pod runs). */
function karpDaemonSet(namespace: string, vip: string, apiPort: number) {
  return {
    metadata: {
      name: 'karp',
      namespace,
      labels: {[NAME_LABEL]: APP_NAME},
      annotations: {[VIP_ANNOTATION]: vip, [VHID_ANNOTATION]: '10', [API_PORT_ANNOTATION]: String(apiPort)},
    },
    spec: {
      selector: {matchLabels: {[NAME_LABEL]: APP_NAME}},
      template: {
        metadata: {labels: {[NAME_LABEL]: APP_NAME}},
        spec: {nodeSelector: {'karp.test/no-such-node': 'true'}, containers: [{name: 'agent', image: 'registry.invalid/karp-agent:test'}]},
      },
    },
  }
}

describe('karp check-cert against a real API server', {skip: cluster.skip}, () => {
  let controlPlane: ControlPlane
  let port: number
  const forwards: Server[] = []

  before(async () => {
    controlPlane = await startControlPlane({binDir: cluster.binDir, extraSans: [VIP_IN_CERT]})
    const server = new URL(controlPlane.server)
    port = Number(server.port)
    for (const address of [VIP_IN_CERT, VIP_NOT_IN_CERT, SECOND_NODE])
      forwards.push(await forward(address, port, {host: server.hostname, port}))
    const kc = new KubeConfig()
    kc.loadFromFile(controlPlane.adminKubeconfig)
    const core = kc.makeApiClient(CoreV1Api)
    const apps = kc.makeApiClient(AppsV1Api)
    for (const namespace of ['karp-system', 'karp-other']) {
      await core.createNamespace({body: {metadata: {name: namespace}}})
      await apps.createNamespacedDaemonSet({
        namespace,
        body: karpDaemonSet(namespace, namespace === 'karp-system' ? VIP_IN_CERT : VIP_NOT_IN_CERT, port),
      })
    }
    // kubeadm's mark on its nodes: check-cert's evidence of the distribution.
    const annotations = {[KUBEADM_CRI_SOCKET]: 'unix:///run/containerd/containerd.sock'}
    await createNodes(kc, [
      {...controlPlaneNode('cc-cp1', '127.0.0.1'), annotations},
      {...controlPlaneNode('cc-cp2', SECOND_NODE), annotations},
      // Not a control-plane node: never dialled (nothing would answer on this address).
      workerNode('cc-w1', '127.0.0.9'),
    ])
  })

  after(async () => {
    await Promise.all(forwards.map((f) => new Promise((resolve) => f.close(resolve))))
    await controlPlane?.stop()
  })

  const checkCert = (args: string[], kubeconfig = controlPlane.adminKubeconfig) => karp(['check-cert', '--kubeconfig', kubeconfig, ...args])

  it('passes an API server whose certificate carries the VIP, on the VIP and on every control-plane node', async () => {
    const run = await checkCert(['-n', 'karp-system', '--json'])
    assert.equal(run.exitCode, 0, run.stdout + run.stderr)
    assertMatchesSchema('check-cert', run.json)
    const result = run.json as CheckCertResult
    assert.equal(result.exitCode, 0)
    assert.equal(result.vip, VIP_IN_CERT)
    assert.equal(result.vipSource, 'install')
    assert.deepEqual(result.install, {namespace: 'karp-system', name: 'karp'})
    assert.equal(result.ca.source, 'kubeconfig')
    assert.deepEqual(
      result.endpoints.map((e) => [e.role, e.node, e.endpoint, e.status]),
      [
        ['vip', undefined, `${VIP_IN_CERT}:${port}`, 'ok'],
        ['node', 'cc-cp1', `127.0.0.1:${port}`, 'ok'],
        ['node', 'cc-cp2', `${SECOND_NODE}:${port}`, 'ok'],
      ],
    )
    for (const endpoint of result.endpoints) {
      assert.equal(endpoint.certificate?.subject, 'CN=kube-apiserver')
      assert.ok(endpoint.certificate?.ipSans.includes(VIP_IN_CERT))
      assert.deepEqual(endpoint.checks?.trust, {status: 'pass', state: 'trusted', message: 'issued by the CA "CN=karp-test-ca"'})
    }
    assert.deepEqual(result.distribution, {
      id: 'kubeadm',
      name: 'kubeadm',
      source: 'nodes',
      evidence: `node cc-cp1: annotation ${KUBEADM_CRI_SOCKET}`,
    })
    assert.equal(result.advice, undefined)
  })

  it("fails with exit 4 and the kubeadm fix when the certificate lacks the install's VIP", async () => {
    const run = await checkCert(['--namespace', 'karp-other', '--name', 'karp'])
    assert.equal(run.exitCode, 4, run.stderr)
    const lines = run.stdout.split('\n')
    assert.match(lines[0] ?? '', /^ENDPOINT +TARGET +VIP SAN +EXPIRES +CA +STATUS$/)
    assert.match(lines[1] ?? '', new RegExp(`^${VIP_NOT_IN_CERT}:${port} +VIP +NO +\\S+ +trusted +FAILED$`))
    assert.match(lines[2] ?? '', new RegExp(`^127\\.0\\.0\\.1:${port} +node cc-cp1 +NO +\\S+ +trusted +FAILED$`))
    assert.match(
      run.stdout,
      new RegExp(
        `^${SECOND_NODE}:${port} \\(node cc-cp2\\): VIP ${VIP_NOT_IN_CERT} is not an IP SAN \\(IP SANs: [^)]*127\\.0\\.0\\.1`,
        'm',
      ),
    )
    assert.match(
      run.stdout,
      new RegExp(
        `^To add the VIP on kubeadm \\(node cc-cp1: annotation ${KUBEADM_CRI_SOCKET}\\): add ${VIP_NOT_IN_CERT} to apiServer\\.certSANs`,
        'm',
      ),
    )
    assert.match(run.stdout, /sudo kubeadm init phase certs apiserver --config kubeadm\.yaml/)
  })

  it('asks which install when the cluster has several', async () => {
    const run = await checkCert([])
    assert.equal(run.exitCode, 2)
    assert.match(
      run.stderr,
      new RegExp(
        `^error: 2 karp installs found: karp-other/karp \\(VIP ${VIP_NOT_IN_CERT}\\), karp-system/karp \\(VIP ${VIP_IN_CERT}\\)$`,
        'm',
      ),
    )
    assert.match(run.stderr, /^hint: choose one with --name and -n\/--namespace, or pass --vip$/m)
  })

  it('exits 3 when the cluster refuses to list what it needs', async () => {
    const run = await checkCert(['-n', 'karp-system'], controlPlane.userKubeconfig)
    assert.equal(run.exitCode, 3, run.stderr)
    const json = await checkCert(['-n', 'karp-system', '--json'], controlPlane.userKubeconfig)
    assert.equal(json.exitCode, 3, json.stderr)
    assertMatchesSchema('error', json.json)
    // Both lists are asked at once; whichever refusal comes first is the one reported.
    assert.match(run.stderr, /^error: listing (karp DaemonSets in all namespaces|nodes): .*cannot list resource "(daemonsets|nodes)"/m)
  })

  it("reads the shared control plane's certificate with --server alone: no VIP among its SANs", async () => {
    const server = new URL(cluster.server)
    const run = await karp(['check-cert', '--server', server.host, '--vip', '192.168.1.250', '--ca-file', cluster.caFile, '--json'])
    assert.equal(run.exitCode, 4, run.stderr)
    assertMatchesSchema('check-cert', run.json)
    assert.equal((run.json as CheckCertResult).exitCode, 4)
    const [endpoint] = (run.json as CheckCertResult).endpoints
    assert.equal(endpoint?.checks?.vipSan.status, 'fail')
    assert.equal(endpoint?.checks?.vipSan.state, 'absent')
    assert.match(endpoint?.checks?.vipSan.message ?? '', /^VIP 192\.168\.1\.250 is not an IP SAN \(IP SANs: .*127\.0\.0\.1/)
    assert.equal(endpoint?.checks?.trust.status, 'pass')
    assert.equal(endpoint?.checks?.validity.status, 'pass')
  })
})
