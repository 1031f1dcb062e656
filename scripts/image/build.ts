// `npm run image`: builds the agent image for every architecture of agent/image/image.json into an OCI
// layout under build/image/ (git-ignored), from the .debs pinned in agent/image/packages.lock.json.
// Skips the work when nothing that goes into the image changed since the last build.
//   --update-lock   re-resolve the lock from the signed Debian indexes first
//   --force         build even when the cache says the image is current
//   --out DIR       another output directory (tests build twice to compare digests)
//   --pin           make the built image the CLI's default --image (src/lib/config/agent-image.ts)
import {existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {dirname, join, relative, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import {execa} from 'execa'
import {fetchDeb, sha256} from './debian.js'
import {
  DEFINITION_PATH,
  type ImageDefinition,
  imageTag,
  karpVersion,
  LOCK_PATH,
  platform,
  readDefinition,
  repoRoot,
  staticallyLinked,
} from './definition.js'
import {type Lock, lockedPackages, readLock, resolveLock, writeLock} from './lock.js'
import {type PlatformImage, writeLayout} from './oci.js'
import {assembleRootfs, selectFiles, unpackDeb} from './rootfs.js'
import {buildSbom, karpOwnedPaths, sbomFileName, sbomJson} from './sbom.js'

export {repoRoot}
export const DEFAULT_OUT = join(repoRoot, 'build', 'image')

export interface PlatformSummary {
  manifestDigest: string
  configDigest: string
  layerDigest: string
  layerSize: number
  diffId: string
  files: {path: string; size: number; type: 'file' | 'symlink' | 'dir'}[]
}

export interface ImageSummary {
  inputs: string
  name: string
  tag: string
  reference: string
  indexDigest: string
  sourceDateEpoch: number
  platforms: Record<string, PlatformSummary>
}

function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir, {recursive: true, withFileTypes: false})
    .map(String)
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).isFile())
    .sort()
}

async function toolVersions(): Promise<string> {
  const tools = [
    ['tar', '--version'],
    ['gzip', '--version'],
    ['gcc', '--version'],
    ['aarch64-linux-gnu-gcc', '--version'],
  ]
  const lines = await Promise.all(
    tools.map(async ([tool, flag]) => {
      const {stdout} = await execa(tool as string, [flag as string], {reject: false})
      return `${tool}: ${String(stdout).split('\n')[0] ?? 'missing'}`
    }),
  )
  return lines.join('\n')
}

/** A digest of everything that goes into the image: when it is unchanged, so is the image. */
export async function inputsDigest(definition: ImageDefinition): Promise<string> {
  const files = [
    DEFINITION_PATH,
    LOCK_PATH,
    'package.json',
    ...definition.agent.scripts.map((s) => join('agent', s)),
    ...listFiles(join(repoRoot, definition.helpers.source)).map((f) => relative(repoRoot, f)),
    ...listFiles(join(repoRoot, 'scripts', 'image')).map((f) => relative(repoRoot, f)),
  ]
  const parts = files.map((f) => `${f}\n${sha256(readFileSync(join(repoRoot, f)))}`)
  parts.push(await toolVersions())
  return sha256(parts.join('\n'))
}

export function readSummary(out = DEFAULT_OUT): ImageSummary | undefined {
  try {
    return JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as ImageSummary
  } catch {
    return undefined
  }
}

function tree(root: string): PlatformSummary['files'] {
  return readdirSync(root, {recursive: true})
    .map(String)
    .sort()
    .map((name) => {
      const st = lstatSync(join(root, name))
      const type = st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : 'file'
      return {path: `/${name}`, size: type === 'file' ? st.size : 0, type}
    })
}

async function buildPlatform(definition: ImageDefinition, lock: Lock, arch: string, work: string, rootfs: string): Promise<PlatformImage> {
  const unpack = async (names: string[], into: (name: string) => string) => {
    const pkgs = lockedPackages(lock, arch, names)
    return Promise.all(pkgs.map(async (pkg) => unpackDeb(pkg, await fetchDeb(pkg, lock.snapshot), into(pkg.name))))
  }
  const runtime = await unpack(definition.packages, (name) => join(work, arch, 'packages', name))
  // The TLS client compiles against the pinned build packages, unpacked (BearSSL is linked in statically).
  const sysroot = join(work, arch, 'sysroot')
  await unpack(definition.buildPackages, () => sysroot)
  const helpers: Record<string, string> = {}
  for (const {name} of definition.helpers.programs) {
    helpers[name] = join(work, arch, name)
    await execa('bash', [join(repoRoot, definition.helpers.source, 'build.sh'), arch, sysroot, helpers[name]], {
      stdout: 'inherit',
      stderr: 'inherit',
    })
  }
  const selection = await selectFiles(definition, arch, runtime, Object.values(helpers))
  rmSync(rootfs, {recursive: true, force: true})
  const linkedCopyrights = staticallyLinked(definition).map((name) => ({name, file: join(sysroot, 'usr/share/doc', name, 'copyright')}))
  assembleRootfs(rootfs, {definition, selection, packages: runtime, agentDir: join(repoRoot, 'agent'), helpers, linkedCopyrights})
  return {platform: platform(arch), rootfs, config: {...definition.config}}
}

export interface BuildOptions {
  out?: string
  force?: boolean
  updateLock?: boolean
  log?: (line: string) => void
}

/** Test files run in parallel processes and each may ask for the image: one builds, the others wait for it. */
async function withBuildLock<T>(out: string, fn: () => Promise<T>): Promise<T> {
  mkdirSync(dirname(out), {recursive: true})
  const lock = `${out}.lock`
  const deadline = Date.now() + 15 * 60_000
  for (;;) {
    try {
      mkdirSync(lock)
      writeFileSync(join(lock, 'pid'), String(process.pid))
      break
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const holder = lockHolder(lock)
      const abandoned = holder === undefined ? lockAgeMs(lock) > 10_000 : !processAlive(holder)
      if (abandoned) rmSync(lock, {recursive: true, force: true})
      else if (Date.now() > deadline) throw new Error(`${lock} is still held by pid ${holder}`, {cause: error})
      else await new Promise((r) => setTimeout(r, 200))
    }
  }
  try {
    return await fn()
  } finally {
    rmSync(lock, {recursive: true, force: true})
  }
}

function lockHolder(lock: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(lock, 'pid'), 'utf8'))
    return pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

function lockAgeMs(lock: string): number {
  try {
    return Date.now() - statSync(lock).mtimeMs
  } catch {
    return 0
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export async function buildImage(opts: BuildOptions = {}): Promise<ImageSummary> {
  const out = opts.out ?? DEFAULT_OUT
  return withBuildLock(out, () => build(out, opts))
}

async function build(out: string, opts: BuildOptions): Promise<ImageSummary> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`image: ${line}\n`))
  const definition = readDefinition(repoRoot)
  if (opts.updateLock) {
    writeLock(join(repoRoot, LOCK_PATH), await resolveLock(definition))
    log(`lock refreshed: ${LOCK_PATH}`)
  }
  const lock = readLock(join(repoRoot, LOCK_PATH))
  const inputs = await inputsDigest(definition)
  const previous = readSummary(out)
  if (!opts.force && previous?.inputs === inputs && existsSync(join(out, 'oci', 'index.json'))) {
    log(`up to date: ${previous.reference}`)
    return previous
  }
  const version = karpVersion()
  const tag = imageTag(version)
  const work = join(out, 'work')
  rmSync(work, {recursive: true, force: true})
  mkdirSync(work, {recursive: true})
  const images: PlatformImage[] = []
  for (const arch of definition.architectures) {
    log(`assembling ${arch}`)
    images.push(await buildPlatform(definition, lock, arch, work, join(out, 'rootfs', arch)))
  }
  const layout = await writeLayout(join(out, 'oci'), images, tag, lock.sourceDateEpoch, {
    'org.opencontainers.image.version': tag,
    'org.opencontainers.image.title': 'karp-agent',
    'org.opencontainers.image.licenses': 'Apache-2.0',
  })
  const platforms: Record<string, PlatformSummary> = {}
  definition.architectures.forEach((arch, i) => {
    const p = layout.platforms[i]
    if (!p) return
    platforms[arch] = {
      manifestDigest: p.manifest.digest,
      configDigest: p.config.digest,
      layerDigest: p.layer.digest,
      layerSize: p.layer.size,
      diffId: p.diffId,
      files: tree(join(out, 'rootfs', arch)),
    }
  })
  const summary: ImageSummary = {
    inputs,
    name: definition.name,
    tag,
    reference: `${definition.name}:${tag}@${layout.index.digest}`,
    indexDigest: layout.index.digest,
    sourceDateEpoch: lock.sourceDateEpoch,
    platforms,
  }
  writeSboms(out, definition, lock, summary, version)
  writeFileSync(join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`)
  rmSync(work, {recursive: true, force: true})
  for (const [arch, p] of Object.entries(platforms))
    log(`${arch}: ${(p.layerSize / 1e6).toFixed(2)} MB compressed, ${p.files.length} entries`)
  log(`built ${summary.reference}`)
  return summary
}

/** build/image/sbom/karp-agent-<arch>.spdx.json: what each architecture's image contains, for the release. */
function writeSboms(out: string, definition: ImageDefinition, lock: Lock, summary: ImageSummary, version: string): void {
  const dir = join(out, 'sbom')
  rmSync(dir, {recursive: true, force: true})
  mkdirSync(dir, {recursive: true})
  for (const [arch, p] of Object.entries(summary.platforms)) {
    const root = join(out, 'rootfs', arch)
    const files = karpOwnedPaths(definition)
      .filter((path) => existsSync(join(root, path)))
      .map((path) => ({path, data: readFileSync(join(root, path))}))
    const image = {name: summary.name, tag: summary.tag, arch, manifestDigest: p.manifestDigest}
    const doc = buildSbom({
      image,
      sourceDateEpoch: lock.sourceDateEpoch,
      packages: lockedPackages(lock, arch, definition.packages),
      buildPackages: lockedPackages(lock, arch, definition.buildPackages),
      // The build packages are what the helpers are compiled from; BearSSL's code is linked into those that use it.
      staticLinks: Object.fromEntries(
        definition.helpers.programs.filter((p) => p.staticallyLinks.length > 0).map((p) => [p.path, p.staticallyLinks]),
      ),
      snapshot: lock.snapshot,
      karp: {version, license: 'Apache-2.0', files},
    })
    writeFileSync(join(dir, sbomFileName(image)), sbomJson(doc))
  }
}

export const PIN_PATH = join(repoRoot, 'src', 'lib', 'config', 'agent-image.ts')

export function pin(summary: ImageSummary): void {
  const current = readFileSync(PIN_PATH, 'utf8')
  writeFileSync(PIN_PATH, current.replace(/AGENT_IMAGE = '[^']+'/, `AGENT_IMAGE = '${summary.reference}'`))
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const {values} = parseArgs({
    options: {'update-lock': {type: 'boolean'}, force: {type: 'boolean'}, out: {type: 'string'}, pin: {type: 'boolean'}},
  })
  buildImage({out: values.out ? resolve(values.out) : undefined, force: values.force, updateLock: values['update-lock']})
    .then((summary) => {
      if (!values.pin) return
      pin(summary)
      process.stderr.write(`image: the CLI's default --image is now ${summary.reference}\n`)
    })
    .catch((error: Error) => {
      process.stderr.write(`image: ${error.message}\n`)
      process.exit(1)
    })
}
