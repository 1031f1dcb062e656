// agent/image/image.json, typed: the one definition of the agent image.
import {readFileSync} from 'node:fs'
import {join} from 'node:path'

export interface ImageDefinition {
  name: string
  distribution: {suites: {archive: string; suite: string}[]; component: string}
  architectures: string[]
  packages: string[]
  buildPackages: string[]
  files: Record<string, string[]>
  busyboxApplets: string[]
  agent: {scripts: string[]; directory: string}
  tlsClient: {source: string; path: string}
  config: {Entrypoint: string[]; Env: string[]; User: string; WorkingDir: string}
  directories: string[]
}

export const DEFINITION_PATH = join('agent', 'image', 'image.json')
export const LOCK_PATH = join('agent', 'image', 'packages.lock.json')

export function readDefinition(root: string): ImageDefinition {
  return JSON.parse(readFileSync(join(root, DEFINITION_PATH), 'utf8')) as ImageDefinition
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
