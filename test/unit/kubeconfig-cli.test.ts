// `karp kubeconfig rewrite` through the built binary (run `npm run build` first). Without a network
// namespace the VIP must be a real, non-loopback address that nothing here may dial, so those runs pass
// --force --no-verify; the certificate check and verify run for real in a network namespace of the test's
// own, where 10.254.254.10 is on its loopback interface and a test API server listens on it.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {chmodSync, readFileSync, writeFileSync} from 'node:fs'
import {basename, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {before, describe, it} from 'node:test'

import {execa} from 'execa'

import type {KubeconfigRewriteResult} from '../../src/commands/kubeconfig/rewrite.js'
import {changedLines, fixtureText, loopbackKubeconfig, REAL_WORLD, strayFiles, tempCopies, tempDir} from '../fixtures/kubeconfig/harness.js'
import {makeCa, makeCertificate, type TestCertificate, testKey} from '../helpers/certs.js'
import {assertMatchesSchema} from '../helpers/json-schema.js'
import {karp} from '../helpers/karp.js'

const VIP = '192.168.1.250'
const OFFLINE = ['--vip', VIP, '--force', '--no-verify']
const RUN = fileURLToPath(new URL('../../bin/run.js', import.meta.url))

describe('karp kubeconfig rewrite (binary)', () => {
  for (const name of REAL_WORLD) {
    it(`${name}: exit 0, --json result, exactly one line changed`, async () => {
      const t = tempCopies(name)
      const run = await karp(['kubeconfig', 'rewrite', '--kubeconfig', t.path(name), ...OFFLINE, '--json'])
      assert.equal(run.exitCode, 0, run.stderr)
      assertMatchesSchema('kubeconfig rewrite', run.json)
      const result = run.json as KubeconfigRewriteResult
      assert.equal(result.file, t.path(name))
      assert.equal(result.newServer, `https://${VIP}:${name === 'cloud-exec.yaml' ? 6443 : 6443}`)
      assert.equal(result.changed, true)
      assert.equal(result.verified, false)
      assert.match(result.backup ?? '', /\.karp-backup-\d{8}T\d{6}Z$/)
      const {removed, added} = changedLines(fixtureText(name), readFileSync(t.path(name), 'utf8'))
      assert.equal(removed.length, 1)
      assert.equal(added.length, 1)
      assert.equal(added[0], removed[0]?.replace(result.oldServer, result.newServer))
    })
  }

  it('--dry-run prints the unified diff on stdout and writes nothing', async () => {
    const t = tempCopies('hand-written.yaml')
    const run = await karp([
      'kubeconfig',
      'rewrite',
      '--kubeconfig',
      t.path('hand-written.yaml'),
      '--context',
      'edge',
      ...OFFLINE,
      '--dry-run',
    ])
    assert.equal(run.exitCode, 0, run.stderr)
    assert.match(run.stdout, /^- {6}server: "https:\/\/\[fd00:10::11\]:6443"$/m)
    assert.match(run.stdout, /^\+ {6}server: "https:\/\/192\.168\.1\.250:6443"$/m)
    assert.match(run.stderr, /dry run: would change the server of cluster edge .*; nothing was written/)
    assert.equal(readFileSync(t.path('hand-written.yaml'), 'utf8'), fixtureText('hand-written.yaml'))
    assert.deepEqual(strayFiles(t.dir, ['hand-written.yaml']), [])
  })

  it('tells people how to undo, and says nothing to do the second time (exit 0)', async () => {
    const t = tempCopies('k3s.yaml')
    const first = await karp(['kubeconfig', 'rewrite', '--kubeconfig', t.path('k3s.yaml'), ...OFFLINE])
    assert.equal(first.exitCode, 0, first.stderr)
    assert.match(
      first.stderr,
      /changed the server of cluster default \(context default\) from https:\/\/127\.0\.0\.1:6443 to https:\/\/192\.168\.1\.250:6443/,
    )
    assert.match(first.stderr, /^to undo: cp \S+k3s\.yaml\.karp-backup-\d{8}T\d{6}Z \S+k3s\.yaml$/m)
    const second = await karp(['kubeconfig', 'rewrite', '--kubeconfig', t.path('k3s.yaml'), ...OFFLINE])
    assert.equal(second.exitCode, 0)
    assert.match(second.stderr, /already points at https:\/\/192\.168\.1\.250:6443/)
  })

  it('--new-context through KUBECONFIG with several files', async () => {
    const t = tempCopies('k3s.yaml', 'kubeadm-admin.conf')
    const KUBECONFIG = [t.path('kubeadm-admin.conf'), t.path('k3s.yaml')].join(':')
    const run = await karp(['kubeconfig', 'rewrite', '--context', 'default', '--new-context', 'k3s-vip', ...OFFLINE, '--json'], {
      env: {KUBECONFIG},
    })
    assert.equal(run.exitCode, 0, run.stderr)
    assertMatchesSchema('kubeconfig rewrite', run.json)
    const result = run.json as KubeconfigRewriteResult
    assert.deepEqual(
      [result.file, result.context, result.basedOn],
      [t.path('k3s.yaml'), 'k3s-vip', {context: 'default', cluster: 'default'}],
    )
    assert.equal(readFileSync(t.path('kubeadm-admin.conf'), 'utf8'), fixtureText('kubeadm-admin.conf'))
    assert.deepEqual(changedLines(fixtureText('k3s.yaml'), readFileSync(t.path('k3s.yaml'), 'utf8')).removed, [])
  })

  const failures: Array<[string, (dir: string) => string[], RegExp]> = [
    [
      'an unknown context',
      (d) => ['--kubeconfig', join(d, 'hand-written.yaml'), '--context', 'stage', ...OFFLINE],
      /^error: invalid --context "stage": no such context in \S+; contexts: "lab", "lab-readonly", "edge", "prod"$/m,
    ],
    [
      'a loopback --vip',
      (d) => ['--kubeconfig', join(d, 'hand-written.yaml'), '--vip', '127.0.0.1'],
      /^error: invalid --vip "127\.0\.0\.1": loopback addresses cannot be a VIP/m,
    ],
    [
      'a bad --port',
      (d) => ['--kubeconfig', join(d, 'hand-written.yaml'), '--vip', VIP, '--port', '70000'],
      /^error: invalid --port "70000": expected a whole number from 1 to 65535$/m,
    ],
    [
      'a malformed file',
      (d) => (writeFileSync(join(d, 'bad'), 'clusters:\n  - name: a\n - name: b\n'), ['--kubeconfig', join(d, 'bad'), ...OFFLINE]),
      /^error: kubeconfig \S+bad is not valid YAML: /m,
    ],
    [
      'a read-only file',
      (d) => (chmodSync(join(d, 'hand-written.yaml'), 0o444), ['--kubeconfig', join(d, 'hand-written.yaml'), ...OFFLINE]),
      /^error: kubeconfig \S+ is read-only \(mode 0444\); nothing was changed$/m,
    ],
  ]
  for (const [what, args, message] of failures) {
    it(`exits 2 with one clear line for ${what}, changing nothing`, async () => {
      const t = tempCopies('hand-written.yaml')
      const run = await karp(['kubeconfig', 'rewrite', ...args(t.dir)])
      assert.equal(run.exitCode, 2, run.stderr)
      assert.match(run.stderr, message)
      assert.equal(readFileSync(t.path('hand-written.yaml'), 'utf8'), fixtureText('hand-written.yaml'))
    })
  }

  it('puts the error and its exit code in the JSON result under --json', async () => {
    const t = tempCopies('hand-written.yaml')
    const run = await karp([
      'kubeconfig',
      'rewrite',
      '--kubeconfig',
      t.path('hand-written.yaml'),
      '--context',
      'nope',
      ...OFFLINE,
      '--json',
    ])
    assert.equal(run.exitCode, 2)
    assertMatchesSchema('error', run.json)
    const {error} = run.json as {error: {message: string; exitCode: number}}
    assert.equal(error.exitCode, 2)
    assert.match(error.message, /^invalid --context "nope"/)
  })
})

// Real kernel mechanisms, so they need root (CI and this machine run tests as root) and unshare.
function unshareWorks(flag: string): string | false {
  try {
    execFileSync('unshare', [flag, 'true'], {stdio: 'ignore'})
    return false
  } catch (error) {
    return `unshare ${flag} is not permitted here: ${(error as Error).message.split('\n')[0]}`
  }
}

describe('karp kubeconfig rewrite on a read-only mount (binary, unshare -m)', {skip: unshareWorks('-m')}, () => {
  it('refuses with a clear error and changes nothing', async () => {
    const t = tempCopies('k3s.yaml')
    const script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && exec "$@"'
    const run = await execa(
      'unshare',
      [
        '-m',
        'sh',
        '-c',
        script,
        'sh',
        t.dir,
        process.execPath,
        RUN,
        'kubeconfig',
        'rewrite',
        '--kubeconfig',
        t.path('k3s.yaml'),
        ...OFFLINE,
      ],
      {
        reject: false,
        stdin: 'ignore',
        env: {NO_COLOR: '1'},
      },
    )
    assert.equal(run.exitCode, 2, run.stderr)
    assert.match(run.stderr, /^error: kubeconfig \S+k3s\.yaml is not writable \(EROFS\); nothing was changed$/m)
    assert.equal(readFileSync(t.path('k3s.yaml'), 'utf8'), fixtureText('k3s.yaml'))
    assert.deepEqual(strayFiles(t.dir, ['k3s.yaml']), [])
  })
})

describe('karp kubeconfig rewrite against a VIP in a network namespace (binary, unshare -n)', {skip: unshareWorks('-n')}, () => {
  // A private address (checkVip refuses TEST-NET ranges as reserved); it only exists inside the namespace.
  const NETNS_VIP = '10.254.254.10'
  let ca: TestCertificate
  let dir: string

  before(() => {
    ca = makeCa('karp-netns-ca')
    dir = tempDir()
  })

  // A fake API server on VIP:6443 inside a fresh network namespace (only lo, with the VIP on it), then the
  // binary in the same namespace. The old server, 127.0.0.1:1, refuses at once.
  async function inNetns(cert: TestCertificate, status: number, args: string[]) {
    writeFileSync(join(dir, 'tls.crt'), cert.certPem + ca.certPem)
    writeFileSync(join(dir, 'tls.key'), cert.key.privatePem)
    writeFileSync(
      join(dir, 'server.mjs'),
      `import {createServer} from 'node:https'
import {readFileSync, writeFileSync} from 'node:fs'
const [dir, host, status] = process.argv.slice(2)
createServer({cert: readFileSync(dir + '/tls.crt'), key: readFileSync(dir + '/tls.key')}, (req, res) => {
  res.writeHead(Number(status), {'content-type': 'application/json'})
  res.end(JSON.stringify(Number(status) === 200 ? {gitVersion: 'v1.33.1'} : {kind: 'Status', message: 'unavailable'}))
}).listen(6443, host, () => writeFileSync(dir + '/ready', ''))
`,
    )
    const file = join(dir, `config-${Math.random().toString(36).slice(2)}`)
    writeFileSync(file, loopbackKubeconfig({server: 'https://127.0.0.1:1', caPem: ca.certPem}))
    const script = [
      'ip link set lo up && ip addr add "$2"/32 dev lo || exit 99',
      'rm -f "$1/ready"; "$3" "$1/server.mjs" "$1" "$2" "$4" & server=$!',
      'for i in $(seq 100); do [ -e "$1/ready" ] && break; sleep 0.05; done',
      'shift 4; "$@"; code=$?; kill $server; exit $code',
    ].join('\n')
    const run = await execa(
      'unshare',
      [
        '-n',
        'sh',
        '-c',
        script,
        'sh',
        dir,
        NETNS_VIP,
        process.execPath,
        String(status),
        process.execPath,
        RUN,
        'kubeconfig',
        'rewrite',
        '--kubeconfig',
        file,
        ...args,
      ],
      {
        reject: false,
        stdin: 'ignore',
        env: {NO_COLOR: '1'},
        timeout: 60_000,
      },
    )
    return {run, file}
  }

  it('refuses (exit 4) when the VIP is missing from the certificate, with advice, and changes nothing', async () => {
    const cert = makeCertificate({commonName: 'kube-apiserver', key: testKey('netns', 'ec'), issuer: ca, ipSans: ['10.0.0.11']})
    const {run, file} = await inNetns(cert, 200, ['--vip', NETNS_VIP, '--port', '6443', '--timeout', '5s'])
    assert.equal(run.exitCode, 4, run.stderr)
    assert.match(
      run.stderr,
      /^error: the certificate served at 10\.254\.254\.10:6443 would be refused by kubectl for https:\/\/10\.254\.254\.10:6443: VIP 10\.254\.254\.10 is not an IP SAN \(IP SANs: 10\.0\.0\.11\); nothing was changed$/m,
    )
    assert.match(
      run.stderr,
      /^hint: add 10\.254\.254\.10 as an IP Subject Alternative Name to the serving certificate of every API server; then run karp check-cert/m,
    )
    assert.match(readFileSync(file, 'utf8'), /server: https:\/\/127\.0\.0\.1:1$/m)
  })

  it('checks, writes and verifies through the VIP (exit 0, verified)', async () => {
    const cert = makeCertificate({commonName: 'kube-apiserver', key: testKey('netns', 'ec'), issuer: ca, ipSans: ['10.0.0.11', NETNS_VIP]})
    const {run, file} = await inNetns(cert, 200, ['--vip', NETNS_VIP, '--port', '6443', '--json'])
    assert.equal(run.exitCode, 0, run.stderr)
    const result = JSON.parse(run.stdout) as KubeconfigRewriteResult
    assertMatchesSchema('kubeconfig rewrite', result)
    assert.deepEqual([result.verified, result.changed, result.newServer], [true, true, 'https://10.254.254.10:6443'])
    assert.match(readFileSync(file, 'utf8'), /server: https:\/\/10\.254\.254\.10:6443$/m)
  })

  it('restores the file and exits 3 when the API server does not answer through the VIP', async () => {
    const cert = makeCertificate({commonName: 'kube-apiserver', key: testKey('netns', 'ec'), issuer: ca, ipSans: [NETNS_VIP]})
    const {run, file} = await inNetns(cert, 503, ['--vip', NETNS_VIP, '--port', '6443'])
    assert.equal(run.exitCode, 3, run.stderr)
    assert.match(
      run.stderr,
      /^error: the API server did not answer through https:\/\/10\.254\.254\.10:6443 \(GET https:\/\/10\.254\.254\.10:6443\/version answered HTTP 503: unavailable\); \S+ was restored to its original content$/m,
    )
    assert.match(readFileSync(file, 'utf8'), /server: https:\/\/127\.0\.0\.1:1$/m)
    assert.deepEqual(
      strayFiles(dir, []).filter((f) => f.startsWith(basename(file)) && f !== basename(file)),
      [],
      'no backup or lock file left',
    )
  })
})
