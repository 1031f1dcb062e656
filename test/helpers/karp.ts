import {fileURLToPath} from 'node:url'

import {execa} from 'execa'

const RUN = fileURLToPath(new URL('../../bin/run.js', import.meta.url))

export interface KarpRun {
  exitCode: number
  stdout: string
  stderr: string
  /** stdout parsed, when --json was given. */
  json: unknown
}

/**
 * Runs the built CLI (bin/run.js over dist/, as users run it) with stdin closed, so it never prompts.
 * `npm test` builds first; when running one file by hand, run `npm run build` before.
 */
export async function karp(args: string[], options: {env?: Record<string, string>; timeoutMs?: number} = {}): Promise<KarpRun> {
  const result = await execa(process.execPath, [RUN, ...args], {
    reject: false,
    stdin: 'ignore',
    env: {NO_COLOR: '1', ...options.env},
    timeout: options.timeoutMs ?? 180_000,
  })
  let json: unknown
  if (args.includes('--json')) {
    try {
      json = JSON.parse(result.stdout)
    } catch {
      json = undefined
    }
  }
  return {exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr, json}
}
