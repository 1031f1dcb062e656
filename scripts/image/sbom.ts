// The SBOM of one architecture of the agent image: an SPDX 2.3 JSON document built only from what the build
// already pins (the lock's .deb entries, the image's digest, karp's own files), so the same build gives the
// same bytes: `created` is the build's SOURCE_DATE_EPOCH and the namespace is derived from the manifest digest.
import {createHash} from 'node:crypto'
import {posix} from 'node:path'
import {PackageURL} from 'packageurl-js'
import {type LockedPackage, snapshotUrl} from './debian.js'
import type {ImageDefinition} from './definition.js'

export interface SbomImage {
  /** The repository, e.g. ghcr.io/karp-vip/karp-agent. */
  name: string
  tag: string
  /** Debian architecture of this document (amd64, arm64). */
  arch: string
  /** Digest of this architecture's image manifest (sha256:...). */
  manifestDigest: string
}

export interface KarpFile {
  /** Absolute path inside the image. */
  path: string
  data: Buffer
}

export interface SbomInput {
  image: SbomImage
  /** SOURCE_DATE_EPOCH of the build (seconds): the document's creation time. */
  sourceDateEpoch: number
  /** The lock entries of the packages unpacked into this architecture's image. */
  packages: readonly LockedPackage[]
  /** Packages karp's files are built from, not installed in the image: build dependencies of karp. */
  buildPackages?: readonly LockedPackage[]
  /** Image path of a karp file -> the build packages linked into it statically (their code ships inside it). */
  staticLinks?: Readonly<Record<string, readonly string[]>>
  /** The lock's snapshot.debian.org timestamp: where every pinned .deb stays downloadable. */
  snapshot?: string
  /** karp's own files in the image (agent scripts, karp-tls), under karp's license. */
  karp: {version: string; license: string; files: readonly KarpFile[]}
}

export interface SpdxChecksum {
  algorithm: 'SHA1' | 'SHA256'
  checksumValue: string
}

export interface SpdxPackage {
  SPDXID: string
  name: string
  versionInfo: string
  supplier?: string
  downloadLocation: string
  filesAnalyzed: boolean
  packageVerificationCode?: {packageVerificationCodeValue: string}
  checksums?: SpdxChecksum[]
  sourceInfo?: string
  licenseConcluded: string
  licenseDeclared: string
  copyrightText: string
  externalRefs?: {referenceCategory: 'PACKAGE-MANAGER'; referenceType: 'purl'; referenceLocator: string}[]
  primaryPackagePurpose?: 'CONTAINER' | 'APPLICATION' | 'LIBRARY' | 'OPERATING-SYSTEM'
}

export interface SpdxFile {
  SPDXID: string
  fileName: string
  fileTypes: ('SOURCE' | 'BINARY')[]
  checksums: SpdxChecksum[]
  licenseConcluded: string
  licenseInfoInFiles: string[]
  copyrightText: string
}

export interface SpdxRelationship {
  spdxElementId: string
  relationshipType: 'DESCRIBES' | 'CONTAINS' | 'BUILD_DEPENDENCY_OF' | 'STATIC_LINK'
  relatedSpdxElement: string
}

export interface SpdxDocument {
  spdxVersion: 'SPDX-2.3'
  dataLicense: 'CC0-1.0'
  SPDXID: 'SPDXRef-DOCUMENT'
  name: string
  documentNamespace: string
  creationInfo: {created: string; creators: string[]}
  packages: SpdxPackage[]
  files: SpdxFile[]
  relationships: SpdxRelationship[]
}

const NOASSERTION = 'NOASSERTION'
const IMAGE_ID = 'SPDXRef-Image'
const KARP_ID = 'SPDXRef-Package-karp'

/** Debian's release number of a suite (bookworm-security is bookworm): the purl's distro qualifier. */
const DEBIAN_RELEASES: Record<string, string> = {bullseye: '11', bookworm: '12', trixie: '13'}

export function debianDistro(suite: string): string {
  const codename = suite.split('-')[0] as string
  const release = DEBIAN_RELEASES[codename]
  if (!release) throw new Error(`no Debian release number known for suite ${suite}`)
  return `debian-${release}`
}

export function debPurl(pkg: LockedPackage): string {
  return new PackageURL('deb', 'debian', pkg.name, pkg.version, {arch: pkg.arch, distro: debianDistro(pkg.suite)}, undefined).toString()
}

export function imagePurl(image: SbomImage): string {
  const name = posix.basename(image.name)
  return new PackageURL(
    'oci',
    undefined,
    name,
    image.manifestDigest,
    {arch: image.arch, repository_url: image.name, tag: image.tag},
    undefined,
  ).toString()
}

/** SPDX ids allow only letters, digits, '.' and '-': anything else is spelled as its code point. */
function spdxId(prefix: string, name: string): string {
  return `${prefix}-${name.replace(/[^A-Za-z0-9.-]/g, (c) => `-${c.codePointAt(0)?.toString(16)}-`)}`
}

function hex(algorithm: 'sha1' | 'sha256', data: Buffer | string): string {
  return createHash(algorithm).update(data).digest('hex')
}

/** SPDX 2.3 section 7.9: SHA1 over the sorted, concatenated SHA1s of the package's files. */
export function packageVerificationCode(fileSha1s: readonly string[]): string {
  return hex('sha1', [...fileSha1s].sort().join(''))
}

/** ISO 8601 UTC to the second, the form SPDX requires. */
export function spdxTimestamp(epochSeconds: number): string {
  if (!Number.isInteger(epochSeconds) || epochSeconds < 0)
    throw new Error(`SOURCE_DATE_EPOCH must be a whole number of seconds, got ${epochSeconds}`)
  return new Date(epochSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z')
}

function debPackage(pkg: LockedPackage, snapshot: string | undefined): SpdxPackage {
  return {
    SPDXID: spdxId('SPDXRef-Package-deb', pkg.name),
    name: pkg.name,
    versionInfo: pkg.version,
    supplier: 'Organization: Debian',
    downloadLocation: snapshot ? snapshotUrl(pkg.archive, snapshot, pkg.filename) : NOASSERTION,
    filesAnalyzed: false,
    checksums: [{algorithm: 'SHA256', checksumValue: pkg.sha256}],
    sourceInfo: `built package from: ${pkg.source}`,
    licenseConcluded: NOASSERTION,
    licenseDeclared: NOASSERTION,
    copyrightText: NOASSERTION,
    externalRefs: [{referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: debPurl(pkg)}],
  }
}

function fileId(path: string): string {
  return spdxId('SPDXRef-File', path.replace(/^\/+/, ''))
}

function karpFile(file: KarpFile): SpdxFile {
  const elf = file.data.subarray(0, 4).toString('latin1') === '\x7fELF'
  return {
    SPDXID: fileId(file.path),
    fileName: `.${file.path}`,
    fileTypes: [elf ? 'BINARY' : 'SOURCE'],
    checksums: [
      {algorithm: 'SHA1', checksumValue: hex('sha1', file.data)},
      {algorithm: 'SHA256', checksumValue: hex('sha256', file.data)},
    ],
    licenseConcluded: NOASSERTION,
    licenseInfoInFiles: [NOASSERTION],
    copyrightText: NOASSERTION,
  }
}

function checkArch(arch: string, packages: readonly LockedPackage[]): void {
  const foreign = packages.filter((p) => p.arch !== arch && p.arch !== 'all')
  if (foreign.length > 0)
    throw new Error(
      `the ${arch} SBOM was given packages of another architecture: ${foreign.map((p) => `${p.name} (${p.arch})`).join(', ')}`,
    )
}

/** STATIC_LINK: the file carries the package's code, so scanners must see that package in this image. */
function staticLinkRelationships(input: SbomInput, buildDebs: SpdxPackage[]): SpdxRelationship[] {
  const relationships: SpdxRelationship[] = []
  for (const [path, names] of Object.entries(input.staticLinks ?? {})) {
    if (!input.karp.files.some((f) => f.path === path)) throw new Error(`static links name ${path}, which is not among karp's files`)
    for (const name of names) {
      const pkg = buildDebs.find((p) => p.name === name)
      if (!pkg) throw new Error(`static links of ${path} name ${name}, which is not among the build packages`)
      relationships.push({spdxElementId: fileId(path), relationshipType: 'STATIC_LINK', relatedSpdxElement: pkg.SPDXID})
    }
  }
  return relationships.sort((a, b) =>
    `${a.spdxElementId} ${a.relatedSpdxElement}` < `${b.spdxElementId} ${b.relatedSpdxElement}` ? -1 : 1,
  )
}

function checkUniqueIds(ids: string[]): void {
  const seen = new Set<string>()
  for (const id of ids) {
    if (seen.has(id)) throw new Error(`two SBOM elements would share the id ${id}`)
    seen.add(id)
  }
}

export function buildSbom(input: SbomInput): SpdxDocument {
  const {image, karp} = input
  const digest = /^sha256:([0-9a-f]{64})$/.exec(image.manifestDigest)?.[1]
  if (!digest) throw new Error(`manifest digest must be sha256:<64 hex>, got ${image.manifestDigest}`)
  checkArch(image.arch, input.packages)
  checkArch(image.arch, input.buildPackages ?? [])

  const byName = (a: {name: string}, b: {name: string}) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  const debs = [...input.packages].sort(byName).map((p) => debPackage(p, input.snapshot))
  const buildDebs = [...(input.buildPackages ?? [])].sort(byName).map((p) => debPackage(p, input.snapshot))
  const files = [...karp.files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)).map(karpFile)

  const imagePackage: SpdxPackage = {
    SPDXID: IMAGE_ID,
    name: image.name,
    versionInfo: image.tag,
    downloadLocation: NOASSERTION,
    filesAnalyzed: false,
    checksums: [{algorithm: 'SHA256', checksumValue: digest}],
    licenseConcluded: NOASSERTION,
    licenseDeclared: NOASSERTION,
    copyrightText: NOASSERTION,
    externalRefs: [{referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: imagePurl(image)}],
    primaryPackagePurpose: 'CONTAINER',
  }
  const karpPackage: SpdxPackage = {
    SPDXID: KARP_ID,
    name: 'karp',
    versionInfo: karp.version,
    downloadLocation: NOASSERTION,
    filesAnalyzed: true,
    packageVerificationCode: {packageVerificationCodeValue: packageVerificationCode(files.map((f) => f.checksums[0]?.checksumValue ?? ''))},
    licenseConcluded: NOASSERTION,
    licenseDeclared: karp.license,
    copyrightText: NOASSERTION,
    primaryPackagePurpose: 'APPLICATION',
  }
  const packages = [imagePackage, karpPackage, ...debs, ...buildDebs]
  checkUniqueIds([...packages, ...files].map((e) => e.SPDXID))

  const relationships: SpdxRelationship[] = [
    {spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: IMAGE_ID},
    {spdxElementId: IMAGE_ID, relationshipType: 'CONTAINS', relatedSpdxElement: KARP_ID},
    ...debs.map((p): SpdxRelationship => ({spdxElementId: IMAGE_ID, relationshipType: 'CONTAINS', relatedSpdxElement: p.SPDXID})),
    ...files.map((f): SpdxRelationship => ({spdxElementId: KARP_ID, relationshipType: 'CONTAINS', relatedSpdxElement: f.SPDXID})),
    ...buildDebs.map((p): SpdxRelationship => ({
      spdxElementId: p.SPDXID,
      relationshipType: 'BUILD_DEPENDENCY_OF',
      relatedSpdxElement: KARP_ID,
    })),
    ...staticLinkRelationships(input, buildDebs),
  ]

  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `${image.name}:${image.tag} ${image.arch}`,
    documentNamespace: `https://${image.name}/spdx/${image.arch}/sha256-${digest}`,
    creationInfo: {created: spdxTimestamp(input.sourceDateEpoch), creators: [`Tool: karp-image-build-${karp.version}`]},
    packages,
    files,
    relationships,
  }
}

/** The document as written to build/image/sbom/: stable key order from the builder, two-space indent. */
export function sbomJson(doc: SpdxDocument): string {
  return `${JSON.stringify(doc, null, 2)}\n`
}

export function sbomFileName(image: Pick<SbomImage, 'name' | 'arch'>): string {
  return `${posix.basename(image.name)}-${image.arch}.spdx.json`
}

/** Where karp's own files sit in the image: the agent scripts and its C helpers. */
export function karpOwnedPaths(definition: Pick<ImageDefinition, 'agent' | 'helpers'>): string[] {
  return [
    ...definition.agent.scripts.map((s) => posix.join(definition.agent.directory, s)),
    ...definition.helpers.programs.map((p) => p.path),
  ]
}
