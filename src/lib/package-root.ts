import {existsSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

/**
 * The directory of karp's package.json (and templates/), found by walking up from this module: it runs from
 * src/lib/ (tests) and from a chunk of the bundle in dist/ alike.
 */
export const PACKAGE_ROOT: string = findPackageRoot(dirname(fileURLToPath(import.meta.url)))

function findPackageRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'templates'))) return dir
    if (dirname(dir) === dir) throw new Error(`karp's package.json and templates/ not found above ${start}`)
  }
}
