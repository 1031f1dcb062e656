// The plan of `karp kubeconfig rewrite` as a pure function of the files' content: the files handed to it are
// parsed from text under paths that do not exist, so any read or write of its own would fail.
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {parse} from 'yaml'

import {ExitCode} from '../../src/lib/errors.js'
import {type KubeconfigFile, parseKubeconfig} from '../../src/lib/kubeconfig/parse.js'
import {planRewrite, type RewriteRequest, selectRewrite} from '../../src/lib/kubeconfig/rewrite-plan.js'
import {changedLines, fixtureText} from '../fixtures/kubeconfig/harness.js'
import {throwsKarpError} from '../helpers/karp-error.js'

const VIP = '192.168.1.250'
const HAND_WRITTEN = fixtureText('hand-written.yaml')

const parsed = (path: string, text: string): KubeconfigFile => parseKubeconfig(path, Buffer.from(text, 'utf8'))

function plan(files: KubeconfigFile[], request: {context?: string; newContext?: string} & Partial<RewriteRequest> = {}) {
  const {context, newContext, ...vip} = request
  return planRewrite(files, selectRewrite(files, {context, newContext}), {vip: VIP, ...vip})
}

const refusal = (fn: () => unknown) => throwsKarpError(fn, ExitCode.usage).message

describe('planRewrite (pure)', () => {
  it("changes the server of the context's cluster and no other byte; nothing is read or written", () => {
    const file = parsed('/nonexistent/config', HAND_WRITTEN)
    const planned = plan([file], {context: 'edge'})
    assert.deepEqual(planned.result, {
      file: '/nonexistent/config',
      context: 'edge',
      cluster: 'edge',
      oldServer: 'https://[fd00:10::11]:6443',
      newServer: `https://${VIP}:6443`,
      basedOn: null,
      warnings: [],
    })
    assert.deepEqual(planned.vip, {host: VIP, port: 6443})
    assert.deepEqual(planned.files, ['/nonexistent/config'])
    assert.equal(planned.edit?.file, file)
    assert.deepEqual(changedLines(HAND_WRITTEN, planned.edit?.text ?? ''), {
      removed: ['      server: "https://[fd00:10::11]:6443"'],
      added: [`      server: "https://${VIP}:6443"`],
    })
    assert.equal(file.text, HAND_WRITTEN, 'the file read is left as it was')
    assert.deepEqual(plan([file], {context: 'edge'}), planned, 'the same content, the same plan')
  })

  it("the port: --port, else the install's, else the one the server has; a change is a warning", () => {
    const files = [parsed('/nonexistent/config', HAND_WRITTEN)]
    assert.equal(plan(files).result.newServer, `https://${VIP}:6443`)
    const fromInstall = plan(files, {installPort: 8443})
    assert.equal(fromInstall.result.newServer, `https://${VIP}:8443`)
    assert.ok(fromInstall.result.warnings.includes('the port changes from 6443 to 8443'))
    assert.equal(plan(files, {installPort: 8443, port: 443}).result.newServer, `https://${VIP}:443`)
    assert.equal(plan(files, {installPort: 8443, port: 6443}).result.newServer, `https://${VIP}:6443`)
  })

  it('nothing to do when the server already points at the VIP and port', () => {
    const files = [parsed('/nonexistent/config', HAND_WRITTEN.replace("'https://10.10.0.11:6443'", `'https://${VIP}:6443'`))]
    const planned = plan(files)
    assert.equal(planned.edit, undefined)
    assert.equal(planned.result.oldServer, `https://${VIP}:6443`)
    assert.ok(plan(files, {port: 443}).edit, 'another port is a change')
  })

  it('warns that the other contexts of a shared cluster entry move too', () => {
    const files = [parsed('/nonexistent/config', HAND_WRITTEN)]
    assert.ok(
      plan(files, {context: 'lab'}).result.warnings.includes(
        'cluster "lab" is also used by context "lab-readonly": it moves to the VIP too (--new-context NAME leaves them alone)',
      ),
    )
    const three = [parsed('/nonexistent/config', HAND_WRITTEN.replace('cluster: edge', 'cluster: lab'))]
    assert.ok(
      plan(three, {context: 'lab'}).result.warnings.includes(
        'cluster "lab" is also used by contexts "lab-readonly", "edge": they move to the VIP too (--new-context NAME leaves them alone)',
      ),
    )
  })

  it('edits the first file that defines the cluster, and lists every file for reading the context back', () => {
    const first = parsed('/nonexistent/a', 'current-context: lab\ncontexts:\n- name: lab\n  context: {cluster: lab, user: admin}\n')
    const second = parsed('/nonexistent/b', HAND_WRITTEN)
    const planned = plan([first, second])
    assert.equal(planned.edit?.file, second)
    assert.deepEqual(planned.files, ['/nonexistent/a', '/nonexistent/b'])
  })

  it('--new-context: a copy of the context and cluster for the VIP, the originals untouched', () => {
    const files = [parsed('/nonexistent/config', HAND_WRITTEN)]
    const planned = plan(files, {context: 'lab', newContext: 'lab-vip'})
    assert.deepEqual(
      [planned.result.context, planned.result.cluster, planned.result.basedOn],
      ['lab-vip', 'lab-vip', {context: 'lab', cluster: 'lab'}],
    )
    assert.deepEqual(planned.result.warnings, [], 'the shared entry does not move')
    const after = parse(planned.edit?.text ?? '') as {
      clusters: Array<{name: string; cluster: Record<string, unknown>}>
      contexts: Array<{name: string; context: unknown}>
    }
    const before = parse(HAND_WRITTEN) as typeof after
    assert.deepEqual(after.clusters.slice(0, -1), before.clusters)
    assert.deepEqual(after.clusters.at(-1), {name: 'lab-vip', cluster: {...before.clusters[0]?.cluster, server: `https://${VIP}:6443`}})
    assert.deepEqual(after.contexts.at(-1), {name: 'lab-vip', context: {cluster: 'lab-vip', user: 'admin', namespace: 'kube-system'}})
  })

  it("--new-context that exists: nothing to do if it is the VIP's, else refused", () => {
    const done = plan([parsed('/nonexistent/config', HAND_WRITTEN)], {context: 'lab', newContext: 'lab-vip'}).edit?.text ?? ''
    const other = parsed('/nonexistent/other', 'contexts: []\n')
    const again = plan([other, parsed('/nonexistent/config', done)], {context: 'lab', newContext: 'lab-vip'})
    assert.equal(again.edit, undefined)
    assert.deepEqual(
      [again.result.file, again.result.context, again.result.oldServer],
      ['/nonexistent/config', 'lab-vip', `https://${VIP}:6443`],
    )
    const files = [parsed('/nonexistent/config', HAND_WRITTEN)]
    assert.equal(
      refusal(() => plan(files, {context: 'lab', newContext: 'edge'})),
      'invalid --new-context "edge": a context named "edge" exists in /nonexistent/config; choose another name',
    )
    const clusterOnly = [
      parsed('/nonexistent/config', HAND_WRITTEN.replace('- name: prod\n    context', '- name: production\n    context')),
    ]
    assert.equal(
      refusal(() => plan(clusterOnly, {context: 'lab', newContext: 'prod'})),
      'invalid --new-context "prod": a cluster named "prod" exists in /nonexistent/config; choose another name',
    )
  })

  it('refuses what it cannot rewrite before anything else', () => {
    const files = (text: string) => [parsed('/nonexistent/config', text)]
    assert.match(
      refusal(() => plan(files(HAND_WRITTEN), {newContext: ' x'})),
      /^invalid --new-context " x": expected a non-empty name/,
    )
    const proxied = HAND_WRITTEN.replace("'https://10.10.0.11:6443'", 'https://rancher.example.com/k8s/clusters/c-m-x1')
    assert.match(
      refusal(() => plan(files(proxied))),
      /^cluster "lab" in \/nonexistent\/config has server .* with path \/k8s\/clusters\/c-m-x1: it reaches the API server through a proxy/,
    )
    const serverless = HAND_WRITTEN.replace("server: 'https://10.10.0.11:6443'   # cp1 for now", 'certificate-authority-data: eA==')
    assert.equal(
      refusal(() => plan(files(serverless))),
      'cluster "lab" in /nonexistent/config has no server to rewrite',
    )
  })
})
