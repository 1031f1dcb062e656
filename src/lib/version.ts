import {readFileSync} from 'node:fs'

/** karp's own version, from its package.json, stamped on what it installs. */
export const KARP_VERSION: string = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version
