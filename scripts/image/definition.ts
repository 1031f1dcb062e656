// agent/image/image.json, typed: the one definition of the agent image.
import {readFileSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

export interface HelperProgram {
  name: string
  /** Where it goes in the image. */
  path: string
  /** The build packages whose code is linked in statically (so their copyright ships, and the SBOM says so). */
  staticallyLinks: string[]
}

export interface ImageDefinition {
  name: string
  distribution: {suites: {archive: string; suite: string}[]; component: string}
  architectures: string[]
  packages: string[]
  buildPackages: string[]
  files: Record<string, string[]>
  busyboxApplets: string[]
  agent: {scripts: string[]; directory: string}
  /** The agent's C helpers: each is built by source/build.sh from source/<name>.c (<name>.so: a shared object). */
  helpers: {source: string; programs: HelperProgram[]}
  config: {Entrypoint: string[]; Env: string[]; User: string; WorkingDir: string}
  directories: string[]
}

/** The build packages that some helper links in statically, each once. */
export function staticallyLinked(definition: Pick<ImageDefinition, 'helpers'>): string[] {
  return [...new Set(definition.helpers.programs.flatMap((p) => p.staticallyLinks))].sort()
}

export const DEFINITION_PATH = join('agent', 'image', 'image.json')
export const LOCK_PATH = join('agent', 'image', 'packages.lock.json')

export function readDefinition(root: string): ImageDefinition {
  return JSON.parse(readFileSync(join(root, DEFINITION_PATH), 'utf8')) as ImageDefinition
}

/** karp's version (package.json), and the image tag that goes with it. */
export function karpVersion(root = repoRoot): string {
  return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {version: string}).version
}

export function imageTag(version: string): string {
  return `v${version}`
}

/** Debian's multiarch triplet: where an architecture's libraries live. */
export function triplet(arch: string): string {
  const known: Record<string, string> = {amd64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu'}
  const value = known[arch]
  if (!value) throw new Error(`unsupported architecture ${arch}; known: ${Object.keys(known).join(', ')}`)
  return value
}

/** The OCI platform of a Debian architecture. */
export function platform(arch: string): {architecture: string; os: 'linux'; variant?: string} {
  if (arch === 'arm64') return {architecture: 'arm64', os: 'linux', variant: 'v8'}
  return {architecture: arch, os: 'linux'}
}
