import {readFileSync} from 'node:fs'
import {join} from 'node:path'

import {PACKAGE_ROOT} from './package-root.js'

/** karp's own version, from its package.json, stamped on what it installs. */
export const KARP_VERSION = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as {version: string}).version
