import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {parse} from 'yaml'

import {ExitCode, UsageError} from '../../src/lib/errors.js'
import {
  addClusterAndContext,
  assertOnlyChange,
  EditBugError,
  renderScalar,
  setClusterServer,
} from '../../src/lib/kubeconfig/document-edit.js'
import {entries, type KubeconfigFile, parseKubeconfig} from '../../src/lib/kubeconfig/parse.js'
import {parseServer, pointsAt, vipServer} from '../../src/lib/kubeconfig/server-url.js'
import {changedLines, fixtureText, REAL_WORLD} from '../fixtures/kubeconfig/harness.js'

const VIP_SERVER = 'https://192.168.1.250:6443'

function file(text: string, path = 'test.yaml'): KubeconfigFile {
  return parseKubeconfig(path, Buffer.from(text))
}

function fixture(name: string): KubeconfigFile {
  return file(fixtureText(name), name)
}

type Config = {clusters: Array<{name: string; cluster: {server: string}}>; contexts: Array<{name: string; context: Record<string, string>}>}

describe('setClusterServer: one server value changes, every other byte stays', () => {
  const cases: Array<[string, string, string, string]> = [
    // fixture, cluster, the line before, the line after
    ['k3s.yaml', 'default', '    server: https://127.0.0.1:6443', `    server: ${VIP_SERVER}`],
    ['rke-kube_config_cluster.yml', 'lab-rke', '    server: "https://10.20.0.11:6443"', `    server: "${VIP_SERVER}"`],
    ['kubeadm-admin.conf', 'kubernetes', '    server: https://10.30.0.11:6443', `    server: ${VIP_SERVER}`],
    [
      'cloud-exec.yaml',
      'arn:aws:eks:eu-west-1:123456789012:cluster/prod',
      '    server: https://api.prod.example.com:6443',
      `    server: ${VIP_SERVER}`,
    ],
    [
      'hand-written.yaml',
      'lab',
      "      server: 'https://10.10.0.11:6443'   # cp1 for now",
      `      server: '${VIP_SERVER}'   # cp1 for now`,
    ],
    ['hand-written.yaml', 'edge', '      server: "https://[fd00:10::11]:6443"', `      server: "${VIP_SERVER}"`],
    [
      'hand-written.yaml',
      'prod',
      "    cluster: {server: https://prod.example.com:6443, proxy-url: 'http://proxy.example.com:3128'}",
      `    cluster: {server: ${VIP_SERVER}, proxy-url: 'http://proxy.example.com:3128'}`,
    ],
    [
      'json.kubeconfig',
      'lab',
      '  "clusters": [{"name": "lab", "cluster": {"server": "https://10.40.0.11:6443", "insecure-skip-tls-verify": true}}],',
      `  "clusters": [{"name": "lab", "cluster": {"server": "${VIP_SERVER}", "insecure-skip-tls-verify": true}}],`,
    ],
  ]
  for (const [name, cluster, before, after] of cases) {
    it(`${name}, cluster ${cluster}: a line diff shows exactly that one line, in its quoting style`, () => {
      const original = fixture(name)
      const {text} = setClusterServer(original, cluster, VIP_SERVER)
      assert.deepEqual(changedLines(original.text, text), {removed: [before], added: [after]})
      // Same length apart from the value itself: nothing else moved.
      assert.equal(text.length - original.text.length, after.length - before.length)
      const edited = parse(text) as Config
      assert.equal(edited.clusters.find((c) => c.name === cluster)?.cluster.server, VIP_SERVER)
    })
  }

  it('covers every real-world fixture', () => {
    for (const name of REAL_WORLD)
      assert.ok(
        cases.some(([f]) => f === name),
        name,
      )
  })

  it('keeps a file without a final newline, CRLF line ends and a byte order mark as they are', () => {
    const text = '\uFEFFclusters:\r\n- cluster:\r\n    server: https://10.0.0.1:6443\r\n  name: c\r\ncontexts: []'
    const {text: edited} = setClusterServer(file(text), 'c', VIP_SERVER)
    assert.equal(edited, text.replace('https://10.0.0.1:6443', VIP_SERVER))
  })

  it('escapes a single quote in single-quoted style and uses JSON escapes in double quotes', () => {
    assert.equal(renderScalar("https://it's", 'single'), "'https://it''s'")
    assert.equal(renderScalar('https://a"b\\', 'double'), '"https://a\\"b\\\\"')
    assert.equal(renderScalar(VIP_SERVER, 'plain'), VIP_SERVER)
  })

  it('refuses a server shared through a YAML anchor, an alias, or a block scalar (exit 2, edit by hand)', () => {
    const anchored = 'clusters:\n- name: a\n  cluster: &shared\n    server: https://10.0.0.1:6443\n- name: b\n  cluster: *shared\n'
    const aliasServer = 'x: &s https://10.0.0.1:6443\nclusters:\n- name: a\n  cluster:\n    server: *s\n'
    const block = 'clusters:\n- name: a\n  cluster:\n    server: |-\n      https://10.0.0.1:6443\n'
    for (const [text, cluster, message] of [
      [anchored, 'a', /shared through the YAML anchor &shared/],
      [anchored, 'b', /takes its cluster from the YAML alias \*shared/],
      [aliasServer, 'a', /takes its server from the YAML alias \*s/],
      [block, 'a', /literal block scalar/],
    ] as const) {
      assert.throws(
        () => setClusterServer(file(text), cluster, VIP_SERVER),
        (e: unknown) => e instanceof UsageError && message.test(e.message),
      )
    }
  })

  it('an anchor nobody refers to is fine', () => {
    const text = 'clusters:\n- name: a\n  cluster: &mine\n    server: &srv https://10.0.0.1:6443\n'
    const {text: edited} = setClusterServer(file(text), 'a', VIP_SERVER)
    assert.equal(edited, text.replace('https://10.0.0.1:6443', VIP_SERVER))
  })

  it('refuses a cluster without a server string', () => {
    assert.throws(
      () => setClusterServer(file('clusters:\n- name: a\n  cluster:\n    server: 6443\n'), 'a', VIP_SERVER),
      /has no server string/,
    )
  })
})

describe('assertOnlyChange: the guard against surprises', () => {
  const original = file('clusters:\n- name: a\n  cluster:\n    server: https://10.0.0.1:6443\n  # note\nusers: []\n')

  it('accepts exactly the intended change', () => {
    const edited = original.text.replace('10.0.0.1', '192.168.1.250')
    assert.doesNotThrow(() =>
      assertOnlyChange(
        original,
        edited,
        (d) => ((d.clusters as Config['clusters'])[0]!.cluster.server = 'https://192.168.1.250:6443'),
        'test',
      ),
    )
  })

  it('refuses (exit 1, a bug) when anything else would change, or the text no longer parses', () => {
    const intended = (d: Record<string, unknown>) => ((d.clusters as Config['clusters'])[0]!.cluster.server = 'https://192.168.1.250:6443')
    const isBug = (e: unknown) => e instanceof EditBugError && e.exitCode === ExitCode.bug && /refusing to write test\.yaml/.test(e.message)
    assert.throws(
      () =>
        assertOnlyChange(original, original.text.replace('10.0.0.1', '192.168.1.250').replace('users: []', 'users: [x]'), intended, 'test'),
      isBug,
    )
    assert.throws(
      () => assertOnlyChange(original, original.text.replace('10.0.0.1', '192.168.1.250').replace('name: a', 'name: [a'), intended, 'test'),
      isBug,
    )
  })
})

describe('addClusterAndContext: new entries appended as text', () => {
  const add = (server = VIP_SERVER) => ({
    cluster: {cluster: {server}, name: 'vip'},
    context: {context: {cluster: 'vip', user: 'u'}, name: 'vip'},
  })

  function check(text: string, expectAdded: string[], expectRemoved: string[] = []) {
    const original = file(text)
    const result = addClusterAndContext(original, add())
    assert.deepEqual(result.warnings, [])
    assert.deepEqual(changedLines(original.text, result.text), {removed: expectRemoved, added: expectAdded})
    const edited = parse(result.text) as Config
    assert.deepEqual(edited.clusters.at(-1), {cluster: {server: VIP_SERVER}, name: 'vip'})
    assert.deepEqual(edited.contexts.at(-1), {context: {cluster: 'vip', user: 'u'}, name: 'vip'})
    return result.text
  }

  it('block lists at column 0 (kubectl, k3s, kubeadm): items in the same layout, nothing removed', () => {
    const original = fixture('k3s.yaml')
    const result = addClusterAndContext(original, {
      cluster: {
        ...(parse(original.text) as {clusters: Array<Record<string, unknown>>}).clusters[0],
        name: 'vip',
        cluster: {server: VIP_SERVER},
      },
      context: {context: {cluster: 'vip', user: 'default'}, name: 'vip'},
    })
    const {removed, added} = changedLines(original.text, result.text)
    assert.deepEqual(removed, [])
    assert.deepEqual(added, [
      '- cluster:',
      `    server: ${VIP_SERVER}`,
      '  name: vip',
      '- context:',
      '    cluster: vip',
      '    user: default',
      '  name: vip',
    ])
  })

  it('indented block lists with comments and blank lines (hand-written): the same indentation, comments untouched', () => {
    const original = fixture('hand-written.yaml')
    const result = addClusterAndContext(original, {
      cluster: {name: 'vip', cluster: {server: VIP_SERVER, extensions: [{name: 'x', extension: {a: 1}}]}},
      context: {name: 'vip', context: {cluster: 'vip', user: 'admin'}},
    })
    const {removed, added} = changedLines(original.text, result.text)
    assert.deepEqual(removed, [])
    assert.deepEqual(added, [
      '  - name: vip',
      '    cluster:',
      `      server: ${VIP_SERVER}`,
      '      extensions:',
      '        - name: x',
      '          extension:',
      '            a: 1',
      '  - name: vip',
      '    context:',
      '      cluster: vip',
      '      user: admin',
    ])
    assert.ok(result.text.endsWith('# end of file: new entries go above this line\n'))
  })

  it('JSON (flow) kubeconfig: `, {...}` after the last item, valid JSON still', () => {
    const original = fixture('json.kubeconfig')
    const result = addClusterAndContext(original, add())
    assert.deepEqual(result.warnings, [])
    const json = JSON.parse(result.text) as Config
    assert.equal(json.clusters.length, 2)
    assert.deepEqual(json.contexts[1], {context: {cluster: 'vip', user: 'u'}, name: 'vip'})
    assert.equal(changedLines(original.text, result.text).removed.length, 2)
  })

  it('a missing contexts list, an empty one ([] with its comment kept) and a null one', () => {
    const clusters = 'clusters:\n- cluster:\n    server: https://10.0.0.1:6443\n  name: a\n'
    const items = ['- context:', '    cluster: vip', '    user: u', '  name: vip']
    const clusterItem = ['- cluster:', `    server: ${VIP_SERVER}`, '  name: vip']
    check(`${clusters}users: []\n`, [...clusterItem, 'contexts:', ...items])
    check(
      `${clusters}contexts: [] # none yet\nusers: []\n`,
      [...clusterItem, 'contexts: # none yet', ...items],
      ['contexts: [] # none yet'],
    )
    check(`${clusters}contexts:\nusers: []\n`, [...clusterItem, ...items])
    check(`${clusters}contexts: null\n`, [...clusterItem, 'contexts:', ...items], ['contexts: null'])
    // No final newline: one is added before the new lines.
    check(`${clusters}contexts:\n- context: {cluster: a}\n  name: a`, [...clusterItem, '  name: a', ...items], ['  name: a'])
  })

  it('an unusual layout goes through the Document API, and says so', () => {
    const original = file('clusters:\n-\n  name: a\n  cluster:\n    server: https://10.0.0.1:6443\ncontexts: []\n')
    const result = addClusterAndContext(original, add())
    assert.match(result.warnings.join('\n'), /clusters is not a list karp can append to as text, so the YAML library re-wrote the file/)
    assert.equal((parse(result.text) as Config).clusters.length, 2)
  })
})

describe("parseKubeconfig: malformed files are the user's to fix (exit 2, file named)", () => {
  const bad: Array<[string, RegExp]> = [
    ['clusters: [\n', /^kubeconfig bad\.yaml is not valid YAML: /],
    ['a: 1\na: 2\n', /is not valid YAML: Map keys must be unique at line 2, column 1$/],
    ['a: 1\n---\nb: 2\n', /is not valid YAML: Source contains multiple documents/],
    ['- just\n- a list\n', /is not a kubeconfig: expected a mapping/],
    ['clusters: {a: 1}\n', /clusters must be a list/],
    ['clusters:\n- server: x\n', /clusters\[0\] has no name/],
    ['clusters:\n- name: a\n  cluster: x\n', /clusters\[0\] \("a"\) cluster must be a mapping/],
    ['contexts:\n- name: a\n- name: a\n', /defines context "a" twice/],
    ['current-context: [a]\n', /current-context must be a string/],
  ]
  for (const [text, message] of bad) {
    it(`refuses ${JSON.stringify(text.slice(0, 30))}`, () => {
      assert.throws(
        () => parseKubeconfig('bad.yaml', Buffer.from(text)),
        (e: unknown) => e instanceof UsageError && e.exitCode === ExitCode.usage && message.test(e.message) && !e.message.includes('\n'),
      )
    })
  }

  it('refuses bytes that are not UTF-8, which a text edit would change', () => {
    assert.throws(() => parseKubeconfig('latin1.yaml', Buffer.from([0x61, 0x3a, 0x20, 0xe9, 0x0a])), /not valid UTF-8/)
  })

  it('an empty file is an empty kubeconfig', () => {
    assert.deepEqual(entries(file(''), 'clusters'), [])
  })
})

describe('server URLs', () => {
  it('reads host and port as client-go does, IPv6 included', () => {
    assert.deepEqual(parseServer('https://[fd00:10::11]:6443', 'x'), {host: 'fd00:10::11', port: 6443})
    assert.deepEqual(parseServer('https://api.example.com', 'x'), {host: 'api.example.com', port: 443})
    assert.deepEqual(parseServer('10.0.0.1:6443', 'x'), {host: '10.0.0.1', port: 6443})
    assert.deepEqual(parseServer('https://10.0.0.1:6443/', 'x'), {host: '10.0.0.1', port: 6443})
  })

  it('refuses a server behind a proxy path and what is not a URL', () => {
    assert.throws(
      () => parseServer('https://rancher.example.com/k8s/clusters/c-m-abc', 'cluster "r"'),
      /path \/k8s\/clusters\/c-m-abc: it reaches the API server through a proxy/,
    )
    assert.throws(() => parseServer('https://exa mple:1', 'x'), /not a URL/)
    assert.throws(() => parseServer('ftp://x:1', 'x'), /expected an https:\/\/ URL/)
  })

  it('writes the port out and knows when a server already is the VIP', () => {
    assert.equal(vipServer('192.168.1.250', 443), 'https://192.168.1.250:443')
    assert.ok(pointsAt('https://192.168.1.250:6443', {host: '192.168.1.250', port: 6443}))
    assert.ok(pointsAt('https://192.168.1.250:6443/', {host: '192.168.1.250', port: 6443}))
    assert.ok(!pointsAt('https://192.168.1.250:6443', {host: '192.168.1.250', port: 443}))
    assert.ok(!pointsAt('http://192.168.1.250:6443', {host: '192.168.1.250', port: 6443}))
    assert.ok(!pointsAt('https://192.168.1.25:6443', {host: '192.168.1.250', port: 6443}))
  })
})
