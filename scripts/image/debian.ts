// The Debian archive, as the image build uses it: signed release files (checked with gpgv against the
// archive keyring, as apt does), package indexes checked against them, and .deb files checked against the
// SHA-256 the lock pins. Nothing here runs code from a package.
import {createHash} from 'node:crypto'
import {existsSync, mkdirSync, readFileSync, renameSync, writeFileSync} from 'node:fs'
import {homedir} from 'node:os'
import {join} from 'node:path'
import {execa} from 'execa'

export type Archive = 'debian' | 'debian-security'

export interface LockedPackage {
  name: string
  version: string
  arch: string
  source: string
  archive: Archive
  suite: string
  filename: string
  size: number
  sha256: string
}

const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg'
const FETCH_TIMEOUT_MS = 120_000

/** The mirror for an archive; KARP_DEBIAN_MIRROR / KARP_DEBIAN_SECURITY_MIRROR point the build elsewhere. */
export function mirror(archive: Archive): string {
  const own = archive === 'debian' ? process.env.KARP_DEBIAN_MIRROR : process.env.KARP_DEBIAN_SECURITY_MIRROR
  return (own ?? `http://deb.debian.org/${archive}`).replace(/\/+$/, '')
}

/** snapshot.debian.org keeps every version ever published: where a pinned .deb is found once the mirror moved on. */
export function snapshotUrl(archive: Archive, timestamp: string, filename: string): string {
  return `https://snapshot.debian.org/archive/${archive}/${timestamp}/${filename}`
}

export function debCacheDir(): string {
  return process.env.KARP_DEB_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'karp', 'debs')
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex')
}

async function get(url: string): Promise<Buffer> {
  const response = await fetch(url, {signal: AbortSignal.timeout(FETCH_TIMEOUT_MS)})
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`)
  return Buffer.from(await response.arrayBuffer())
}

/** Debian control-file stanzas ("Field: value"; continuation lines start with a space, and keep it). */
export function parseStanzas(text: string): Record<string, string>[] {
  const stanzas: Record<string, string>[] = []
  for (const block of text.split(/\n\s*\n/)) {
    const fields: Record<string, string> = {}
    let last: string | undefined
    for (const line of block.split('\n')) {
      if (line === '') continue
      if (/^\s/.test(line) && last) {
        fields[last] += `\n${line}`
        continue
      }
      const colon = line.indexOf(':')
      if (colon <= 0) continue
      last = line.slice(0, colon)
      fields[last] = line.slice(colon + 1).trim()
    }
    if (Object.keys(fields).length > 0) stanzas.push(fields)
  }
  return stanzas
}

/** The SHA256 section of a Release file: path -> {sha256, size}. */
export function releaseChecksums(release: string): Map<string, {sha256: string; size: number}> {
  const [fields] = parseStanzas(release)
  const sums = new Map<string, {sha256: string; size: number}>()
  for (const line of (fields?.SHA256 ?? '').split('\n')) {
    const [hash, size, path] = line.trim().split(/\s+/)
    if (hash && size && path) sums.set(path, {sha256: hash, size: Number(size)})
  }
  return sums
}

/** InRelease of a suite, its OpenPGP signature verified against the Debian archive keyring. */
export async function verifiedRelease(archive: Archive, suite: string, dir: string): Promise<string> {
  const signed = join(dir, `${archive}_${suite}_InRelease`)
  writeFileSync(signed, await get(`${mirror(archive)}/dists/${suite}/InRelease`))
  const {stdout} = await execa('gpgv', ['--keyring', KEYRING, '--output', '-', signed], {stripFinalNewline: false})
  return stdout
}

/** The Packages index of one suite and architecture, checked against its signed release file. */
export async function packagesIndex(
  archive: Archive,
  suite: string,
  component: string,
  arch: string,
  release: string,
): Promise<Record<string, string>[]> {
  const path = `${component}/binary-${arch}/Packages.xz`
  const expected = releaseChecksums(release).get(path)
  if (!expected) throw new Error(`${archive} ${suite}: the release file lists no ${path}`)
  const xz = await get(`${mirror(archive)}/dists/${suite}/${path}`)
  if (sha256(xz) !== expected.sha256) throw new Error(`${archive} ${suite} ${path}: SHA-256 differs from the signed release file`)
  const {stdout} = await execa('xz', ['-dc'], {input: xz, stripFinalNewline: false, maxBuffer: 1 << 30})
  return parseStanzas(stdout)
}

/** dpkg's own version order, so "1.2-10" > "1.2-9" and epochs and tildes count as apt counts them. */
export async function versionGreater(a: string, b: string): Promise<boolean> {
  const {exitCode} = await execa('dpkg', ['--compare-versions', a, 'gt', b], {reject: false})
  return exitCode === 0
}

/**
 * A pinned .deb, from the cache or the mirror (then snapshot.debian.org), refused unless its SHA-256 and
 * size are the lock's.
 */
export async function fetchDeb(pkg: LockedPackage, snapshot: string): Promise<string> {
  const dir = debCacheDir()
  mkdirSync(dir, {recursive: true})
  const cached = join(dir, `${pkg.sha256}.deb`)
  if (existsSync(cached) && sha256(readFileSync(cached)) === pkg.sha256) return cached
  const urls = [`${mirror(pkg.archive)}/${pkg.filename}`, snapshotUrl(pkg.archive, snapshot, pkg.filename)]
  const failures: string[] = []
  for (const url of urls) {
    let data: Buffer
    try {
      data = await get(url)
    } catch (error) {
      failures.push((error as Error).message)
      continue
    }
    const got = sha256(data)
    if (got !== pkg.sha256 || data.length !== pkg.size) {
      throw new Error(`${url}: SHA-256 ${got} (${data.length} bytes), the lock pins ${pkg.sha256} (${pkg.size} bytes)`)
    }
    const partial = `${cached}.${process.pid}.part`
    writeFileSync(partial, data)
    renameSync(partial, cached)
    return cached
  }
  throw new Error(`${pkg.name} ${pkg.version} (${pkg.arch}) is on neither the mirror nor snapshot.debian.org:\n  ${failures.join('\n  ')}`)
}
