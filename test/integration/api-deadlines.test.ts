// Deadlines against the real control plane, seen through a proxy that can stop answering (test/helpers/
// api-proxy.ts): install's and uninstall's --timeout bound the whole wait even when the API server stops
// answering mid-way, and status --watch neither cuts a quiet, healthy watch nor misses a server gone silent.
// The nodes are plain Node objects that run nothing (test/cluster/plain-nodes.ts): a rollout onto them never
// ends, so what the tests check is the reason a wait gives up: the API server's silence.
import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'

import {AppsV1Api, KubeConfig, PatchStrategy, setHeaderOptions} from '@kubernetes/client-node'
import {execa} from 'execa'

import type {StatusResult} from '../../src/lib/status/status.js'
import {controlPlaneNode, createNodes, deleteNodes} from '../cluster/plain-nodes.js'
import {type ApiProxy, startApiProxy} from '../helpers/api-proxy.js'
import {karp, karpBin} from '../helpers/karp.js'
import {clusterOrSkip, uniqueName} from './cluster-env.js'
import {VIP_ANNOTATION} from '../../src/lib/constants.js'

const cluster = clusterOrSkip()
const LABEL = 'karp-test/deadlines'
const group = uniqueName('dl')
const nodes = [1, 2, 3].map((i) => controlPlaneNode(`${group}-cp${i}`, `10.79.0.1${i}`, {[LABEL]: 'yes'}))
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch)

describe('deadlines against a real API server that stops answering', {skip: cluster.skip}, () => {
  let kc: KubeConfig
  let proxy: ApiProxy
  // Each install its own VIP and vhid: preflight refuses two installs sharing either.
  const installArgs = (namespace: string, vhid: number) => [
    'install',
    '-n',
    namespace,
    '--vip',
    `10.79.0.${200 + vhid}`,
    '--vhid',
    String(vhid),
    '--node-selector',
    `${LABEL}=yes`,
  ]

  before(async () => {
    kc = new KubeConfig()
    kc.loadFromFile(cluster.kubeconfig)
    await createNodes(kc, nodes)
    proxy = await startApiProxy(cluster.kubeconfig)
  })

  after(async () => {
    await proxy?.close()
    if (!kc) return
    for (const ns of ['dl-install', 'dl-uninstall', 'dl-watch'])
      await karp(['uninstall', '--kubeconfig', cluster.kubeconfig, '-n', ns, '--yes', '--no-wait'])
    await deleteNodes(
      kc,
      nodes.map((n) => n.name),
    )
  })

  it('install --timeout ends the rollout wait on time though the API server stops answering', async () => {
    const daemonSet = '/apis/apps/v1/namespaces/dl-install/daemonsets/karp'
    let applied = false
    // Everything goes through until the DaemonSet is applied; then its reads get no answer.
    proxy.holdWhen(({method, path}) => {
      if (method === 'PATCH' && path.startsWith(daemonSet) && !path.includes('dryRun')) applied = true
      return applied && method === 'GET' && path.split('?')[0] === daemonSet
    })
    const run = await karp(
      [...installArgs('dl-install', 41), '--kubeconfig', proxy.kubeconfig, '--timeout', '5s', '--request-timeout', '60s'],
      {timeoutMs: 45_000},
    )
    proxy.holdWhen(() => false)
    assert.ok(applied, 'the DaemonSet was applied through the proxy')
    assert.equal(run.exitCode, 4, run.stderr)
    assert.match(
      run.stderr,
      /^error: DaemonSet dl-install\/karp not rolled out after 5 s: .*; the API server did not answer the last read before the --timeout$/m,
    )
  })

  it('uninstall --timeout ends the wait for the pods on time though the API server stops answering', async () => {
    const installed = await karp([...installArgs('dl-uninstall', 42), '--kubeconfig', cluster.kubeconfig, '--no-wait'])
    assert.equal(installed.exitCode, 0, installed.stderr)
    let deleted = false
    proxy.holdWhen(({method, path}) => {
      if (method === 'DELETE' && path.startsWith('/apis/apps/v1/namespaces/dl-uninstall/daemonsets/karp')) deleted = true
      return deleted && method === 'GET' && path.startsWith('/api/v1/namespaces/dl-uninstall/pods')
    })
    const run = await karp(
      ['uninstall', '-n', 'dl-uninstall', '--yes', '--kubeconfig', proxy.kubeconfig, '--timeout', '5s', '--request-timeout', '60s'],
      {timeoutMs: 45_000},
    )
    proxy.holdWhen(() => false)
    assert.ok(deleted, 'the DaemonSet was deleted through the proxy')
    assert.equal(run.exitCode, 4, run.stderr)
    assert.match(
      run.stderr,
      /^error: karp pods in dl-uninstall not confirmed gone after 5 s: the API server did not answer before the --timeout$/m,
    )
  })

  it('status --watch keeps a quiet watch open, reports a server gone silent, and carries on when it answers again', async () => {
    const installed = await karp([...installArgs('dl-watch', 43), '--kubeconfig', cluster.kubeconfig, '--no-wait'])
    assert.equal(installed.exitCode, 0, installed.stderr)
    const child = execa(
      process.execPath,
      [karpBin, 'status', '--watch', '--json', '--no-probe', '-n', 'dl-watch', '--kubeconfig', proxy.kubeconfig],
      {
        reject: false,
        stdin: 'ignore',
        env: {NO_COLOR: '1'},
      },
    )
    const updates: StatusResult[] = []
    let stderr = ''
    let buffer = ''
    child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        updates.push(JSON.parse(buffer.slice(0, nl)) as StatusResult)
        buffer = buffer.slice(nl + 1)
      }
    })
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const until = async (what: string, done: () => boolean, boundMs: number) => {
      for (const start = Date.now(); !done(); await new Promise((r) => setTimeout(r, 200))) {
        if (Date.now() - start > boundMs) throw new Error(`${what}: not within ${boundMs / 1000} s; stderr: ${stderr}`)
      }
    }
    try {
      await until('the first status', () => updates.length > 0, 30_000)
      // Longer than any silence a watch may have (30 s): a healthy watch is renewed, never reported.
      await new Promise((r) => setTimeout(r, 35_000))
      assert.equal(stderr, '', 'nothing reported while the server answers')
      const apps = kc.makeApiClient(AppsV1Api)
      await apps.patchNamespacedDaemonSet(
        {name: 'karp', namespace: 'dl-watch', body: {metadata: {annotations: {[VIP_ANNOTATION]: '10.79.0.251'}}}},
        merge,
      )
      await until('the change made after the quiet spell', () => updates.at(-1)?.installs[0]?.vip === '10.79.0.251', 20_000)

      proxy.holdAll()
      await until(
        'the report of the silent server',
        () =>
          /^warning: watching the cluster: no answer from https:\/\/127\.0\.0\.1:\d+ within 30 s; retrying until it answers$/m.test(stderr),
        70_000,
      )
      assert.equal(stderr.match(/no answer from/g)?.length, 1, `one report per outage: ${stderr}`)
      proxy.release()
      await until(
        'the report that it answers again',
        () => /^warning: watching the cluster: https:\/\/127\.0\.0\.1:\d+ answers again$/m.test(stderr),
        70_000,
      )
      await apps.patchNamespacedDaemonSet(
        {name: 'karp', namespace: 'dl-watch', body: {metadata: {annotations: {[VIP_ANNOTATION]: '10.79.0.252'}}}},
        merge,
      )
      await until('a change after the outage', () => updates.at(-1)?.installs[0]?.vip === '10.79.0.252', 20_000)
    } finally {
      proxy.release()
      child.kill('SIGINT')
    }
    const ended = await child
    assert.equal(ended.exitCode, 0, stderr)
  })
})
