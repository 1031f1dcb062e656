// The lab's real node (lab/node.ts): containerd + runc and a kubelet v1.34 in a network namespace of a lab
// network, registered with the test control plane (test/global-setup.ts) as a kubeadm control-plane node.
// That API server listens on 127.0.0.1 of the root namespace; each node reaches it on 127.0.0.1 of its
// own namespace through a Unix socket (socat on both sides), so no lab address is ever seen from here.
// Shows: two nodes Ready with the control-plane label and taint; a hostNetwork pod of the agent image
// named by tag@digest (imported, never pulled) with a read-only root, a Secret and an emptyDir Ready on
// node 1; power loss of node 1 ends every process of it and nothing of node 2; restart() brings the node
// and the pod back; teardown leaves no namespace, mount, cgroup, process or changed sysctl.
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {execa} from 'execa'
import forge from 'node-forge'
import {stringify} from 'yaml'
import {labSkipReason} from '../../lab/agent-lab.js'
import {agentImage} from '../../lab/image.js'
import {
  CONTAINER_LOG_LINKS,
  hostAfterLabs,
  hostBeforeLabs,
  type HostState,
  KUBELET_SYSCTLS,
  readKubeletSysctls,
} from '../../lab/kubelet-host.js'
import {Network} from '../../lab/network.js'
import {CONTROL_PLANE_LABEL, KubeNode, nodeSkipReason, type CommandResult} from '../../lab/node.js'
import {issueClientCert} from '../../lab/pki.js'
import {alive, rssKb, waitFor} from '../../lab/process.js'
import type {ImageSummary} from '../../scripts/image/build.js'
import {clusterOrSkip, uniqueName} from '../integration/cluster-env.js'
import {DEFAULT_API_PORT} from '../../src/lib/constants.js'

const cluster = clusterOrSkip()
const skip = cluster.skip || labSkipReason() || (await nodeSkipReason())

interface PodObject {
  spec: {nodeName?: string}
  status: {
    phase?: string
    conditions?: Array<{type: string; status: string}>
    containerStatuses?: Array<{containerID?: string; ready: boolean; restartCount: number; state: {running?: unknown}}>
  }
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
  } catch {
    return ''
  }
}

function netnsInode(path: string): number {
  return statSync(path).ino
}

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((p) => p === dir || p.startsWith(`${dir}/`))
}

function kubeconfigFor(user: string, caPem: string, pair: {certPem: string; keyPem: string}): string {
  const b64 = (text: string) => Buffer.from(text).toString('base64')
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{name: 'test', cluster: {server: `https://127.0.0.1:${DEFAULT_API_PORT}`, 'certificate-authority-data': b64(caPem)}}],
    users: [{name: user, user: {'client-certificate-data': b64(pair.certPem), 'client-key-data': b64(pair.keyPem)}}],
    contexts: [{name: user, context: {cluster: 'test', user}}],
    'current-context': user,
  })
}

describe('a real node in a lab namespace: containerd + runc and a kubelet', {skip}, () => {
  let image: ImageSummary
  let work: string
  let net: Network | undefined
  const nodes: KubeNode[] = []
  const namespace = uniqueName('karp-node-test')
  const password = randomBytes(12).toString('hex')
  const seenPids = new Set<number>()
  // The host as it was before any lab kubelet: now, or as the ledger of lab processes running kubelets has it.
  let hostBefore: HostState
  let podContainerId = ''

  const kubectl = async (args: string[], input?: string): Promise<CommandResult> => {
    const result = await execa(join(cluster.binDir, 'kubectl'), ['--kubeconfig', cluster.kubeconfig, ...args], {
      input,
      reject: false,
      timeout: 60_000,
    })
    return {exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr)}
  }
  const kubectlOk = async (args: string[], input?: string): Promise<string> => {
    const result = await kubectl(args, input)
    assert.equal(result.exitCode, 0, `kubectl ${args.join(' ')}: ${result.stderr}`)
    return result.stdout
  }
  const node1 = () => nodes[0] as KubeNode
  const node2 = () => nodes[1] as KubeNode
  const remember = (node: KubeNode) => {
    for (const pid of node.pids()) seenPids.add(pid)
  }
  const pod = async (): Promise<PodObject> =>
    JSON.parse(await kubectlOk(['-n', namespace, 'get', 'pod', 'agent-image', '-o', 'json'])) as PodObject
  const podReady = (p: PodObject) => p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false

  before(async () => {
    hostBefore = hostBeforeLabs()
    image = await agentImage()
    work = mkdtempSync(join(tmpdir(), 'karp-node-test-'))
    const caPem = readFileSync(cluster.caFile, 'utf8')
    const keyPem = readFileSync(cluster.caKeyFile, 'utf8')
    const ca = {certPem: caPem, keyPem, cert: forge.pki.certificateFromPem(caPem), key: forge.pki.privateKeyFromPem(keyPem)}

    net = await Network.create('karpn', '10.79.0')
    const apiSocket = join(work, 'api.sock')
    net.spawnHere(['socat', `UNIX-LISTEN:${apiSocket},fork,mode=600`, `TCP:127.0.0.1:${new URL(cluster.server).port}`], {
      logFile: join(work, 'bridge.log'),
    })
    for (const i of [1, 2]) {
      const host = await net.addHost(`node${i}`, 10 + i)
      // Each node's end of the API bridge, inside its namespace.
      net.spawnIn(host.ns, ['socat', `TCP-LISTEN:${DEFAULT_API_PORT},bind=127.0.0.1,fork,reuseaddr`, `UNIX-CONNECT:${apiSocket}`], {
        logFile: join(work, `bridge-node${i}.log`),
      })
      const name = `${net.prefix}-node${i}`
      const kubeconfig = join(work, `node${i}.kubeconfig`)
      writeFileSync(kubeconfig, kubeconfigFor(`system:node:${name}`, caPem, issueClientCert(ca, `system:node:${name}`, ['system:nodes'])), {
        mode: 0o600,
      })
      nodes.push(new KubeNode({network: net, host, name, kubeconfig, caFile: cluster.caFile, kubectl}))
    }
  })

  after(async () => {
    await kubectl(['delete', 'namespace', namespace, '--wait=false'])
    for (const node of nodes) await kubectl(['delete', 'node', node.name, '--wait=false'])
    for (const node of nodes) node.stopSync()
    await net?.destroy()
    if (work) rmSync(work, {recursive: true, force: true})
  })

  it('registers two nodes that go Ready as control-plane nodes: label, NoSchedule taint', async (t) => {
    const started = performance.now()
    await Promise.all(nodes.map((n) => n.start()))
    const registered = performance.now()
    await Promise.all(nodes.map((n) => n.waitReady(90_000)))
    // The kubelets set the host's sysctls to theirs (the last test checks they are put back).
    assert.deepEqual(readKubeletSysctls(), KUBELET_SYSCTLS)
    t.diagnostic(
      `both nodes started (images imported, registered, labelled) in ${((registered - started) / 1000).toFixed(1)} s, Ready ${((performance.now() - started) / 1000).toFixed(1)} s after start()`,
    )
    for (const node of nodes) {
      const object = await node.node()
      assert.equal(object?.metadata.labels?.[CONTROL_PLANE_LABEL], '', `${node.name} carries the control-plane label`)
      assert.deepEqual(
        object?.spec.taints?.map((taint) => `${taint.key}:${taint.effect}`),
        [`${CONTROL_PLANE_LABEL}:NoSchedule`],
      )
      // Real pids: the kubelet and containerd binaries themselves, in the node's namespace.
      const kubelet = node.kubeletPid
      const containerd = node.containerdPid
      assert.ok(kubelet && containerd, `${node.name} has a kubelet and a containerd`)
      assert.equal(readlinkSync(`/proc/${kubelet}/exe`), join(cluster.binDir, 'kubelet'))
      assert.equal(comm(containerd), 'containerd')
      const nodeNs = netnsInode(`/run/netns/${node.host.ns}`)
      for (const pid of [kubelet, containerd]) assert.equal(netnsInode(`/proc/${pid}/ns/net`), nodeNs)
      remember(node)
      const mib = (kb: number) => `${Math.round(kb / 1024)} MiB`
      t.diagnostic(
        `${node.name}: kubelet ${kubelet} (${mib(rssKb([kubelet]))}), containerd ${containerd} (${mib(rssKb([containerd]))}), node ${mib(node.rssKb())}`,
      )
    }
  })

  it('runs a hostNetwork pod of the agent image named by tag@digest, imported (no pull), read-only root, Secret and emptyDir', async (t) => {
    assert.match(image.reference, /^[^@]+:[^@/]+@sha256:[0-9a-f]{64}$/, 'the reference names tag and digest')
    await kubectlOk(['create', 'namespace', namespace])
    await kubectlOk(['-n', namespace, 'create', 'secret', 'generic', 'agent-secret', `--from-literal=password=${password}`])
    const manifest = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {name: 'agent-image', namespace},
      spec: {
        nodeName: node1().name,
        hostNetwork: true,
        terminationGracePeriodSeconds: 1,
        tolerations: [{key: CONTROL_PLANE_LABEL, operator: 'Exists', effect: 'NoSchedule'}],
        containers: [
          {
            name: 'agent',
            image: image.reference,
            imagePullPolicy: 'IfNotPresent',
            // Exits (never Ready) when the root filesystem is writable; copies the Secret into the emptyDir.
            command: [
              '/bin/sh',
              '-c',
              'if touch /written 2>/dev/null; then exit 1; fi; cat /secret/password > /state/copy && exec sleep 3600',
            ],
            readinessProbe: {
              exec: {command: ['/bin/sh', '-c', 'test -s /state/copy && test "$(cat /state/copy)" = "$(cat /secret/password)"']},
              periodSeconds: 1,
            },
            securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: ['ALL']}},
            volumeMounts: [
              {name: 'secret', mountPath: '/secret', readOnly: true},
              {name: 'state', mountPath: '/state'},
            ],
          },
        ],
        volumes: [
          {name: 'secret', secret: {secretName: 'agent-secret', defaultMode: 0o400}},
          {name: 'state', emptyDir: {medium: 'Memory'}},
        ],
      },
    }
    const created = performance.now()
    await kubectlOk(['apply', '-f', '-'], JSON.stringify(manifest))
    await waitFor(
      'the pod Ready',
      90_000,
      async () => podReady(await pod()),
      () => node1().kubeletLogTail(),
    )
    t.diagnostic(`pod Ready ${((performance.now() - created) / 1000).toFixed(1)} s after it was created`)
    const status = (await pod()).status.containerStatuses?.[0]
    podContainerId = status?.containerID ?? ''
    assert.ok(podContainerId, 'the container has an id')

    // containerd knows the image by tag and by digest, as `ctr images import --digests` named it.
    for (const ref of [`${image.name}:${image.tag}`, `${image.name}@${image.indexDigest}`]) {
      assert.equal((await node1().runtime.crictl(['inspecti', ref], {reject: false})).exitCode, 0, `crictl inspecti ${ref}`)
    }
    const events = await kubectlOk([
      '-n',
      namespace,
      'get',
      'events',
      '--field-selector',
      'involvedObject.name=agent-image',
      '-o',
      'jsonpath={range .items[*]}{.reason}: {.message}{"\\n"}{end}',
    ])
    assert.match(events, /^Pulled: .*already present on machine/m)
    assert.doesNotMatch(events, /^Pulling:/m)

    // The container's process runs on node 1, in node 1's network namespace (hostNetwork).
    const sleeper = node1()
      .pids()
      .find((pid) => comm(pid) === 'sleep')
    assert.ok(
      sleeper,
      `a sleep process among node 1's: ${node1()
        .pids()
        .map((p) => `${p} ${comm(p)}`)
        .join(', ')}`,
    )
    assert.equal(netnsInode(`/proc/${sleeper}/ns/net`), netnsInode(`/run/netns/${node1().host.ns}`))
    assert.ok(!node2().pids().includes(sleeper), 'not a process of node 2')
    remember(node1())
    t.diagnostic(
      `RSS with the pod: node 1 ${Math.round(node1().rssKb() / 1024)} MiB (${node1().pids().length} processes), node 2 ${Math.round(node2().rssKb() / 1024)} MiB`,
    )
  })

  it('kill(): no process of the node is left, node 2 and the namespace are untouched', async () => {
    const before1 = node1().pids()
    const before2 = node2().pids()
    remember(node1())
    assert.ok(before1.length >= 5, `kubelet, containerd, shim, pause, sleep: ${before1.map((p) => `${p} ${comm(p)}`).join(', ')}`)
    node1().kill()
    assert.deepEqual(node1().pids(), [])
    assert.deepEqual(
      before1.filter(alive).map((p) => `${p} ${comm(p)}`),
      [],
    )
    assert.deepEqual(
      before2.filter((p) => !alive(p)),
      [],
      'every process of node 2 still runs',
    )
    assert.ok(await net?.hasAddress(node1().host, node1().host.ip), 'node 1 keeps its address')
  })

  it('restart(): the node comes back Ready and the pod runs again', async (t) => {
    const started = performance.now()
    await node1().restart()
    await node1().waitReady(90_000)
    const ready = performance.now()
    await waitFor(
      'the pod Ready again in a new container',
      120_000,
      async () => {
        const p = await pod()
        const status = p.status.containerStatuses?.[0]
        return podReady(p) && status?.containerID !== podContainerId && status?.state.running !== undefined
      },
      () => node1().kubeletLogTail(),
    )
    t.diagnostic(
      `node Ready ${((ready - started) / 1000).toFixed(1)} s after restart(), pod Ready again after ${((performance.now() - started) / 1000).toFixed(1)} s`,
    )
    assert.ok(
      node1()
        .pids()
        .some((pid) => comm(pid) === 'sleep'),
      'the container runs again',
    )
    remember(node1())
  })

  it('teardown leaves no namespace, mount, cgroup, process, log link, kubelet host directory or changed sysctl', async () => {
    for (const node of nodes) remember(node)
    const dirs = nodes.map((n) => n.dir)
    const cgroupRoots = nodes.map((n) => n.cgroupRoot)
    const prefix = net?.prefix ?? ''
    await kubectl(['delete', 'namespace', namespace, '--wait=false'])
    for (const node of nodes) await node.stop()
    await net?.destroy()
    net = undefined

    assert.deepEqual(
      (await execa('ip', ['netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith(prefix)),
      [],
    )
    for (const dir of dirs) {
      assert.deepEqual(mountsUnder(dir), [])
      assert.ok(!existsSync(dir), `${dir} removed`)
    }
    for (const root of cgroupRoots)
      assert.deepEqual(
        readdirSync('/sys/fs/cgroup').filter((h) => existsSync(join('/sys/fs/cgroup', h, root))),
        [],
      )
    assert.deepEqual(
      [...seenPids].filter(alive).map((p) => `${p} ${comm(p)}`),
      [],
    )
    if (existsSync(CONTAINER_LOG_LINKS)) {
      const ours = readdirSync(CONTAINER_LOG_LINKS).filter((l) =>
        dirs.some((d) => readlinkSync(join(CONTAINER_LOG_LINKS, l)).startsWith(d)),
      )
      assert.deepEqual(ours, [])
    }
    // The last kubelet of the last lab process puts the host back; while another lab process runs kubelets,
    // its ledger still holds what the host was like before (this test process no longer holds it).
    const {heldBy, ...after} = hostAfterLabs()
    assert.ok(!heldBy.includes(process.pid))
    assert.deepEqual(after, hostBefore)
  })
})
