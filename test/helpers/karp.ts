import {fileURLToPath} from 'node:url'

import {execa} from 'execa'

/** The CLI's entry point, for tests that drive the process themselves. */
export const karpBin = fileURLToPath(new URL('../../bin/run.js', import.meta.url))
const RUN = karpBin

export interface KarpRun {
  exitCode: number
  stdout: string
  stderr: string
  /** stdout parsed, when --json was given. */
  json: unknown
}

export interface KarpOptions {
  env?: Record<string, string>
  timeoutMs?: number
  /** Written to stdin, which is closed otherwise (so the CLI never prompts). */
  input?: string
  /** A network namespace to run in (a lab's client: lab/cluster.ts), instead of this process's own. */
  netns?: string
}

/** argv that runs `command` in the network namespace, or as it is. */
function inNetns(command: string[], netns: string | undefined): [string, string[]] {
  const argv = netns ? ['nsenter', `--net=/run/netns/${netns}`, '--', ...command] : command
  return [argv[0] as string, argv.slice(1)]
}

/**
 * Runs the built CLI (bin/run.js over dist/, as users run it) with stdin closed, so it never prompts.
 * `npm test` builds first; when running one file by hand, run `npm run build` before.
 */
export async function karp(args: string[], options: KarpOptions = {}): Promise<KarpRun> {
  const [file, argv] = inNetns([process.execPath, RUN, ...args], options.netns)
  const result = await execa(file, argv, {
    reject: false,
    ...(options.input === undefined ? {stdin: 'ignore' as const} : {input: options.input}),
    env: {NO_COLOR: '1', ...options.env},
    timeout: options.timeoutMs ?? 180_000,
  })
  return {exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr, json: jsonOutput(args, result.stdout)}
}

/** stdout parsed when the command ran with --json; undefined otherwise or when it is not JSON. */
export function jsonOutput(args: string[], stdout: string): unknown {
  if (!args.includes('--json')) return undefined
  try {
    return JSON.parse(stdout)
  } catch {
    return undefined
  }
}

const shellQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g

/**
 * Runs the built CLI on a real pseudo-terminal (util-linux `script`), answering each prompt as it appears:
 * for every [pattern, answer] in turn, waits until the screen output matches, then types answer + Enter.
 */
export async function karpOnTerminal(
  args: string[],
  answers: Array<[RegExp, string]>,
  timeoutMs = 120_000,
  options: Pick<KarpOptions, 'env' | 'netns'> = {},
): Promise<{exitCode: number; output: string}> {
  const command = [process.execPath, RUN, ...args].map(shellQuote).join(' ')
  const [file, argv] = inNetns(['script', '-qfec', command, '/dev/null'], options.netns)
  const child = execa(file, argv, {reject: false, stdin: 'pipe', env: {NO_COLOR: '1', ...options.env}, timeout: timeoutMs})
  let output = ''
  let next = 0
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8').replace(ANSI, '')
    const pending = answers[next]
    if (pending && pending[0].test(output)) {
      next++
      child.stdin?.write(`${pending[1]}\r`)
    }
  })
  const result = await child
  return {exitCode: result.exitCode ?? -1, output}
}
