import assert from 'node:assert/strict'

import {KarpError} from '../../src/lib/errors.js'

/** Awaits a promise that must fail with a KarpError of this exit code and message, and returns the error. */
export async function rejectsWithKarpError(
  promise: Promise<unknown>,
  exitCode: number,
  message: RegExp,
  options: {oneLine?: boolean} = {},
): Promise<KarpError> {
  let caught: unknown
  await promise.catch((e: unknown) => (caught = e))
  assert.ok(caught instanceof KarpError, `expected a KarpError, got ${String(caught)}`)
  assert.equal(caught.exitCode, exitCode, caught.message)
  assert.match(caught.message, message)
  if (options.oneLine) assert.ok(!caught.message.includes('\n'), 'one line')
  return caught
}

/** Calls fn, which must throw a one-line KarpError of this exit code, and returns the error. */
export function throwsKarpError(fn: () => unknown, exitCode: number): KarpError {
  let caught: unknown
  try {
    fn()
  } catch (error) {
    caught = error
  }
  assert.ok(caught instanceof KarpError, `expected a KarpError, got ${String(caught)}`)
  assert.equal(caught.exitCode, exitCode, caught.message)
  assert.ok(!caught.message.includes('\n'), 'one line')
  return caught
}
