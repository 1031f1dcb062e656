/** The exit codes (docs/architecture.md, the README's "Exit codes"); every command maps its failures onto these. */
export const ExitCode = {
  ok: 0,
  bug: 1,
  usage: 2,
  unreachable: 3,
  checkFailed: 4,
} as const
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode]

/**
 * What every command's result carries, under --json and without: the exit code the command ends with,
 * decided where its verdict is made (BaseCommand exits with it). A failure is thrown instead, and its
 * --json form is the error shape of schemas/error.schema.json.
 */
export interface CommandResult {
  exitCode: ExitCode
}

/**
 * A failure that is the user's to fix (bad input, unreachable cluster, a failed check): shown as one line
 * plus an optional hint, never with a stack. Anything else that escapes a command is a bug (exit 1).
 */
export class KarpError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    readonly hint?: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
    this.name = 'KarpError'
  }
}

export class UsageError extends KarpError {
  constructor(message: string, hint?: string, options?: ErrorOptions) {
    super(message, ExitCode.usage, hint, options)
    this.name = 'UsageError'
  }
}

export class UnreachableError extends KarpError {
  constructor(message: string, hint?: string, options?: ErrorOptions) {
    super(message, ExitCode.unreachable, hint, options)
    this.name = 'UnreachableError'
  }
}

export class CheckFailedError extends KarpError {
  constructor(message: string, hint?: string, options?: ErrorOptions) {
    super(message, ExitCode.checkFailed, hint, options)
    this.name = 'CheckFailedError'
  }
}

/** One or more invalid inputs found together, so the user can fix them all in one go. */
export class InvalidInputError extends UsageError {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'))
    this.name = 'InvalidInputError'
  }
}
