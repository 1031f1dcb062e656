// The agent image as `npm run image` builds it: reproducible to the digest, a valid OCI layout with one index
// over amd64 and arm64, every binary able to load inside it, nothing but what the agent needs, the packages
// the lock pins, and the CLI's default --image pinned to exactly this build.
import assert from 'node:assert/strict'
import {execFileSync, spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, utimesSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join, posix} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {gunzipSync} from 'node:zlib'
import {AGENT_IMAGE} from '../../src/lib/config/agent-image.js'
import {buildImage, type ImageSummary, readSummary, repoRoot} from '../../scripts/image/build.js'
import {readDefinition, staticallyLinked, triplet} from '../../scripts/image/definition.js'
import {readLock} from '../../scripts/image/lock.js'
import {readBlob} from '../../scripts/image/oci.js'
import {agentImage, IMAGE_LAYOUT, imageRootfs} from '../../lab/image.js'

const definition = readDefinition(repoRoot)
const lock = readLock(join(repoRoot, 'agent', 'image', 'packages.lock.json'))

function json<T>(layout: string, digest: string): T {
  return JSON.parse(readBlob(layout, digest).toString('utf8')) as T
}

interface Index {
  manifests: {digest: string; mediaType: string; platform?: {architecture: string; os: string; variant?: string}}[]
}
interface Manifest {
  config: {digest: string}
  layers: {digest: string; mediaType: string}[]
}
interface Config {
  architecture: string
  os: string
  config: {Entrypoint: string[]; User: string}
  rootfs: {diff_ids: string[]}
}

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`

/** Follows a symlink chain inside the image root (absolute targets are relative to that root). */
function resolveInRoot(root: string, path: string): string | undefined {
  let current = path
  for (let hops = 0; hops < 16; hops++) {
    const full = join(root, current)
    let st
    try {
      st = lstatSync(full)
    } catch {
      return undefined
    }
    if (!st.isSymbolicLink()) return current
    const target = readlinkSync(full)
    current = target.startsWith('/') ? target : posix.join(posix.dirname(current), target)
  }
  return undefined
}

function walk(root: string): string[] {
  return readdirSync(root, {recursive: true}).map((f) => `/${String(f)}`)
}

describe('agent image build', () => {
  let summary: ImageSummary
  let scratch: string

  before(async () => {
    summary = await agentImage()
    scratch = mkdtempSync(join(tmpdir(), 'karp-image-'))
  })
  after(() => rmSync(scratch, {recursive: true, force: true}))

  test('two builds of the same inputs give the same digests, whatever the mtimes, umask and time zone', async () => {
    const again = await buildImage({out: join(scratch, 'a'), force: true, log: () => {}})
    assert.equal(again.indexDigest, summary.indexDigest)
    // The second one in another process, with other file mtimes, a tight umask and another time zone.
    const future = new Date(Date.now() + 86_400_000)
    for (const script of definition.agent.scripts) utimesSync(join(repoRoot, 'agent', script), future, future)
    const out = join(scratch, 'b')
    const run = spawnSync('bash', ['-c', `umask 077 && exec bash scripts/image.sh --force --out ${JSON.stringify(out)}`], {
      cwd: repoRoot,
      env: {...process.env, TZ: 'Pacific/Kiritimati'},
      encoding: 'utf8',
      timeout: 300_000,
    })
    assert.equal(run.status, 0, run.stderr)
    const other = readSummary(out)
    assert.ok(other)
    assert.equal(other.indexDigest, summary.indexDigest)
    for (const arch of definition.architectures) {
      assert.equal(other.platforms[arch]?.layerDigest, summary.platforms[arch]?.layerDigest, arch)
    }
  })

  test('the layout holds one index over linux/amd64 and linux/arm64/v8, every blob under its own digest', () => {
    const top = JSON.parse(readFileSync(join(IMAGE_LAYOUT, 'index.json'), 'utf8')) as Index & {
      manifests: {annotations?: Record<string, string>}[]
    }
    assert.deepEqual(JSON.parse(readFileSync(join(IMAGE_LAYOUT, 'oci-layout'), 'utf8')), {imageLayoutVersion: '1.0.0'})
    assert.equal(top.manifests.length, 1)
    assert.equal(top.manifests[0]?.mediaType, 'application/vnd.oci.image.index.v1+json')
    assert.equal(top.manifests[0]?.digest, summary.indexDigest)
    assert.equal(top.manifests[0]?.annotations?.['org.opencontainers.image.ref.name'], summary.tag)
    for (const blob of readdirSync(join(IMAGE_LAYOUT, 'blobs', 'sha256'))) {
      assert.equal(sha256(readBlob(IMAGE_LAYOUT, blob)), `sha256:${blob}`, `blob ${blob}`)
    }
    const index = json<Index>(IMAGE_LAYOUT, summary.indexDigest)
    assert.deepEqual(
      index.manifests.map((m) => m.platform),
      [
        {architecture: 'amd64', os: 'linux'},
        {architecture: 'arm64', os: 'linux', variant: 'v8'},
      ],
    )
    for (const entry of index.manifests) {
      const manifest = json<Manifest>(IMAGE_LAYOUT, entry.digest)
      const config = json<Config>(IMAGE_LAYOUT, manifest.config.digest)
      assert.equal(config.architecture, entry.platform?.architecture)
      assert.deepEqual(config.config.Entrypoint, ['/usr/local/lib/karp/entrypoint.sh'])
      assert.equal(manifest.layers.length, 1)
      const layer = readBlob(IMAGE_LAYOUT, manifest.layers[0]?.digest as string)
      assert.deepEqual(config.rootfs.diff_ids, [sha256(gunzipSync(layer))])
    }
  })

  for (const arch of definition.architectures) {
    test(`${arch}: every ELF file is built for ${arch} and finds its loader and libraries inside the image`, () => {
      const root = imageRootfs(arch)
      const machine = arch === 'amd64' ? 'Advanced Micro Devices X86-64' : 'AArch64'
      let elves = 0
      for (const path of walk(root)) {
        const full = join(root, path)
        if (lstatSync(full).isSymbolicLink() || !statSync(full).isFile()) continue
        if (readFileSync(full).subarray(0, 4).toString('latin1') !== '\x7fELF') continue
        elves++
        const out = execFileSync('readelf', ['-h', '-d', '-l', '-W', full], {encoding: 'utf8'})
        assert.match(out, new RegExp(`Machine:\\s+${machine}`), path)
        const interpreter = /\[Requesting program interpreter: ([^\]]+)\]/.exec(out)?.[1]
        if (interpreter) assert.ok(resolveInRoot(root, interpreter), `${path}: loader ${interpreter} missing`)
        for (const [, lib] of out.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)) {
          const dirs = [`/lib/${triplet(arch)}`, `/usr/lib/${triplet(arch)}`]
          assert.ok(
            dirs.some((d) => resolveInRoot(root, `${d}/${lib}`)),
            `${path} needs ${lib}, not in the image`,
          )
        }
      }
      assert.ok(elves >= 4, `only ${elves} ELF files`)
    })

    test(`${arch}: the agent and its tools, and nothing of a package manager or curl`, () => {
      const root = imageRootfs(arch)
      const files = new Set(walk(root))
      for (const needed of [
        '/usr/sbin/ucarp',
        '/bin/busybox',
        '/usr/local/bin/karp-tls',
        '/etc/os-release',
        ...staticallyLinked(definition).map((p) => `/usr/share/doc/${p}/copyright`),
        '/usr/local/lib/karp/karp-pcap-immediate.so',
        ...definition.agent.scripts.map((s) => `/usr/local/lib/karp/${s}`),
      ]) {
        assert.ok(files.has(needed), `${needed} missing`)
      }
      assert.equal(readlinkSync(join(root, 'bin', 'sh')), 'busybox')
      for (const script of definition.agent.scripts) {
        assert.equal(statSync(join(root, 'usr/local/lib/karp', script)).mode & 0o777, 0o755, script)
      }
      const programs = [...files].filter((f) => !statSync(join(root, f), {throwIfNoEntry: false})?.isDirectory())
      for (const forbidden of ['apt', 'apt-get', 'dpkg', 'curl', 'wget', 'openssl', 'bash', 'perl']) {
        const hits = programs.filter((f) => posix.basename(f) === forbidden)
        assert.deepEqual(hits, [], `${forbidden} in the image`)
      }
      assert.deepEqual(
        [...files].filter((f) => f.startsWith('/usr/share/man') || f.startsWith('/usr/share/locale')),
        [],
      )
    })

    test(`${arch}: each locked package has its copyright and a dpkg status entry with the locked version`, () => {
      const root = imageRootfs(arch)
      for (const name of definition.packages) {
        const locked = lock.packages[arch]?.find((p) => p.name === name)
        assert.ok(locked, `${name} not locked for ${arch}`)
        assert.ok(existsSync(join(root, 'usr/share/doc', name, 'copyright')), `${name} copyright`)
        const status = readFileSync(join(root, 'var/lib/dpkg/status.d', name), 'utf8')
        assert.match(status, new RegExp(`^Version: ${locked.version.replace(/[.+]/g, '\\$&')}$`, 'm'), name)
        assert.match(status, new RegExp(`^Architecture: (${arch}|all)$`, 'm'), name)
      }
    })
  }

  test('the amd64 image runs here: its own busybox and ucarp start inside its root', () => {
    const out = execFileSync('chroot', [imageRootfs('amd64'), '/bin/sh', '-c', 'ucarp --help 2>&1; echo shell=$0'], {
      encoding: 'utf8',
      timeout: 10_000,
    })
    assert.match(out, /^ucarp 1\.5\.2/m)
    assert.match(out, /shell=\/bin\/sh/)
  })

  test("the CLI's default --image is this build, pinned by digest", () => {
    assert.equal(AGENT_IMAGE, summary.reference, 'run `npm run image -- --pin` and commit src/lib/config/agent-image.ts')
    assert.match(summary.reference, /^ghcr\.io\/karp-vip\/karp-agent:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$/)
  })
})
