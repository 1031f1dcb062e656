// Which kubeconfig files and which context: the one module both the API client and `kubeconfig rewrite` use.
import assert from 'node:assert/strict'
import {mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {ExitCode} from '../../src/lib/errors.js'
import {loadKubeConfig} from '../../src/lib/kube/client.js'
import {loadContextConfig} from '../../src/lib/kubeconfig/client-config.js'
import {readKubeconfig} from '../../src/lib/kubeconfig/parse.js'
import {selectRewrite} from '../../src/lib/kubeconfig/rewrite-plan.js'
import {chooseContext, type KubeconfigNames, locateKubeconfig} from '../../src/lib/kubeconfig/select.js'
import {tempDir} from '../fixtures/kubeconfig/harness.js'
import {throwsKarpError} from '../helpers/karp-error.js'

const usageError = (fn: () => unknown) => throwsKarpError(fn, ExitCode.usage)

describe('locateKubeconfig: which files', () => {
  function home(): string {
    const dir = tempDir()
    mkdirSync(join(dir, '.kube'))
    writeFileSync(join(dir, '.kube', 'config'), 'apiVersion: v1\n')
    return dir
  }
  function existing(...names: string[]): string[] {
    const dir = tempDir()
    return names.map((n) => (writeFileSync(join(dir, n), 'apiVersion: v1\n'), join(dir, n)))
  }

  it('--kubeconfig alone, over KUBECONFIG and ~/.kube/config (even a file that does not exist: reading it says so)', () => {
    const [a = ''] = existing('a')
    assert.deepEqual(locateKubeconfig('/nowhere/config', {KUBECONFIG: a, HOME: home()}), ['/nowhere/config'])
  })

  it('KUBECONFIG over ~/.kube/config: its existing files in order, missing and empty entries and repeats skipped', () => {
    const [a = '', b = ''] = existing('a', 'b')
    const dir = tempDir()
    const list = ['', join(dir, 'missing'), b, a, '', b, join(dir, 'also-missing')].join(':')
    assert.deepEqual(locateKubeconfig(undefined, {KUBECONFIG: list, HOME: home()}), [b, a])
  })

  it('~/.kube/config when neither is given', () => {
    const dir = home()
    assert.deepEqual(locateKubeconfig(undefined, {HOME: dir}), [join(dir, '.kube', 'config')])
    assert.deepEqual(
      locateKubeconfig(undefined, {KUBECONFIG: '', HOME: dir}),
      [join(dir, '.kube', 'config')],
      'an empty KUBECONFIG is unset',
    )
  })

  it('nothing to read: one error for each way, with what to do', () => {
    const dir = tempDir()
    const list = `${join(dir, 'x')}:${join(dir, 'y')}`
    const none = usageError(() => locateKubeconfig(undefined, {KUBECONFIG: list, HOME: home()}))
    assert.equal(none.message, `none of the files in KUBECONFIG exists (${list})`)
    assert.equal(none.hint, 'pass --kubeconfig PATH or set KUBECONFIG')
    const noHome = usageError(() => locateKubeconfig(undefined, {HOME: tempDir()}))
    assert.equal(noHome.message, 'no kubeconfig found at ~/.kube/config')
    assert.equal(noHome.hint, 'pass --kubeconfig PATH or set KUBECONFIG')
  })
})

describe("chooseContext: which context, which cluster (kubectl's merge rule)", () => {
  const file = (path: string, names: Partial<KubeconfigNames>): KubeconfigNames => ({path, contexts: [], clusters: [], ...names})
  // a sets no current-context and defines ctx (on c1); b sets one, redefines ctx (on c2) and defines c1;
  // c defines c1 again and sets another current-context.
  const files = [
    file('a', {currentContext: '', contexts: [{name: 'ctx', cluster: 'c1'}, {name: 'lost', cluster: 'nowhere'}, {name: 'bare'}]}),
    file('b', {
      currentContext: 'ctx',
      contexts: [
        {name: 'ctx', cluster: 'c2'},
        {name: 'other', cluster: 'c2'},
      ],
      clusters: [{name: 'c1'}, {name: 'c2'}],
    }),
    file('c', {currentContext: 'other', clusters: [{name: 'c1'}]}),
  ]

  it('takes the current-context of the first file that sets one, and the first definition of each name', () => {
    assert.deepEqual(chooseContext(files), {contextName: 'ctx', contextFile: 0, clusterName: 'c1', clusterFile: 1})
  })

  it('--context wins over every current-context', () => {
    assert.deepEqual(chooseContext(files, 'other'), {contextName: 'other', contextFile: 1, clusterName: 'c2', clusterFile: 1})
  })

  it('fails naming what exists', () => {
    const noCurrent = usageError(() => chooseContext([files[0] as KubeconfigNames]))
    assert.equal(noCurrent.message, 'kubeconfig a sets no current-context')
    assert.equal(noCurrent.hint, 'pass --context, one of: "ctx", "lost", "bare"')
    assert.equal(usageError(() => chooseContext([file('empty', {})])).hint, 'pass --context, one of: (none defined)')
    assert.equal(
      usageError(() => chooseContext(files, 'nope')).message,
      'invalid --context "nope": no such context in a, b, c; contexts: "ctx", "lost", "bare", "other"',
    )
    assert.equal(
      usageError(() => chooseContext([file('d', {currentContext: 'gone', contexts: [{name: 'ctx', cluster: 'c1'}]})])).message,
      'invalid current-context "gone": no such context in d; contexts: "ctx"',
    )
    assert.equal(usageError(() => chooseContext(files, 'bare')).message, 'context "bare" in a names no cluster')
    assert.equal(
      usageError(() => chooseContext(files, 'lost')).message,
      'context "lost" names cluster "nowhere", which no file defines (a, b, c); clusters: "c1", "c2"',
    )
  })

  it('shows names from the files escaped and quoted', () => {
    assert.equal(usageError(() => chooseContext(files, 'x\u001b[2J')).message.split(':')[0], 'invalid --context "x\\x1b[2J"')
  })
})

describe('both readers of a kubeconfig choose the same way', () => {
  // a sets the current-context and defines it, not its cluster; b defines the cluster (and a current-context
  // of its own, which a's wins over); c defines the same cluster again, shadowed by b.
  const a = 'current-context: ctx-a\ncontexts:\n- context: {cluster: c1, user: u1}\n  name: ctx-a\nusers:\n- name: u1\n  user: {token: t}\n'
  const b =
    'current-context: ctx-b\nclusters:\n- cluster: {server: "https://10.0.0.1:6443"}\n  name: c1\ncontexts:\n- context: {cluster: c1, user: u1}\n  name: ctx-b\n- context: {cluster: nowhere, user: u1}\n  name: ctx-lost\n'
  const c = 'clusters:\n- cluster: {server: "https://10.9.9.9:6443"}\n  name: c1\n'

  function write(): string[] {
    const dir = tempDir()
    writeFileSync(join(dir, 'a'), a)
    writeFileSync(join(dir, 'b'), b)
    writeFileSync(join(dir, 'c'), c)
    return locateKubeconfig(undefined, {KUBECONFIG: ['a', 'missing', 'b', 'c'].map((n) => join(dir, n)).join(':')})
  }

  it('the API client and the rewrite pick the same context, cluster and server', () => {
    const paths = write()
    const kc = loadContextConfig(paths)
    const selection = selectRewrite(
      paths.map((p) => readKubeconfig(p)),
      {},
    )
    assert.deepEqual(
      [kc.getCurrentContext(), kc.getCurrentCluster()?.name, kc.getCurrentCluster()?.server],
      ['ctx-a', 'c1', 'https://10.0.0.1:6443'],
    )
    assert.deepEqual(
      [selection.contextName, selection.clusterName, selection.server, selection.clusterFile.path],
      ['ctx-a', 'c1', 'https://10.0.0.1:6443', paths[1]],
    )
    assert.equal(loadContextConfig(paths, 'ctx-b').getCurrentContext(), 'ctx-b')
  })

  it('and fail with the same words', () => {
    const paths = write()
    for (const context of ['ctx-lost', 'nope']) {
      const client = usageError(() => loadContextConfig(paths, context))
      assert.equal(
        usageError(() =>
          selectRewrite(
            paths.map((p) => readKubeconfig(p)),
            {context},
          ),
        ).message,
        client.message,
      )
    }
    assert.match(
      usageError(() => loadKubeConfig({kubeconfig: paths[2], context: 'nope'})).message,
      /^invalid --context "nope": no such context in .*\/c; contexts: \(none defined\)$/,
    )
  })
})
