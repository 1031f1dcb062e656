// karp-tls (agent/tls) and the image's other C helpers, built for this machine with agent/tls/build.sh
// against the host's libbearssl-dev, into build/karp-tls/<arch>/: what the lab puts on the agent's PATH and
// what test/e2e/karp-tls tests. Built once per test process (about a second; the output is byte-identical every time and lands by
// rename, so test files building side by side do not disturb each other).
import {spawnSync} from 'node:child_process'
import {mkdirSync, symlinkSync} from 'node:fs'
import {arch} from 'node:process'
import {dirname, join, posix, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {readDefinition} from '../scripts/image/definition.js'

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const debianArch: Record<string, string> = {x64: 'amd64', arm64: 'arm64'}

let built: {path: string} | {error: string} | undefined

/** The host build of karp-tls, or why it cannot be built here (a missing compiler or libbearssl-dev). */
export function karpTls(): {path: string} | {error: string} {
  if (built) return built
  const target = debianArch[arch]
  if (!target) return (built = {error: `karp-tls is built for amd64 and arm64 only, not ${arch}`})
  const path = join(repoRoot, 'build', 'karp-tls', target, 'karp-tls')
  // Every helper of the image beside it: the agent finds them all on its PATH, as in the image.
  const definition = readDefinition(repoRoot)
  for (const {name} of definition.helpers.programs) {
    const out = join(dirname(path), name)
    const result = spawnSync('sh', [join(repoRoot, definition.helpers.source, 'build.sh'), target, '/', out], {encoding: 'utf8'})
    if (result.status !== 0) return (built = {error: `agent/tls/build.sh failed: ${(result.stderr || result.error?.message || '').trim()}`})
  }
  return (built = {path})
}

/** The directory of the host build of karp-tls, for a PATH; throws when it cannot be built. */
export function karpTlsDir(): string {
  const result = karpTls()
  if ('error' in result) throw new Error(result.error)
  return dirname(result.path)
}

let installed: string | undefined

/**
 * The agent's directory as the image has it (/usr/local/lib/karp): the scripts (links to agent/, so an edit
 * is seen at once) and the helpers the image puts beside them (karp-pcap-immediate.so), built for this
 * machine. The entrypoint finds its hooks and that library beside itself. Throws when a helper cannot be built.
 */
export function agentInstallDir(): string {
  if (installed) return installed
  const helpers = karpTlsDir()
  const definition = readDefinition(repoRoot)
  const dir = resolve(helpers, '..', '..', 'agent', debianArch[arch] as string)
  mkdirSync(dir, {recursive: true})
  const links: Array<[target: string, name: string]> = [
    ...definition.agent.scripts.map((script): [string, string] => [join(repoRoot, 'agent', script), script]),
    ...definition.helpers.programs
      .filter(({path}) => posix.dirname(path) === definition.agent.directory)
      .map(({name}): [string, string] => [join(helpers, name), name]),
  ]
  // Link by link, never removed: test files starting side by side make the same links, and agents that
  // run from here never see one go.
  for (const [target, name] of links) {
    try {
      symlinkSync(target, join(dir, name))
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
  }
  return (installed = dir)
}
