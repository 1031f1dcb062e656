import {InvalidInputError} from '../errors.js'
import type {Checked} from './validate.js'

/**
 * Collects the outcome of every flag check so a command reports all bad values at once, then stops before
 * doing anything. A value whose check failed comes back as a placeholder that never reaches use, because
 * done() throws first.
 */
export class FlagChecks {
  private readonly problems: string[] = []

  take<T>(checked: Checked<T>): T {
    if (checked.ok) return checked.value
    this.problems.push(checked.problem)
    return undefined as T
  }

  /** take() for a flag the user may leave out: undefined when absent. */
  optional<T>(raw: string | undefined, check: (raw: string) => Checked<T>): T | undefined {
    return raw === undefined ? undefined : this.take(check(raw))
  }

  /** Folds in a validator that throws every problem it found (validateVipInput). */
  absorb<T>(validate: () => T): T {
    try {
      return validate()
    } catch (error) {
      if (!(error instanceof InvalidInputError)) throw error
      this.problems.push(...error.problems)
      return undefined as T
    }
  }

  done(): void {
    if (this.problems.length > 0) throw new InvalidInputError(this.problems)
  }
}
