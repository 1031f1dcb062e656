import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {existsSync, mkdtempSync, readdirSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, it} from 'node:test'
import {CoreV1Api, VersionApi} from '@kubernetes/client-node'

import {groupAlive, startControlPlane} from '../cluster/control-plane.js'
import {clusterOrSkip, loadKubeConfig} from './cluster-env.js'

const cluster = clusterOrSkip()
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
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
      const pgidsFile = await until('components started', 20_000, () => {
        const [dir] = clusterDirs()
        const file = dir && join(parentTmp, dir, 'pgids')
        return file && existsSync(file) && readFileSync(file, 'utf8').trim().split('\n').length === 2 ? file : undefined
      })
      const pgids = readFileSync(pgidsFile, 'utf8').trim().split('\n').map(Number)
      assert.ok(pgids.every(groupAlive))
      starter.kill('SIGKILL')
      await until('components and temp dir gone', 15_000, () => (pgids.some(groupAlive) || clusterDirs().length > 0 ? undefined : true))
    } finally {
      rmSync(parentTmp, {recursive: true, force: true})
    }
  })
})
