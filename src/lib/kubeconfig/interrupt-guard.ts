import {unlinkSync, writeSync} from 'node:fs'
import {constants} from 'node:os'
import {setImmediate as nextTurn} from 'node:timers/promises'

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/**
 * While karp has files beside a kubeconfig that must not outlive it (kubectl's lock, a temporary file, a
 * backup of a write that has not happened), SIGINT, SIGTERM and SIGHUP remove them, say what state the
 * kubeconfig is in, and end the process by the same signal. SIGKILL cannot be caught: what it leaves is
 * recognised later (a lock whose process is gone) or harmless (a temporary file, mode 0600).
 *
 * Node runs signal listeners only between turns of the event loop, so a signal that arrives during the
 * synchronous write is handled at the next checkpoint(): the write puts one just before its rename, which
 * makes every signal that came before that point leave the kubeconfig exactly as it was.
 */
export class InterruptGuard {
  private readonly paths = new Set<string>()
  private readonly listener = (signal: NodeJS.Signals) => this.interrupted(signal)

  /** state: what the kubeconfig is like if a signal comes now, for the one line printed then. */
  constructor(private state: string) {
    for (const signal of SIGNALS) process.on(signal, this.listener)
  }

  /** A file to remove if a signal comes. */
  track(path: string): void {
    this.paths.add(path)
  }

  untrack(path: string): void {
    this.paths.delete(path)
  }

  setState(state: string): void {
    this.state = state
  }

  /** Lets the listener run for a signal that arrived during synchronous work; resolves only if none did. */
  async checkpoint(): Promise<void> {
    // Two turns: the first immediate may run before the loop polls again; the second runs after a poll,
    // which is where libuv hands a received signal to its listeners.
    await nextTurn()
    await nextTurn()
  }

  /** Handles a signal that is still pending, then stops listening (SIGINT and the rest end the process again). */
  async close(): Promise<void> {
    await this.checkpoint()
    this.stopListening()
  }

  private stopListening(): void {
    for (const signal of SIGNALS) process.removeListener(signal, this.listener)
  }

  private interrupted(signal: NodeJS.Signals): void {
    this.stopListening()
    for (const path of this.paths) {
      try {
        unlinkSync(path)
      } catch {
        // Already gone.
      }
    }
    try {
      writeSync(2, `error: interrupted by ${signal}: ${this.state}\n`)
    } catch {
      // stderr is gone: the exit status still tells.
    }
    // No listener is left, so this ends the process the way the signal would have (status 128 + number);
    // exit() covers another listener somewhere else.
    process.kill(process.pid, signal)
    process.exit(128 + constants.signals[signal])
  }
}
