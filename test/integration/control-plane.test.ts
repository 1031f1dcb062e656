import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {existsSync, mkdtempSync, readdirSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {AppsV1Api, CoreV1Api, VersionApi, type V1Pod} from '@kubernetes/client-node'

import {
  CONTROL_PLANE_LABEL,
  controlPlaneNode,
  createFakeNodes,
  deleteFakeNodes,
  setNodeReady,
  workerNode,
} from '../cluster/nodes.js'
import {groupAlive, startControlPlane} from '../cluster/control-plane.js'
import {clusterOrSkip, loadKubeConfig, uniqueName} from './cluster-env.js'

const cluster = clusterOrSkip()
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const value = await probe()
      if (value !== undefined) return value
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`${what}: not reached after ${timeoutMs / 1000} s`, {cause: last})
    await sleep(250)
  }
}

describe('test control plane', {skip: cluster.skip}, () => {
  it('serves the pinned Kubernetes version', async () => {
    const version = await loadKubeConfig(cluster.kubeconfig).makeApiClient(VersionApi).getCode()
    assert.equal(version.gitVersion, 'v1.34.4')
  })

  it('lets the admin list namespaces', async () => {
    const list = await loadKubeConfig(cluster.kubeconfig).makeApiClient(CoreV1Api).listNamespace()
    const names = list.items.map((ns) => ns.metadata?.name)
    assert.ok(names.includes('default') && names.includes('kube-system'), `namespaces: ${names.join(', ')}`)
  })

  it('authenticates the unprivileged user and refuses it the node list (403)', async () => {
    const api = loadKubeConfig(cluster.userKubeconfig).makeApiClient(CoreV1Api)
    await assert.rejects(api.listNode(), (err: {code?: number; body?: string}) => {
      assert.equal(err.code, 403)
      assert.match(String(err.body), new RegExp(`User \\\\?"${cluster.userName}\\\\?" cannot list resource \\\\?"nodes\\\\?"`))
      return true
    })
  })
})

describe('DaemonSet on fake nodes', {skip: cluster.skip}, () => {
  const group = uniqueName('ds')
  const groupLabel = 'karp.test/group'
  const cps = [1, 2, 3].map((i) => controlPlaneNode(`${group}-cp${i}`, `10.250.0.${i}`, {[groupLabel]: group}))
  const workers = [1, 2].map((i) => workerNode(`${group}-w${i}`, `10.250.1.${i}`, {[groupLabel]: group}))
  const namespace = group
  const kc = cluster.skip ? undefined : loadKubeConfig(cluster.kubeconfig)
  const core = () => kc!.makeApiClient(CoreV1Api)
  const apps = () => kc!.makeApiClient(AppsV1Api)

  before(async () => {
    await core().createNamespace({body: {metadata: {name: namespace}}})
    await createFakeNodes(kc!, [...cps, ...workers])
  })

  after(async () => {
    await core()
      .deleteNamespace({name: namespace})
      .catch(() => undefined)
    await deleteFakeNodes(kc!, [...cps, ...workers].map((n) => n.name))
  })

  it('gets Running pods on exactly the selected control-plane nodes', async () => {
    // Pods are admitted only once the namespace's ServiceAccount exists.
    await until('default ServiceAccount', 20_000, async () =>
      core().readNamespacedServiceAccount({name: 'default', namespace}),
    )
    await apps().createNamespacedDaemonSet({
      namespace,
      body: {
        metadata: {name: 'probe'},
        spec: {
          selector: {matchLabels: {app: 'probe'}},
          template: {
            metadata: {labels: {app: 'probe'}},
            spec: {
              hostNetwork: true,
              affinity: {
                nodeAffinity: {
                  requiredDuringSchedulingIgnoredDuringExecution: {
                    nodeSelectorTerms: [
                      {
                        matchExpressions: [
                          {key: CONTROL_PLANE_LABEL, operator: 'Exists'},
                          {key: groupLabel, operator: 'In', values: [group]},
                        ],
                      },
                    ],
                  },
                },
              },
              tolerations: [{key: CONTROL_PLANE_LABEL, operator: 'Exists', effect: 'NoSchedule'}],
              // kwok runs nothing: the image is never pulled.
              containers: [{name: 'probe', image: 'registry.invalid/probe:0'}],
            },
          },
        },
      },
    })

    const running = await until('3 Running pods', 60_000, async () => {
      const pods = await core().listNamespacedPod({namespace, labelSelector: 'app=probe'})
      const up = pods.items.filter((p: V1Pod) => p.status?.phase === 'Running')
      return up.length === cps.length ? pods.items : undefined
    })
    assert.deepEqual(running.map((p) => p.spec?.nodeName).sort(), cps.map((n) => n.name).sort())
    assert.deepEqual(running.map((p) => p.status?.podIP).sort(), ['10.250.0.1', '10.250.0.2', '10.250.0.3'])

    const ds = await until('DaemonSet status', 20_000, async () => {
      const d = await apps().readNamespacedDaemonSet({name: 'probe', namespace})
      return d.status?.numberReady === cps.length ? d : undefined
    })
    assert.equal(ds.status?.desiredNumberScheduled, cps.length)
    // A worker never gets one, even given time to go wrong.
    await sleep(1000)
    const pods = await core().listNamespacedPod({namespace, labelSelector: 'app=probe'})
    assert.equal(pods.items.length, cps.length)
  })

  it('turns a selected node NotReady and Ready again', async () => {
    const name = cps[0]!.name
    const down = await setNodeReady(kc!, name, false)
    assert.equal(down.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'False')
    // The node lifecycle controller reacts as to a real NotReady node, and kwok does not flip it back.
    await until('not-ready taint', 30_000, async () => {
      const node = await core().readNode({name})
      return node.spec?.taints?.some((t) => t.key === 'node.kubernetes.io/not-ready') ? node : undefined
    })
    await sleep(2000)
    const still = await core().readNode({name})
    assert.equal(still.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'False')
    const up = await setNodeReady(kc!, name, true)
    assert.equal(up.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True')
  })
})

describe('control plane lifecycle', {skip: cluster.skip}, () => {
  it('reports the failing component with its log tail and leaves nothing behind', async () => {
    // Each component "binary" prints a line and exits: a start that fails at once.
    const fail = ['sh', '-c', 'echo "simulated failure of $0" >&2; exit 3']
    let message = ''
    await startControlPlane({binDir: cluster.binDir, commandPrefix: fail}).catch((err: Error) => (message = err.message))
    assert.match(message, /control plane: (etcd|kube-apiserver) exited with 3/)
    assert.match(message, /simulated failure of \S+\/(etcd|kube-apiserver)/)
    const dir = /(\/\S+\/karp-cluster-[^/]+)\//.exec(message)?.[1]
    assert.ok(dir, message)
    assert.equal(existsSync(dir), false, `${dir} left behind`)
  })

  it('is torn down by its reaper when the process that started it is killed', async () => {
    const parentTmp = mkdtempSync(join(tmpdir(), 'karp-reaper-test-'))
    const clusterDirs = () => readdirSync(parentTmp).filter((name) => name.startsWith('karp-cluster-'))
    try {
      // etcd and kube-apiserver stand-ins that run until killed; the starter waits for a readiness that never comes.
      const script = `
        import {startControlPlane} from ${JSON.stringify(new URL('../cluster/control-plane.ts', import.meta.url).href)}
        await startControlPlane({binDir: ${JSON.stringify(cluster.binDir)}, commandPrefix: ['sh', '-c', 'exec sleep 600']})`
      const starter = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        env: {...process.env, TMPDIR: parentTmp},
        stdio: 'ignore',
      })
      const pgidsFile = await until('components started', 20_000, async () => {
        const [dir] = clusterDirs()
        const file = dir && join(parentTmp, dir, 'pgids')
        return file && existsSync(file) && readFileSync(file, 'utf8').trim().split('\n').length === 2 ? file : undefined
      })
      const pgids = readFileSync(pgidsFile, 'utf8').trim().split('\n').map(Number)
      assert.ok(pgids.every(groupAlive))
      starter.kill('SIGKILL')
      await until('components and temp dir gone', 15_000, async () =>
        pgids.some(groupAlive) || clusterDirs().length > 0 ? undefined : true,
      )
    } finally {
      rmSync(parentTmp, {recursive: true, force: true})
    }
  })
})
