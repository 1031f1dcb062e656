// The agent image `npm run image` builds, run by the real runtime (containerd + runc, through CRI as a
// kubelet drives them) with exactly what the DaemonSet `karp render` prints asks for: command, environment,
// securityContext, resources, the password Secret, the state emptyDir and the service-account token. The
// node is a network namespace on a lab bridge (lab.ts, one node); its API server is a TLS stand-in in that
// namespace, with a certificate the pod's ca.crt signed for the API server's names and the kubernetes
// Service's address, as a real one carries. Shows ucarp start in the container and the VIP appear on the
// node, the privileges the container really holds, and the VIP released again on a graceful stop.
import assert from 'node:assert/strict'
import {randomBytes, randomUUID} from 'node:crypto'
import {existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {after, before, describe, it} from 'node:test'
import {execa} from 'execa'
import {makeCa, makeCertificate, testKey} from '../helpers/certs.js'
import {agentImage, IMAGE_LAYOUT} from '../../lab/image.js'
import {karp} from '../helpers/karp.js'
import {Containerd, crictlBinary, memoryLimit, runtimeSkipReason} from '../../lab/containerd.js'
import {buildPauseImage, nativeArchitecture, PAUSE_IMAGE} from '../../lab/pause.js'
import {type ContainerPlan, podToCri, type PodPlan} from '../runtime/pod-to-cri.js'
import {prepareVolumes} from '../runtime/volumes.js'
import {API_SERVER_NAMES, IP, Lab, labSkipReason, sleep, VHID, VIP, waitFor, type LabNode, type Proc} from '../../lab/agent-lab.js'
import type {ImageSummary} from '../../scripts/image/build.js'
import {DEFAULT_API_PORT, ROLE_CONDITION} from '../../src/lib/constants.js'

const skip = labSkipReason() || (await runtimeSkipReason())
const here = dirname(fileURLToPath(import.meta.url))

// The kubernetes Service's address as the kubelet hands it to pods. A loopback address of the node that
// differs from the health URL's 127.0.0.1, as on a real node: the API server's certificate names the Service
// address and `kubernetes`, but not 127.0.0.1, so the health check must verify the name.
const SERVICE_HOST = '127.0.0.2'
/** What the container may do: CAP_NET_ADMIN (12) and CAP_NET_RAW (13), nothing else. */
const NET_ADMIN_AND_RAW = '0000000000003000'

interface ManifestList {
  items: Array<{kind: string; metadata: {name: string; namespace?: string}; spec?: {template: unknown}; data?: Record<string, string>}>
}

interface ApiRequest {
  method?: string
  path?: string
  auth?: 'token' | 'other' | 'none'
  body?: {status?: {conditions?: Array<{type: string; reason: string}>}}
  tlsError?: string
}

/** The fields of /proc/<pid>/status; undefined once the process has exited. */
function procStatus(pid: number): Record<string, string> | undefined {
  const fields: Record<string, string> = {}
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8')
  } catch {
    return undefined
  }
  for (const line of text.split('\n')) {
    const [key, value] = line.split(':\t')
    if (key && value !== undefined) fields[key] = value.trim()
  }
  return fields
}

describe('the agent image under containerd + runc with the DaemonSet settings', {skip}, () => {
  let lab: Lab
  let node: LabNode
  let dir: string
  let containerd: Containerd
  let image: ImageSummary
  let plan: PodPlan
  let agent: ContainerPlan
  let containerId: string
  let apiServer: Proc
  const requestLog = () => join(dir, 'api-requests.jsonl')
  const requests = (): ApiRequest[] => {
    try {
      return readFileSync(requestLog(), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as ApiRequest)
    } catch {
      return []
    }
  }
  const rolePatches = (reason: string) =>
    requests().filter(
      (r) => r.method === 'PATCH' && r.body?.status?.conditions?.some((c) => c.type === ROLE_CONDITION && c.reason === reason),
    )
  const containerLog = () => {
    try {
      return readFileSync(join(containerd.dir, 'pod', 'logs', agent.name, '0.log'), 'utf8')
    } catch {
      return ''
    }
  }

  before(async () => {
    image = await agentImage()
    lab = await Lab.create(1)
    node = lab.nodes[0] as LabNode
    // Files go with the lab's (removed with it, also on a signal); containerd's, with mounts under them, in
    // a temp dir of its own that it removes (or the next run does, after a SIGKILL).
    dir = join(lab.dir, 'runtime')
    mkdirSync(dir)

    const ca = makeCa('karp runtime test CA', {key: testKey('karp runtime test CA', 'ec')})
    const server = makeCertificate({
      commonName: 'kube-apiserver',
      key: testKey('karp runtime apiserver', 'ec'),
      issuer: ca,
      dnsSans: API_SERVER_NAMES,
      ipSans: [SERVICE_HOST],
    })
    const pki = {ca: join(dir, 'ca.crt'), cert: join(dir, 'apiserver.crt'), key: join(dir, 'apiserver.key'), token: join(dir, 'token')}
    writeFileSync(pki.ca, ca.certPem)
    writeFileSync(pki.cert, server.certPem)
    writeFileSync(pki.key, server.key.privatePem, {mode: 0o600})
    const token = `runtime-token-${randomBytes(12).toString('hex')}`
    writeFileSync(pki.token, token, {mode: 0o600})
    apiServer = lab.spawnIn(
      node.ns,
      [
        process.execPath,
        '--no-warnings',
        join(here, 'fixtures', 'recording-api-server.ts'),
        `127.0.0.1,${SERVICE_HOST}`,
        String(DEFAULT_API_PORT),
        pki.cert,
        pki.key,
        pki.token,
        requestLog(),
      ],
      {},
      join(dir, 'api-server.log'),
    )
    const serving = () =>
      existsSync(join(dir, 'api-server.log')) ? readFileSync(join(dir, 'api-server.log'), 'utf8').match(/^serving /gm)?.length : 0
    await waitFor('the API server stand-in', 10_000, () => serving() === 2)

    const pauseLayout = await buildPauseImage(join(dir, 'pause-image'))
    containerd = await Containerd.start({
      netns: node.ns,
      sandboxImage: PAUSE_IMAGE,
      cgroupRoot: `karp-test-${lab.prefix}`,
      crictl: await crictlBinary(),
    })
    await containerd.importImage(pauseLayout, PAUSE_IMAGE.replace(/:[^:/]+$/, ''))
    await containerd.importImage(IMAGE_LAYOUT, image.name)

    const password = randomBytes(8).toString('hex')
    const rendered = await karp([
      'render',
      '--vip',
      VIP,
      '--vhid',
      VHID,
      '--password',
      password,
      '--health-check',
      '--api-port',
      String(DEFAULT_API_PORT),
      '--image',
      image.reference,
      '-o',
      'json',
    ])
    assert.equal(rendered.exitCode, 0, rendered.stderr)
    const list = JSON.parse(rendered.stdout) as ManifestList
    const daemonSet = list.items.find((o) => o.kind === 'DaemonSet')
    const secret = list.items.find((o) => o.kind === 'Secret')
    assert.ok(daemonSet?.spec && secret?.data, 'render printed a DaemonSet and a Secret')

    const uid = randomUUID()
    plan = podToCri(daemonSet.spec.template, {
      podName: `${daemonSet.metadata.name}-${uid.slice(0, 5)}`,
      namespace: daemonSet.metadata.namespace ?? 'default',
      nodeName: node.name,
      uid,
      podDir: join(containerd.dir, 'pod'),
      logDirectory: join(containerd.dir, 'pod', 'logs'),
      cgroupParent: containerd.podCgroupParent(uid),
      serviceEnv: {KUBERNETES_SERVICE_HOST: SERVICE_HOST, KUBERNETES_SERVICE_PORT: String(DEFAULT_API_PORT)},
      clusterDns: ['10.96.0.10'],
      clusterDomain: 'cluster.local',
    })
    assert.equal(plan.containers.length, 1)
    agent = plan.containers[0] as ContainerPlan
    await prepareVolumes(plan.volumes, {
      secrets: {[secret.metadata.name]: Object.fromEntries(Object.entries(secret.data).map(([k, v]) => [k, Buffer.from(v, 'base64')]))},
      serviceAccount: {token, caCrt: ca.certPem},
    })
    const podId = await containerd.runPodSandbox(plan.sandbox)
    containerId = await containerd.createContainer(podId, agent.config, plan.sandbox)
    await containerd.startContainer(containerId)
  })

  after(async () => {
    try {
      await containerd?.stop()
    } finally {
      await lab?.destroy()
    }
  })

  it(`runs the ${nativeArchitecture()} image out of the index, by the digest the DaemonSet names`, async () => {
    const platform = image.platforms[nativeArchitecture()]
    assert.ok(platform, `the image has a ${nativeArchitecture()} variant`)
    const byDigest = image.reference.replace(/:[^:/@]+@/, '@')
    const inspected = JSON.parse((await containerd.crictl(['inspecti', '-o', 'json', byDigest])).stdout) as {
      status: {id: string; repoDigests: string[]}
    }
    assert.equal(inspected.status.id, platform.configDigest)
    assert.ok(inspected.status.repoDigests.includes(byDigest), inspected.status.repoDigests.join(', '))
    const {status} = await containerd.inspect(containerId)
    assert.equal(status.state, 'CONTAINER_RUNNING', containerLog())
  })

  it('starts ucarp in the container, and the VIP appears on the node', async (t) => {
    await waitFor(
      'ucarp in the container',
      30_000,
      async () => (await containerd.processes(containerId)).some((p) => p.comm === 'ucarp'),
      containerLog,
    )
    await waitFor(`${VIP} on ${node.name}'s eth0`, 30_000, () => lab.holdsVip(node), containerLog)
    const addr = await execa(IP, ['-n', node.ns, '-4', '-o', 'addr', 'show', 'dev', 'eth0'])
    t.diagnostic(
      addr.stdout
        .split('\n')
        .filter((l) => l.includes(` ${VIP}/`))
        .join('; '),
    )
    // A lease (the image's busybox ip takes valid_lft), renewed: still one after longer than its lifetime.
    const lifetime = await lab.vipLifetime(node)
    assert.equal(typeof lifetime, 'number', addr.stdout)
    await sleep(((lifetime as number) + 1) * 1000)
    assert.equal(typeof (await lab.vipLifetime(node)), 'number', containerLog())
    const [entrypoint] = await containerd.processes(containerId)
    assert.ok(entrypoint)
    assert.match(readFileSync(`/proc/${entrypoint.pid}/cmdline`, 'utf8'), /\/usr\/local\/lib\/karp\/entrypoint\.sh/)
  })

  it('holds NET_ADMIN and NET_RAW only, with no_new_privs and the runtime default seccomp filter, in every process', async (t) => {
    const procs = await containerd.processes(containerId)
    assert.ok(
      procs.some((p) => p.comm === 'ucarp'),
      JSON.stringify(procs),
    )
    const checked: string[] = []
    for (const {pid, comm} of procs) {
      const status = procStatus(pid)
      // A short-lived process (a health check's karp-tls, a lease renewal's ip) may be gone already.
      if (!status) continue
      checked.push(comm)
      const what = `${comm} (pid ${pid})`
      assert.equal(status.CapEff, NET_ADMIN_AND_RAW, `${what} CapEff`)
      assert.equal(status.CapPrm, NET_ADMIN_AND_RAW, `${what} CapPrm`)
      assert.equal(status.CapBnd, NET_ADMIN_AND_RAW, `${what} CapBnd`)
      assert.equal(status.NoNewPrivs, '1', `${what} NoNewPrivs`)
      assert.equal(status.Seccomp, '2', `${what} Seccomp (2: filter)`)
      assert.match(status.Uid ?? '', /^0\s+0\s+0\s+0$/, `${what} Uid`)
      t.diagnostic(`${what}: CapEff ${status.CapEff}, NoNewPrivs ${status.NoNewPrivs}, Seccomp ${status.Seccomp}`)
    }
    assert.ok(checked.includes('ucarp') && checked.includes('entrypoint.sh'), `checked: ${checked.join(', ')}`)
    const {info} = await containerd.inspect(containerId)
    assert.equal(memoryLimit(info.runtimeSpec.linux.cgroupsPath), 32 * 1024 * 1024, 'the memory limit of the template applies')
  })

  it('cannot write its root filesystem or the Secret; reads the password from a 0400 file; its probes pass', async () => {
    const root = await containerd.exec(containerId, ['touch', '/karp-was-here'])
    assert.notEqual(root.exitCode, 0)
    assert.match(root.stderr + root.stdout, /Read-only file system/)
    const secret = await containerd.exec(containerId, ['touch', '/etc/karp/other'])
    assert.notEqual(secret.exitCode, 0)
    assert.match(secret.stderr + secret.stdout, /Read-only file system/)
    const mode = await containerd.exec(containerId, ['ls', '-lL', '/etc/karp/password'])
    assert.equal(mode.exitCode, 0, mode.stderr)
    assert.match(mode.stdout, /^-r-------- /, 'the password file is readable by its owner only')
    const state = await containerd.exec(containerId, ['ls', '/run/karp'])
    assert.match(state.stdout, /ucarp\.pid/, 'the agent writes its state in the emptyDir')
    assert.ok(agent.probes.length >= 2, 'the template has liveness and readiness probes')
    for (const probe of agent.probes) {
      const result = await containerd.exec(containerId, probe.command, probe.timeoutSeconds)
      assert.equal(result.exitCode, 0, `${probe.kind} probe: ${result.stderr}`)
    }
  })

  it('checks the API server with the mounted token over verified TLS and reports its role there', async () => {
    await waitFor(
      'a role report (Master)',
      30_000,
      () => rolePatches('Master').length > 0,
      () => JSON.stringify(requests().map((r) => [r.method, r.path, r.auth])),
    )
    const [patch] = rolePatches('Master')
    assert.ok(patch?.path?.endsWith(`/pods/${(plan.sandbox.metadata as {name: string}).name}/status`), patch?.path)
    assert.equal(patch?.auth, 'token')
    const health = requests().filter((r) => r.path === '/readyz')
    assert.ok(health.length >= 2, 'the health gate checked /readyz')
    const all = requests()
    assert.deepEqual(
      all.filter((r) => r.tlsError !== undefined || r.auth !== 'token'),
      [],
      'every request carried the token; no handshake failed',
    )
  })

  it('lets the VIP go on a graceful stop (CRI StopContainer with the grace period) and reports it', async () => {
    assert.ok(await lab.holdsVip(node))
    await containerd.stopContainer(containerId, plan.terminationGracePeriodSeconds)
    const {status} = await containerd.inspect(containerId)
    assert.equal(status.state, 'CONTAINER_EXITED')
    assert.equal(status.exitCode, 0, containerLog())
    assert.equal(await lab.holdsVip(node), false, 'the VIP left the node')
    assert.match(containerLog(), /role=stopped .*vip_released=now/)
    assert.ok(rolePatches('Backup').length > 0, 'the last report says backup')
    assert.equal(apiServer.running, true)
  })
})
