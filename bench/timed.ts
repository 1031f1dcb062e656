import {execa} from 'execa'

/** Wall time (ms) of one run of a program, which must exit 0; its output is not shown. */
export async function timed(file: string, args: string[]): Promise<number> {
  const start = performance.now()
  const result = await execa(file, args, {reject: false, stdin: 'ignore'})
  const ms = performance.now() - start
  if (result.exitCode !== 0) throw new Error(`${file} ${args.join(' ')} failed (${result.exitCode}):\n${result.stderr}`)
  return ms
}
