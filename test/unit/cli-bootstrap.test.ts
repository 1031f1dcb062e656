// `karp bootstrap`, the built binary, on real files in a temporary directory: the password file created
// private and reused, the manifest written private and left alone when unchanged, the output streams, and
// every refusal writing nothing at all.
import assert from 'node:assert/strict'
import {chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, describe, it} from 'node:test'

import {parse, parseAllDocuments} from 'yaml'

import {assertJsonOutput, assertMatchesSchema} from '../helpers/json-schema.js'
import {karp} from '../helpers/karp.js'

const VIP = '192.168.1.250'
const root = mkdtempSync(join(tmpdir(), 'karp-bootstrap-'))
after(() => rmSync(root, {recursive: true, force: true}))

let cases = 0
/** A fresh directory for one test, with where its password file and manifest directory go. */
function workspace() {
  const dir = join(root, String(++cases))
  mkdirSync(dir)
  return {dir, password: join(dir, 'etc', 'karp', 'password'), manifests: join(dir, 'manifests'), ca: join(dir, 'pki', 'ca.crt')}
}

/** The flags that put the password file, the CA and the manifests into the workspace. */
const hostPaths = (w: ReturnType<typeof workspace>) => ['--password-file', w.password, '--ca-file', w.ca, '--manifest-dir', w.manifests]

/** Every file and directory under dir, relative, sorted: what a run left on disk. */
const tree = (dir: string) => (readdirSync(dir, {recursive: true}) as string[]).sort()
const mode = (path: string) => (statSync(path).mode & 0o777).toString(8)

type Pod = {
  metadata: {annotations: Record<string, string>; labels: Record<string, string>}
  spec: {volumes: Array<{name: string; hostPath?: {path: string; type: string}}>}
}

describe('karp bootstrap (binary) with --manifest-dir', () => {
  it('creates the password file 0600 (its directory 0700) and the manifest 0600, then reuses both unchanged', async () => {
    const w = workspace()
    const args = ['bootstrap', '--vip', VIP, '--vhid', '42', ...hostPaths(w)]
    const first = await karp([...args, '--json'])
    assertJsonOutput('bootstrap', first)
    const result = first.json as {passwordCreated: boolean; manifestFile: string; manifestChange: string; passwordFile: string}
    assert.equal(result.passwordCreated, true)
    assert.equal(result.manifestChange, 'created')
    assert.equal(result.manifestFile, join(w.manifests, 'karp.yaml'))
    assert.equal(result.passwordFile, w.password)
    assert.equal(mode(w.password), '600')
    assert.equal(mode(join(w.dir, 'etc', 'karp')), '700')
    assert.equal(mode(result.manifestFile), '600')
    const password = readFileSync(w.password, 'utf8')
    assert.match(password, /^[A-Za-z0-9_-]{19}\n$/, 'one line of 19 characters, as install generates')
    assert.ok(!first.stdout.includes(password.trim()), 'the password is not printed')
    assert.ok(!readFileSync(result.manifestFile, 'utf8').includes(password.trim()), 'nor in the manifest')
    const before = {password: statSync(w.password), manifest: statSync(result.manifestFile)}

    const second = await karp(args)
    assert.equal(second.exitCode, 0, second.stderr)
    assert.equal(second.stderr, '')
    assert.match(
      second.stdout,
      new RegExp(`^using the CARP password in ${w.password}\nthe static pod manifest ${result.manifestFile} is up to date\nNext, `),
    )
    assert.equal(readFileSync(w.password, 'utf8'), password, 'the same password')
    for (const [file, stat] of [
      [w.password, before.password],
      [result.manifestFile, before.manifest],
    ] as const) {
      assert.equal(statSync(file).ino, stat.ino, `${file} was not rewritten`)
      assert.equal(statSync(file).mtimeMs, stat.mtimeMs, `${file} was not rewritten`)
    }
    assert.deepEqual(tree(w.dir), ['etc', 'etc/karp', 'etc/karp/password', 'manifests', 'manifests/karp.yaml'], 'no temporary file is left')
  })

  it('writes a manifest whose hostPath volumes and annotations name the given paths', async () => {
    const w = workspace()
    const run = await karp(['bootstrap', '--vip', VIP, ...hostPaths(w), '--name', 'vip2'])
    assert.equal(run.exitCode, 0, run.stderr)
    const file = join(w.manifests, 'vip2.yaml')
    assert.match(
      run.stdout,
      new RegExp(
        `^created the CARP password file ${w.password} \\(mode 0600, a new random password\\)\nwrote the static pod manifest ${file} \\(mode 0600\\)\n`,
      ),
    )
    const pod = parse(readFileSync(file, 'utf8')) as Pod
    assert.deepEqual(
      pod.spec.volumes.filter((v) => v.hostPath),
      [
        {name: 'password', hostPath: {path: w.password, type: 'File'}},
        {name: 'ca', hostPath: {path: w.ca, type: 'File'}},
      ],
    )
    assert.equal(pod.metadata.annotations['karp.io/static-manifest'], file)
    assert.equal(pod.metadata.annotations['karp.io/password-file'], w.password)
  })

  it('replaces an earlier karp static pod manifest, and uses a password file the user copied there', async () => {
    const w = workspace()
    mkdirSync(join(w.dir, 'etc', 'karp'), {recursive: true})
    writeFileSync(w.password, 'copied-from-node1\n', {mode: 0o600})
    const base = ['bootstrap', '--vip', VIP, '--password-file', w.password, '--manifest-dir', w.manifests, '--json']
    assert.equal((await karp(base)).exitCode, 0)
    const changed = await karp([...base, '--vhid', '43'])
    assertJsonOutput('bootstrap', changed)
    assert.deepEqual(
      [(changed.json as {manifestChange: string}).manifestChange, (changed.json as {passwordCreated: boolean}).passwordCreated],
      ['replaced', false],
    )
    assert.equal((parse(readFileSync(join(w.manifests, 'karp.yaml'), 'utf8')) as Pod).metadata.annotations['karp.io/vhid'], '43')
    assert.equal(readFileSync(w.password, 'utf8'), 'copied-from-node1\n')
  })
})

describe('karp bootstrap (binary) without --manifest-dir', () => {
  it('prints only the manifest on stdout and what to do on stderr, so > file works', async () => {
    const w = workspace()
    const run = await karp(['bootstrap', '--vip', VIP, '--distribution', 'k3s', '--password-file', w.password])
    assert.equal(run.exitCode, 0, run.stderr)
    const documents = parseAllDocuments(run.stdout)
    assert.equal(documents.length, 1)
    const pod = documents[0]?.toJS() as Pod & {kind: string}
    assert.equal(pod.kind, 'Pod')
    assert.equal(pod.metadata.annotations['karp.io/static-manifest'], '/var/lib/rancher/k3s/agent/pod-manifests/karp.yaml')
    assert.equal(pod.spec.volumes[1]?.hostPath?.path, '/var/lib/rancher/k3s/server/tls/server-ca.crt')
    assert.match(
      run.stderr,
      /^created the CARP password file .*\nSave the manifest printed on stdout as \/var\/lib\/rancher\/k3s\/agent\/pod-manifests\/karp\.yaml/,
    )
    assert.match(run.stderr, /--tls-san 192\.168\.1\.250/)
    assert.deepEqual(tree(w.dir), ['etc', 'etc/karp', 'etc/karp/password'])
  })

  it('prints the Pod as JSON with -o json, and the same Pod in the --json result', async () => {
    const w = workspace()
    const output = await karp(['bootstrap', '--vip', VIP, '--password-file', w.password, '-o', 'json'])
    const json = await karp(['bootstrap', '--vip', VIP, '--password-file', w.password, '--json'])
    assert.equal(output.exitCode, 0, output.stderr)
    assertJsonOutput('bootstrap', json)
    assertMatchesSchema('bootstrap', json.json)
    assert.deepEqual(JSON.parse(output.stdout), (json.json as {manifest: unknown}).manifest)
    assert.equal(json.stderr, '', 'under --json everything is in the result')
    assert.deepEqual(
      [(json.json as {manifestFile: unknown}).manifestFile, (json.json as {passwordCreated: boolean}).passwordCreated],
      [null, false],
    )
  })
})

describe('karp bootstrap (binary) refuses bad input with exit 2 and writes nothing', () => {
  const refusals: Array<[string, (w: ReturnType<typeof workspace>) => string[], RegExp]> = [
    ['a bad --vip', () => ['--vip', '10.0.0.300'], /^error: invalid --vip "10\.0\.0\.300": expected one IPv4 unicast address/m],
    ['no --vip', () => [], /^error: missing required flag --vip: give the virtual IPv4 address/m],
    ['a bad --vhid', () => ['--vip', VIP, '--vhid', '256'], /^error: invalid --vhid "256": expected a whole number from 1 to 255$/m],
    [
      'an unknown --distribution',
      () => ['--vip', VIP, '--distribution', 'k0s'],
      /^error: invalid --distribution "k0s": expected kubeadm, k3s or rke2$/m,
    ],
    [
      'a relative --ca-file',
      () => ['--vip', VIP, '--ca-file', 'pki/ca.crt'],
      /^error: invalid --ca-file "pki\/ca\.crt": expected an absolute path on the node/m,
    ],
    [
      '--password-file -',
      () => ['--vip', VIP, '--password-file', '-'],
      /^error: invalid --password-file "-": the static pod mounts the password from a file/m,
    ],
    [
      'a password file inside the manifest directory',
      (w) => ['--vip', VIP, '--password-file', join(w.manifests, 'password'), '--manifest-dir', w.manifests],
      /^error: invalid --password-file ".*": it is in the static pod directory .*, where the kubelet reads every file as a pod/m,
    ],
    [
      'a --manifest-dir that is a file',
      (w) => {
        writeFileSync(join(w.dir, 'plain'), 'x')
        return ['--vip', VIP, '--manifest-dir', join(w.dir, 'plain')]
      },
      /^error: invalid --manifest-dir ".*\/plain": not a directory$/m,
    ],
  ]
  for (const [what, args, message] of refusals) {
    it(what, async () => {
      const w = workspace()
      const flags = args(w)
      const before = tree(w.dir)
      const withPaths = flags.includes('--password-file') ? flags : [...flags, '--password-file', w.password]
      const run = await karp(['bootstrap', ...withPaths, ...(flags.includes('--manifest-dir') ? [] : ['--manifest-dir', w.manifests])])
      assert.equal(run.exitCode, 2, run.stderr)
      assert.match(run.stderr, message)
      assert.equal(run.stdout, '')
      assert.deepEqual(tree(w.dir), before, 'nothing written')
    })
  }

  it('reports every problem at once', async () => {
    const w = workspace()
    const run = await karp([
      'bootstrap',
      '--vip',
      'x',
      '--vhid',
      '0',
      '--distribution',
      'k0s',
      '--ca-file',
      'ca.crt',
      '--password-file',
      w.password,
    ])
    assert.equal(run.exitCode, 2)
    assert.deepEqual(
      run.stderr.split('\n').map((line) => /^error: invalid --([a-z-]+) /.exec(line)?.[1]),
      ['vip', 'vhid', 'distribution', 'ca-file'],
      run.stderr,
    )
    assert.deepEqual(tree(w.dir), [])
  })

  it('refuses a password file group or others can read, naming its mode and the chmod, and writes no manifest', async () => {
    const w = workspace()
    mkdirSync(join(w.dir, 'etc', 'karp'), {recursive: true})
    writeFileSync(w.password, 'secret\n')
    chmodSync(w.password, 0o640)
    const run = await karp(['bootstrap', '--vip', VIP, '--password-file', w.password, '--manifest-dir', w.manifests, '--json'])
    assertJsonOutput('bootstrap', run)
    assert.equal(run.exitCode, 2)
    assert.equal(
      (run.json as {error: {message: string}}).error.message,
      `invalid --password-file "${w.password}": mode 0640 lets group or others read or change the CARP password; run chmod 600 ${w.password} (and on every node that has a copy)`,
    )
    assert.equal(readFileSync(w.password, 'utf8'), 'secret\n')
    assert.equal(mode(w.password), '640')
    assert.deepEqual(tree(w.dir), ['etc', 'etc/karp', 'etc/karp/password'])
  })

  it('refuses a password file whose first line is no CARP password, never showing it', async () => {
    const w = workspace()
    mkdirSync(join(w.dir, 'etc', 'karp'), {recursive: true})
    writeFileSync(w.password, `${'p'.repeat(20)}\n`, {mode: 0o600})
    const run = await karp(['bootstrap', '--vip', VIP, '--password-file', w.password, '--manifest-dir', w.manifests])
    assert.equal(run.exitCode, 2)
    assert.match(run.stderr, /^error: invalid --password-file ".*": its first line is 20 bytes long; ucarp accepts at most 19$/m)
    assert.doesNotMatch(run.stderr, /p{20}/)
    assert.deepEqual(tree(w.dir), ['etc', 'etc/karp', 'etc/karp/password'])
  })

  it("refuses to overwrite a manifest that is not karp's, and creates no password file", async () => {
    const w = workspace()
    mkdirSync(w.manifests)
    const foreign = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: karp\n  namespace: kube-system\n'
    writeFileSync(join(w.manifests, 'karp.yaml'), foreign)
    const run = await karp(['bootstrap', '--vip', VIP, '--password-file', w.password, '--manifest-dir', w.manifests])
    assert.equal(run.exitCode, 2)
    assert.match(
      run.stderr,
      /^error: invalid --manifest-dir ".*": .*\/karp\.yaml exists and is not a karp static pod manifest \(label karp\.io\/static-pod: "true"\); karp replaces only its own/m,
    )
    assert.equal(readFileSync(join(w.manifests, 'karp.yaml'), 'utf8'), foreign)
    assert.deepEqual(tree(w.dir), ['manifests', 'manifests/karp.yaml'])
  })
})
