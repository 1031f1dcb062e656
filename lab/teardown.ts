// Synchronous teardown that runs however the test process ends: on exit, and on SIGINT/SIGTERM/SIGHUP,
// which fire no 'exit' event. One listener per signal runs every registered cleanup, newest first (what
// was built on top of something is taken down before it), then re-raises the signal so it still ends the
// process.
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
const cleanups: (() => void)[] = []
let installed = false

function runAll(): void {
  // One cleanup failing must not leave the others' processes, mounts and namespaces behind.
  for (const cleanup of [...cleanups].reverse()) {
    try {
      cleanup()
    } catch (err) {
      console.error(`teardown: ${(err as Error).stack ?? String(err)}`)
    }
  }
}

/** Registers `cleanup` (it must be idempotent); the returned function unregisters it. */
export function atTeardown(cleanup: () => void): () => void {
  if (!installed) {
    installed = true
    process.on('exit', runAll)
    for (const signal of SIGNALS) {
      process.once(signal, () => {
        runAll()
        process.kill(process.pid, signal)
      })
    }
  }
  cleanups.push(cleanup)
  return () => {
    const at = cleanups.indexOf(cleanup)
    if (at >= 0) cleanups.splice(at, 1)
  }
}
