import {Command, Errors, type Interfaces, ux} from '@oclif/core'

import {escapeControl} from './lib/echo.js'
import {type CommandResult, ExitCode, InvalidInputError, KarpError} from './lib/errors.js'

/** 128 + SIGINT, as shells report a command ended by Ctrl-C. */
export const INTERRUPTED_EXIT_CODE = 130

export type ErrorJson = {error: {message: string; exitCode: number; hint?: string}}

/**
 * Maps failures onto the exit codes (docs/architecture.md): a KarpError is the user's to fix and shows one clear message
 * (JSON on stdout under --json); anything else is a bug and keeps its stack.
 */
export abstract class BaseCommand extends Command {
  static override enableJsonFlag = true

  /** Every command returns its result (undefined only for status --watch, which prints as it goes). */
  abstract override run(): Promise<CommandResult | undefined>

  /** Ends with the exit code the result declares, the same with --json and without. */
  protected override async _run<T>(): Promise<T> {
    const result = await super._run<T>()
    const declared = (result as CommandResult | undefined)?.exitCode
    if (declared !== undefined) process.exitCode = declared
    return result
  }

  protected override async catch(err: Error & {exitCode?: number}): Promise<unknown> {
    // A spinner holds stdout back while it runs: stop it, or a JSON error would never be printed.
    if (ux.action.running) ux.action.stop('failed')
    if (err instanceof KarpError) {
      if (this.jsonEnabled()) return super.catch(Object.assign(new Errors.CLIError(err.message, {exit: err.exitCode}), {karp: err}))
      // Printed whole, unwrapped: each problem stays on one line that names the flag and value. Whatever
      // reached a message from outside (a server's answer, a file) cannot drive the terminal: every
      // control character is shown escaped.
      const lines = err instanceof InvalidInputError ? err.problems : [err.message]
      for (const line of lines) this.logToStderr(`error: ${line.split('\n').map(escapeControl).join('\n')}`)
      if (err.hint) this.logToStderr(`hint: ${escapeControl(err.hint)}`)
      this.exit(err.exitCode)
    }
    // Ctrl-C at a prompt (@inquirer's ExitPromptError): the shell's convention for SIGINT, not a bug.
    if (err.name === 'ExitPromptError') {
      this.logToStderr('interrupted; nothing was changed')
      this.exit(INTERRUPTED_EXIT_CODE)
    }
    return super.catch(err)
  }

  /**
   * A confirmation answered "no": the person decided, and karp did what they asked, which is nothing. As
   * kubectl delete --interactive does, that is success (exit 0), said on stderr.
   */
  protected declined(outcome: string): never {
    this.logToStderr(`cancelled; ${outcome}`)
    return this.exit(ExitCode.ok)
  }

  protected override toErrorJson(err: unknown): ErrorJson {
    const karp = (err as {karp?: KarpError}).karp
    if (karp) return {error: {message: karp.message, exitCode: karp.exitCode, ...(karp.hint ? {hint: karp.hint} : {})}}
    const e = err as Error & {oclif?: {exit?: number}}
    return {error: {message: e.message, exitCode: e.oclif?.exit ?? ExitCode.bug}}
  }

  /** Prompts only where a person can answer: a TTY on both ends and no --json. */
  protected canPrompt(): boolean {
    return Boolean(process.stdin.isTTY && process.stdout.isTTY) && !this.jsonEnabled()
  }
}

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<T['flags'] & T['baseFlags']>
