// The lab's stacked control plane (lab/control-plane.ts) on three network namespaces of a lab bridge: one
// etcd cluster of three members, three API servers, leader-elected controller-managers and schedulers. Shows
// it up and consistent, each API server's serving certificate with or without the VIP, a node's loss survived
// by the other two (etcd keeps quorum), the node back with what was written meanwhile, and a teardown that
// leaves no namespace and no process. Everything that connects to a lab address runs inside a namespace.
import assert from 'node:assert/strict'
import {X509Certificate} from 'node:crypto'
import {existsSync, readFileSync} from 'node:fs'
import {after, before, describe, it} from 'node:test'
import {ControlPlane, COMPONENTS, controlPlaneSkipReason, LEADER_LEASES} from '../../lab/control-plane.js'
import {Network, run} from '../../lab/network.js'
import {atTeardown} from '../../lab/teardown.js'
import {alive, waitFor} from '../../lab/process.js'

const skip = controlPlaneSkipReason()
const SUBNET = '10.78.0'
const VIP = `${SUBNET}.10`
const NODES = ['node1', 'node2', 'node3']
const WITHOUT_VIP = 'node3'
const CONFIG_MAP = 'written-while-node1-was-down'

interface Member {
  ID: string
  name?: string
  clientURLs?: string[]
}

describe('the lab control plane: three stacked control-plane nodes in network namespaces', {skip}, () => {
  let net: Network
  let cp: ControlPlane
  let untrackNet: () => void
  let members: Member[] = []

  const kubectlOk = async (node: string, args: string[], kubeconfig?: string) => {
    const result = await cp.kubectl(node, args, {kubeconfig})
    assert.equal(result.exitCode, 0, `kubectl ${args.join(' ')} via ${node}: ${result.stderr}`)
    return result.stdout
  }

  /** etcd's own API (its gRPC gateway) over TLS with a client certificate, from inside the node's namespace. */
  const etcdMembers = async (node: string): Promise<Member[]> =>
    (JSON.parse(await cp.etcdApi(node, 'member/list', {})) as {members: Member[]}).members

  /** The certificate the node's API server presents on its own address, fetched inside its namespace. */
  const servingCert = async (node: string): Promise<X509Certificate> => {
    const {ns, ip} = net.host(node)
    const result = await net.exec(ns, ['sh', '-c', `openssl s_client -connect ${ip}:6443 </dev/null 2>/dev/null | openssl x509`])
    assert.equal(result.exitCode, 0, result.stderr)
    return new X509Certificate(result.stdout)
  }

  before(async () => {
    net = await Network.create('karpcp', SUBNET)
    untrackNet = atTeardown(() => net.destroySync())
    for (const [i, name] of NODES.entries()) await net.addHost(name, 11 + i)
    cp = await ControlPlane.start({network: net, hosts: net.hosts, vip: VIP, certWithoutVip: [WITHOUT_VIP]})
  })

  after(async () => {
    await cp?.stop()
    await net?.destroy()
    untrackNet?.()
  })

  it('runs every component as a process of its own in its node namespace, and every API server is ready', async (t) => {
    t.diagnostic(`startup (s): ${JSON.stringify(cp.startup)}`)
    for (const node of NODES) {
      const pids = cp.pids(node)
      t.diagnostic(
        `${node} RSS (MB): ${Object.entries(cp.memoryKb(node))
          .map(([c, kb]) => `${c} ${Math.round(kb / 1024)}`)
          .join(', ')}`,
      )
      const inNamespace = new Set(net.pidsIn(net.host(node).ns))
      for (const component of COMPONENTS) {
        const pid = pids[component]
        assert.ok(pid, `${node} runs ${component}`)
        assert.match(
          readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '',
          new RegExp(`/${component}$`),
          `pid ${pid} is ${component} itself`,
        )
        assert.ok(inNamespace.has(pid), `${node}'s ${component} runs in ${node}'s namespace`)
      }
      // Through the node's own address with an admin kubeconfig made for it, from inside its namespace.
      assert.equal(await kubectlOk(node, ['get', '--raw', '/readyz'], cp.adminKubeconfig(cp.server(node))), 'ok')
      assert.equal(await kubectlOk(node, ['get', '--raw', '/readyz/etcd']), 'ok')
    }
    // The lease endpoint reconciler: the kubernetes Service is backed by each API server's advertised address.
    // Each API server adds itself once its lease is written, which may come a moment after /readyz.
    const expected = NODES.map((n) => net.host(n).ip).join(' ')
    let endpoints = ''
    await waitFor(
      'the kubernetes endpoints naming every API server',
      30_000,
      async () => {
        endpoints = (await kubectlOk('node2', ['get', 'endpoints', 'kubernetes', '-o', 'jsonpath={.subsets[*].addresses[*].ip}']))
          .split(' ')
          .sort()
          .join(' ')
        return endpoints === expected
      },
      () => endpoints,
      500,
    )
  })

  it('hands out credentials the API servers know: a kubelet per node, limited by the Node authorizer, and any user', async () => {
    for (const node of NODES) {
      const kubelet = cp.kubeletCredentials(node)
      assert.equal(kubelet.server, `https://${net.host(node).ip}:6443`)
      const whoami = await kubectlOk(
        node,
        ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username} {.status.userInfo.groups}'],
        kubelet.kubeconfig,
      )
      assert.equal(whoami, `system:node:${node} ["system:nodes","system:authenticated"]`)
      const secrets = await cp.kubectl(node, ['get', 'secrets', '--all-namespaces'], {kubeconfig: kubelet.kubeconfig})
      assert.match(secrets.stderr, /Forbidden.*system:node:/)
    }
    const proxy = cp.clientKubeconfig('system:kube-proxy', [], 'https://127.0.0.1:6443')
    assert.equal(await kubectlOk('node3', ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'], proxy), 'system:kube-proxy')
  })

  it('runs one etcd cluster of three started members, each healthy over TLS', async () => {
    members = await etcdMembers('node1')
    assert.deepEqual(
      members.map((m) => [m.name, m.clientURLs]).sort(),
      NODES.map((n) => [n, [`https://${net.host(n).ip}:2379`]]),
    )
    assert.deepEqual((await etcdMembers('node3')).map((m) => m.ID).sort(), members.map((m) => m.ID).sort())
    for (const node of NODES) {
      const {ns, ip} = net.host(node)
      const tls = cp.etcdClientTls(node)
      const health = await net.exec(ns, [
        'curl',
        '-sS',
        '--max-time',
        '5',
        '--cacert',
        tls.caFile,
        '--cert',
        tls.certFile,
        '--key',
        tls.keyFile,
        `https://${ip}:2379/health`,
      ])
      assert.equal((JSON.parse(health.stdout) as {health: string}).health, 'true', `${node}: ${health.stdout}${health.stderr}`)
      const anonymous = await net.exec(ns, ['curl', '-sS', '--max-time', '5', '--cacert', tls.caFile, `https://${ip}:2379/health`])
      assert.notEqual(anonymous.exitCode, 0, `${node}'s member refuses a client without a certificate`)
    }
  })

  it('has exactly one leading controller-manager and one leading scheduler, the same seen from every node', async () => {
    const holders = await cp.leaseHolders('node1')
    for (const lease of LEADER_LEASES) assert.match(holders[lease], /^node[123]_[0-9a-f-]{36}$/, `${lease} is held by a node`)
    assert.deepEqual(await cp.leaseHolders('node2'), holders)
    assert.deepEqual(await cp.leaseHolders('node3'), holders)
    for (const lease of LEADER_LEASES) {
      const leaders = NODES.filter((n) =>
        readFileSync(cp.logFile(n, lease), 'utf8').includes(`successfully acquired lease kube-system/${lease}`),
      )
      assert.deepEqual(leaders, [holders[lease].split('_')[0]], `only the holder of ${lease} ever led`)
    }
  })

  it('serves a certificate with the VIP on every node except the one left without it', async () => {
    const ca = new X509Certificate(readFileSync(cp.caFile))
    for (const node of NODES) {
      const cert = await servingCert(node)
      assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), `${node}'s certificate is signed by the cluster CA`)
      const sans = (cert.subjectAltName ?? '').split(', ')
      for (const san of [
        `IP Address:${net.host(node).ip}`,
        'IP Address:127.0.0.1',
        'IP Address:10.96.0.1',
        'DNS:kubernetes.default.svc.cluster.local',
      ]) {
        assert.ok(sans.includes(san), `${node}: ${san} in ${cert.subjectAltName}`)
      }
      assert.equal(sans.includes(`IP Address:${VIP}`), node !== WITHOUT_VIP, `${node}: VIP in ${cert.subjectAltName}`)
    }
    // With the VIP on a node, kubectl through it works where the certificate names it and fails where not.
    const throughVip = cp.adminKubeconfig(`https://${VIP}:6443`)
    for (const holder of ['node1', WITHOUT_VIP]) {
      const {ns} = net.host(holder)
      await run('ip', ['-n', ns, 'addr', 'add', `${VIP}/32`, 'dev', 'eth0'])
      // node2 would still send to the previous holder's MAC (nobody here announces a move, as ucarp does).
      await run('ip', ['-n', net.host('node2').ns, 'neigh', 'flush', 'to', VIP])
      try {
        const result = await cp.kubectl('node2', ['get', '--raw', '/readyz'], {kubeconfig: throughVip})
        if (holder === WITHOUT_VIP) assert.match(result.stderr, /x509: certificate is valid for .*not 10\.78\.0\.10/)
        else assert.equal(result.stdout, 'ok', result.stderr)
      } finally {
        await run('ip', ['-n', ns, 'addr', 'del', `${VIP}/32`, 'dev', 'eth0'])
      }
    }
  })

  it('keeps serving and writing through node2 and node3 while node1 is down', async () => {
    const before = Object.values(cp.pids('node1'))
    assert.equal(before.length, 4)
    await cp.killNode('node1')
    assert.deepEqual(before.filter(alive), [], 'every component of node1 is gone')
    assert.deepEqual(cp.pids('node1'), {})
    for (const node of ['node2', 'node3']) await cp.waitReady(node, 60_000)
    await kubectlOk('node2', ['create', 'configmap', CONFIG_MAP, '--from-literal=written-by=node2'])
    assert.equal(await kubectlOk('node3', ['get', 'configmap', CONFIG_MAP, '-o', 'jsonpath={.data.written-by}']), 'node2')
    assert.deepEqual(cp.unexpectedExits, [])
  })

  it('brings node1 back: the same etcd member rejoins and its API server sees what was written meanwhile', async () => {
    await cp.startNode('node1')
    await cp.waitReady('node1', 120_000)
    assert.equal(await kubectlOk('node1', ['get', 'configmap', CONFIG_MAP, '-o', 'jsonpath={.data.written-by}']), 'node2')
    assert.deepEqual((await etcdMembers('node1')).map((m) => m.ID).sort(), members.map((m) => m.ID).sort())
    assert.equal(Object.keys(cp.pids('node1')).length, 4)
    assert.deepEqual(cp.unexpectedExits, [])
  })

  it('stops the API server alone and starts it again', async () => {
    const pid = cp.pids('node2')['kube-apiserver'] as number
    await cp.killApiServer('node2')
    assert.equal(alive(pid), false)
    assert.ok(cp.pids('node2').etcd, 'node2 etcd still runs')
    const down = await cp.kubectl('node2', ['get', '--raw', '/readyz'], {timeoutMs: 5000})
    assert.notEqual(down.exitCode, 0)
    cp.startApiServer('node2')
    await cp.waitReady('node2', 120_000)
  })

  it('tears down without leaving a namespace or a process', async () => {
    const pids = [...cp.startedPids]
    assert.ok(pids.length >= 4 * NODES.length + 5)
    const dir = cp.dir
    await cp.stop()
    await net.destroy()
    assert.deepEqual(pids.filter(alive), [])
    const namespaces = await run('ip', ['netns', 'list'])
    assert.ok(!namespaces.includes(net.prefix), namespaces)
    assert.equal(existsSync(dir), false)
  })
})
