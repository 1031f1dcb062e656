// The release's pin check: a release may go out only when the CLI's default --image is exactly the image this
// tree built (the image definition's repository, tag v<package.json version>, the layout's index digest) and
// the release tag is that same v<version>. Otherwise `karp install` of the release would run another image.
//
//   node --import tsx scripts/image-check-pin.ts [--tag vX.Y.Z] [--layout build/image/oci]
//
// Exit 0 and one line when the pin holds; exit 1 naming both values of every mismatch.
import {readFileSync} from 'node:fs'
import {join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import {DEFAULTS} from '../src/lib/config/vip-config.js'
import {parseImageReference} from '../src/lib/config/image-reference.js'
import {imageTag, karpVersion, readDefinition, repoRoot} from './image/definition.js'
const REF_NAME = 'org.opencontainers.image.ref.name'

interface LayoutIndex {
  manifests?: {digest?: string; annotations?: Record<string, string>}[]
}

/** The digest index.json of an OCI layout records under `tag`. */
export function layoutDigest(layout: string, tag: string): string | undefined {
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as LayoutIndex
  return index.manifests?.find((m) => m.annotations?.[REF_NAME] === tag)?.digest
}

export interface PinFacts {
  /** The CLI's default --image. */
  pinned: string
  /** The repository the image is published to (agent/image/image.json name). */
  repository: string
  version: string
  /** The tag being released (the git tag), when there is one. */
  releaseTag?: string
  /** The index digest the layout holds under v<version>, if any. */
  builtDigest?: string
}

export function pinProblems(facts: PinFacts): string[] {
  const tag = imageTag(facts.version)
  const problems: string[] = []
  if (facts.releaseTag !== undefined && facts.releaseTag !== tag) {
    problems.push(`the release tag is ${facts.releaseTag}, but package.json's version makes the image tag ${tag}`)
  }
  if (!facts.builtDigest) problems.push(`the image layout has no image tagged ${tag}: run \`npm run image\``)
  const parsed = parseImageReference(facts.pinned)
  if (!parsed.ok) return [...problems, `the CLI's default --image ${facts.pinned} is not an image reference: expected ${parsed.why}`]
  const {domain, path, tag: pinnedTag, digest} = parsed.value
  const name = domain ? `${domain}/${path}` : path
  if (name !== facts.repository) problems.push(`the CLI's default --image names ${name}, the image is published as ${facts.repository}`)
  if (pinnedTag !== tag) problems.push(`the CLI's default --image has tag ${pinnedTag ?? '(none)'}, the image is tagged ${tag}`)
  if (!digest)
    problems.push(
      `the CLI's default --image ${facts.pinned} is not pinned by digest; the built index is ${facts.builtDigest ?? '(not built)'}`,
    )
  else if (facts.builtDigest && digest !== facts.builtDigest) {
    problems.push(
      `the CLI's default --image is pinned to ${digest}, but the built index is ${facts.builtDigest}: run \`npm run image -- --pin\` and commit src/lib/config/agent-image.ts`,
    )
  }
  return problems
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const {values} = parseArgs({options: {tag: {type: 'string'}, layout: {type: 'string'}}})
  const version = karpVersion()
  const layout = resolve(values.layout ?? join(repoRoot, 'build', 'image', 'oci'))
  const facts: PinFacts = {
    pinned: DEFAULTS.image,
    repository: readDefinition(repoRoot).name,
    version,
    releaseTag: values.tag,
    builtDigest: layoutDigest(layout, imageTag(version)),
  }
  const problems = pinProblems(facts)
  for (const problem of problems) process.stderr.write(`image-check-pin: ${problem}\n`)
  if (problems.length > 0) process.exit(1)
  process.stdout.write(`image-check-pin: ok, the CLI's default --image is ${facts.pinned}\n`)
}
