// The release path, dry-run: the image `npm run image` built is published with scripts/image-publish.sh to a
// registry this test starts on 127.0.0.1 (Debian's docker-registry, password-protected like ghcr.io, plain
// http), then pulled back by digest and by tag with skopeo: the index, both manifests and every blob must
// come back with the digests of the local layout. The release's pin check passes for this build and fails,
// naming both digests, for another one.
import assert from 'node:assert/strict'
import {type ChildProcess, spawn, spawnSync, type SpawnSyncReturns} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import http from 'node:http'
import {createServer, type AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {execa} from 'execa'
import {type ImageSummary, repoRoot} from '../../scripts/image/build.js'
import {readBlob, writeLayout} from '../../scripts/image/oci.js'
import type {SpdxDocument} from '../../scripts/image/sbom.js'
import {agentImage, IMAGE_DIR, IMAGE_LAYOUT} from '../../lab/image.js'
import {missingTools} from '../../lab/process.js'

const TOOLS = ['skopeo', 'docker-registry', 'htpasswd']
const REPOSITORY = 'karp-agent'
const USER = 'karp-release'

function registrySkipReason(): string | false {
  const missing = missingTools(TOOLS)
  if (missing.length === 0) return false
  const reason = `the registry dry-run needs ${missing.join(', ')} (scripts/setup.sh installs them)`
  if (process.env.CI === 'true') throw new Error(`CI=true and ${reason}`)
  return reason
}

function run(command: string, args: string[], input?: string): SpawnSyncReturns<string> {
  return spawnSync(command, args, {cwd: repoRoot, encoding: 'utf8', input, timeout: 180_000})
}

function ok(result: SpawnSyncReturns<string>, what: string): string {
  assert.equal(result.status, 0, `${what} failed:\n${result.stderr}`)
  return result.stdout
}

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

interface Registry {
  host: string
  process: ChildProcess
  log: () => string
}

/** A registry of our own: its config, storage and password file in `dir`, on a free loopback port. */
async function startRegistry(dir: string, password: string): Promise<Registry> {
  const port = await freePort()
  const hashed = ok(run('htpasswd', ['-B', '-i', '-n', USER], password), 'htpasswd')
  writeFileSync(join(dir, 'htpasswd'), hashed)
  const config = join(dir, 'config.yml')
  writeFileSync(
    config,
    [
      'version: 0.1',
      'log: {level: warn, accesslog: {disabled: true}}',
      `storage: {filesystem: {rootdirectory: ${JSON.stringify(join(dir, 'storage'))}}}`,
      `http: {addr: "127.0.0.1:${port}", secret: ${randomBytes(16).toString('hex')}}`,
      `auth: {htpasswd: {realm: karp-test, path: ${JSON.stringify(join(dir, 'htpasswd'))}}}`,
      '',
    ].join('\n'),
  )
  let output = ''
  const child = spawn('docker-registry', ['serve', config], {stdio: ['ignore', 'pipe', 'pipe']})
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise((resolve) => child.once('exit', resolve))
  const deadline = Date.now() + 20_000
  for (;;) {
    // 401 is the registry answering: /v2/ needs the password like everything else.
    const status = await fetch(`http://127.0.0.1:${port}/v2/`).then(
      (r) => r.status,
      () => 0,
    )
    if (status === 401) break
    const gone = await Promise.race([exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 100))])
    if (gone || Date.now() > deadline) throw new Error(`docker-registry did not come up on 127.0.0.1:${port}:\n${output}`)
  }
  return {host: `127.0.0.1:${port}`, process: child, log: () => output}
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(timer)
}

/**
 * A registry that moved the tag: passes everything through, except that reading `repository:tag` returns the
 * manifest `served` instead (what a registry that lost or rewrote the push would answer).
 */
async function tagMovingProxy(
  upstream: string,
  repository: string,
  tag: string,
  served: string,
): Promise<{host: string; close: () => Promise<void>}> {
  const [upstreamHost, upstreamPort] = upstream.split(':')
  const server = http.createServer((req, res) => {
    let path = req.url ?? '/'
    if ((req.method === 'GET' || req.method === 'HEAD') && path === `/v2/${repository}/manifests/${tag}`)
      path = `/v2/${repository}/manifests/${served}`
    const forward = http.request(
      {host: upstreamHost, port: Number(upstreamPort), method: req.method, path, headers: req.headers},
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      },
    )
    forward.on('error', () => res.destroy())
    req.pipe(forward)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as AddressInfo
  return {host: `127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve()))}
}

interface Index {
  manifests: {digest: string; annotations?: Record<string, string>}[]
}
interface Manifest {
  config: {digest: string}
  layers: {digest: string}[]
}

function layoutEntry(layout: string): Index['manifests'][number] {
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as Index
  assert.equal(index.manifests.length, 1, `${layout}/index.json has one entry`)
  return index.manifests[0] as Index['manifests'][number]
}

/** Every blob of a layout, checked to be stored under its own digest. */
function blobs(layout: string): string[] {
  const names = readdirSync(join(layout, 'blobs', 'sha256')).sort()
  for (const name of names) assert.equal(sha256(readBlob(layout, name)), `sha256:${name}`, `${layout}: blob ${name}`)
  return names.map((n) => `sha256:${n}`)
}

/** The digests a multi-arch image is made of: index, manifests, configs, layers. */
function imageDigests(layout: string, indexDigest: string): {manifests: string[]; blobs: string[]} {
  const index = JSON.parse(readBlob(layout, indexDigest).toString('utf8')) as Index
  const manifests = index.manifests.map((m) => m.digest)
  const parts = manifests.flatMap((digest) => {
    const manifest = JSON.parse(readBlob(layout, digest).toString('utf8')) as Manifest
    return [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]
  })
  return {manifests, blobs: [indexDigest, ...manifests, ...parts].sort()}
}

const skip = registrySkipReason()

describe('publishing the agent image to a registry', {skip}, () => {
  let summary: ImageSummary
  let scratch: string
  let registry: Registry
  let authfile: string
  let password: string
  let published: SpawnSyncReturns<string>

  const publish = (args: string[]) => run('bash', ['scripts/image-publish.sh', '--tls-verify=false', ...args])
  const copy = (source: string, destination: string) =>
    run('skopeo', ['copy', '--all', '--src-tls-verify=false', '--src-authfile', authfile, source, destination])

  before(async () => {
    summary = await agentImage()
    scratch = mkdtempSync(join(tmpdir(), 'karp-registry-'))
    password = randomBytes(18).toString('base64url')
    registry = await startRegistry(scratch, password)
    authfile = join(scratch, 'auth.json')
    // What the release does with its token: log in from stdin into an auth file, publish with that file.
    ok(
      run(
        'skopeo',
        ['login', '--tls-verify=false', '--authfile', authfile, '--username', USER, '--password-stdin', registry.host],
        password,
      ),
      'skopeo login',
    )
    published = publish(['--authfile', authfile, IMAGE_LAYOUT, summary.tag, `${registry.host}/${REPOSITORY}`])
  })

  after(async () => {
    if (registry) await stop(registry.process)
    if (scratch) rmSync(scratch, {recursive: true, force: true})
  })

  test('publish pushes the index and prints its digest, the one the layout and the build summary hold', () => {
    assert.equal(published.status, 0, `${published.stderr}\n${registry.log()}`)
    assert.equal(published.stdout, `${summary.indexDigest}\n`)
    assert.equal(layoutEntry(IMAGE_LAYOUT).digest, summary.indexDigest)
    assert.ok(!`${published.stdout}${published.stderr}`.includes(password), 'the password appears in the output')
  })

  test('pulled back by digest: the same index, both manifests and every blob', () => {
    const pulled = join(scratch, 'by-digest')
    ok(copy(`docker://${registry.host}/${REPOSITORY}@${summary.indexDigest}`, `oci:${pulled}`), 'skopeo copy by digest')
    assert.equal(layoutEntry(pulled).digest, summary.indexDigest)
    assert.deepEqual(readBlob(pulled, summary.indexDigest), readBlob(IMAGE_LAYOUT, summary.indexDigest))
    const local = imageDigests(IMAGE_LAYOUT, summary.indexDigest)
    assert.deepEqual(imageDigests(pulled, summary.indexDigest), local)
    assert.deepEqual(
      local.manifests.sort(),
      Object.values(summary.platforms)
        .map((p) => p.manifestDigest)
        .sort(),
    )
    assert.equal(local.manifests.length, 2)
    assert.deepEqual(blobs(pulled), blobs(IMAGE_LAYOUT))
  })

  test('pulled back by tag: the same index digest', () => {
    const pulled = join(scratch, 'by-tag')
    ok(copy(`docker://${registry.host}/${REPOSITORY}:${summary.tag}`, `oci:${pulled}:${summary.tag}`), 'skopeo copy by tag')
    assert.equal(layoutEntry(pulled).digest, summary.indexDigest)
    const raw = ok(
      run('skopeo', [
        'inspect',
        '--raw',
        '--tls-verify=false',
        '--authfile',
        authfile,
        `docker://${registry.host}/${REPOSITORY}:${summary.tag}`,
      ]),
      'skopeo inspect',
    )
    assert.equal(sha256(Buffer.from(raw)), summary.indexDigest)
  })

  test('the registry really wants the password: publishing without the auth file fails', () => {
    const anonymous = run('bash', [
      'scripts/image-publish.sh',
      '--tls-verify=false',
      IMAGE_LAYOUT,
      summary.tag,
      `${registry.host}/${REPOSITORY}-anonymous`,
    ])
    assert.notEqual(anonymous.status, 0)
    assert.match(anonymous.stderr, /authentication required|unauthorized/i)
  })

  test('publish fails, naming both digests, when the registry then serves another manifest under the tag', async () => {
    const amd64 = summary.platforms.amd64?.manifestDigest as string
    const proxy = await tagMovingProxy(registry.host, `${REPOSITORY}-moved`, summary.tag, amd64)
    try {
      // Not spawnSync: the proxy lives in this process and must keep answering while skopeo runs.
      const login = ['login', '--tls-verify=false', '--authfile', authfile, '--username', USER, '--password-stdin', proxy.host]
      const loggedIn = await execa('skopeo', login, {input: password, reject: false, timeout: 60_000})
      assert.equal(loggedIn.exitCode, 0, loggedIn.stderr)
      const args = [
        'scripts/image-publish.sh',
        '--tls-verify=false',
        '--authfile',
        authfile,
        IMAGE_LAYOUT,
        summary.tag,
        `${proxy.host}/${REPOSITORY}-moved`,
      ]
      const moved = await execa('bash', args, {cwd: repoRoot, reject: false, timeout: 180_000})
      assert.equal(moved.exitCode, 1, moved.stderr)
      assert.equal(moved.stdout, '')
      assert.ok(
        moved.stderr.includes(`${REPOSITORY}-moved:${summary.tag} is ${amd64}, the layout's index is ${summary.indexDigest}`),
        moved.stderr,
      )
    } finally {
      await proxy.close()
    }
  })

  test('publish takes no credentials on its command line', () => {
    for (const option of [`--dest-creds=${USER}:${password}`, '--creds', `--password=${password}`, '--registry-token=x']) {
      const refused = publish([option, IMAGE_LAYOUT, summary.tag, `${registry.host}/${REPOSITORY}`])
      assert.equal(refused.status, 2, option)
      assert.match(refused.stderr, /only from an auth file/)
      assert.ok(!refused.stderr.includes(password))
    }
  })

  test('the SBOMs the release attaches describe the manifests the registry now serves', () => {
    for (const [arch, platform] of Object.entries(summary.platforms)) {
      const doc = JSON.parse(readFileSync(join(IMAGE_DIR, 'sbom', `karp-agent-${arch}.spdx.json`), 'utf8')) as SpdxDocument
      const image = doc.packages.find((p) => p.SPDXID === 'SPDXRef-Image')
      assert.equal(`sha256:${image?.checksums?.[0]?.checksumValue}`, platform.manifestDigest, arch)
      const raw = ok(
        run('skopeo', [
          'inspect',
          '--raw',
          '--tls-verify=false',
          '--authfile',
          authfile,
          `docker://${registry.host}/${REPOSITORY}@${platform.manifestDigest}`,
        ]),
        `skopeo inspect ${arch}`,
      )
      assert.equal(sha256(Buffer.from(raw)), platform.manifestDigest, arch)
    }
  })

  test("the release's pin check passes for this build and fails, naming both digests, for another", async () => {
    const checkPin = (args: string[]) => run('node', ['--import', 'tsx', 'scripts/image-check-pin.ts', ...args])
    const passed = checkPin(['--tag', summary.tag])
    assert.equal(passed.status, 0, passed.stderr)
    assert.match(passed.stdout, new RegExp(`ok, the CLI's default --image is .*@${summary.indexDigest}`))

    // Another image under the same tag: a one-file root filesystem written by the same layout writer.
    const rootfs = join(scratch, 'other-rootfs')
    mkdirSync(join(rootfs, 'etc'), {recursive: true})
    writeFileSync(join(rootfs, 'etc', 'other'), 'not the agent\n')
    const other = await writeLayout(
      join(scratch, 'other-oci'),
      [{platform: {architecture: 'amd64', os: 'linux'}, rootfs, config: {}}],
      summary.tag,
      summary.sourceDateEpoch,
    )
    const failed = checkPin(['--tag', summary.tag, '--layout', join(scratch, 'other-oci')])
    assert.equal(failed.status, 1)
    assert.ok(failed.stderr.includes(summary.indexDigest) && failed.stderr.includes(other.index.digest), failed.stderr)

    const wrongTag = checkPin(['--tag', 'v999.0.0'])
    assert.equal(wrongTag.status, 1)
    assert.match(wrongTag.stderr, /release tag is v999\.0\.0/)
  })
})
