// `karp kubeconfig rewrite` (the built CLI) interrupted in the middle of its write, as Ctrl-C, a `kill`, a
// closed terminal or an OOM killer would: the test freezes the real process (SIGSTOP) the moment its
// temporary file appears, sends the signal, and lets it run on (SIGCONT). SIGINT, SIGTERM and SIGHUP must
// leave the kubeconfig byte for byte as it was and nothing beside it (lock, temporary file, backup);
// SIGKILL cannot be caught, so the lock it leaves must be recognised as stale, with a command that removes it.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {readdirSync, readFileSync, rmSync, watch, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {execa} from 'execa'

import {karp, karpBin} from '../helpers/karp.js'
import {fixtureText, tempDir} from '../fixtures/kubeconfig/harness.js'

const VIP = '10.99.0.10'
const NEW_SERVER = `https://${VIP}:6443`
// Close to the 4 MiB karp reads, so that writing, flushing and reading back the temporary file takes long
// enough (on the real disk under the temporary directory) for the test to freeze the process inside it.
const KUBECONFIG = `${fixtureText('k3s.yaml')}# ${'padding '.repeat(450_000)}\n`
const REWRITTEN = KUBECONFIG.replace('https://127.0.0.1:6443', NEW_SERVER)
const ATTEMPTS = 5

const isTemp = (name: string) => name !== 'config' && name !== 'config.lock' && !name.includes('.karp-backup-')

function processState(pid: number): string | undefined {
  try {
    // "pid (comm) S ...": the state follows the last parenthesis.
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0]
  } catch {
    return undefined
  }
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (condition()) return
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  throw new Error(`gave up waiting: ${what}`)
}

interface Interrupted {
  /** The process was frozen while its temporary file existed (else it had finished or renamed already). */
  caught: boolean
  pid: number
  dir: string
  file: string
  exitCode?: number
  signal?: string
  stderr: string
}

/**
 * Runs the rewrite and, once its temporary file for the kubeconfig exists (after the backup, when there is
 * one), freezes it, sends `signal` and lets it go on.
 */
async function interruptMidWrite(flags: string[], signal: NodeJS.Signals): Promise<Interrupted> {
  const dir = tempDir()
  const file = join(dir, 'config')
  writeFileSync(file, KUBECONFIG, {mode: 0o600})
  const withBackup = !flags.includes('--no-backup')
  const child = execa(
    process.execPath,
    [karpBin, 'kubeconfig', 'rewrite', '--kubeconfig', file, '--vip', VIP, '--force', '--no-verify', ...flags],
    {
      reject: false,
      stdin: 'ignore',
      env: {NO_COLOR: '1'},
      timeout: 120_000,
    },
  )
  const pid = child.pid ?? -1
  let frozen = false
  await new Promise<void>((resolve) => {
    const watcher = watch(dir, () => {
      if (frozen) return
      const names = readdirSync(dir)
      if (names.some(isTemp) && (!withBackup || names.some((n) => n.includes('.karp-backup-')))) {
        process.kill(pid, 'SIGSTOP')
        frozen = true
        watcher.close()
        resolve()
      }
    })
    void child.finally(() => {
      watcher.close()
      resolve()
    })
  })
  let caught = false
  if (frozen) {
    await until(() => processState(pid) === 'T' || processState(pid) === undefined, 'the process to stop')
    caught = readdirSync(dir).some(isTemp)
    if (caught) process.kill(pid, signal)
    if (signal !== 'SIGKILL') process.kill(pid, 'SIGCONT')
  }
  const result = await child
  return {caught, pid, dir, file, exitCode: result.exitCode, signal: result.signal, stderr: result.stderr}
}

/**
 * Interrupts runs until one was frozen before its rename (a run can finish, or reach its rename, before the
 * test freezes it). Every caught run must have ended by the signal with the kubeconfig whole: as it was,
 * or, if the signal came in the instant between the last check and the rename, wholly rewritten.
 */
async function interruptBeforeRename(flags: string[], signal: NodeJS.Signals): Promise<void> {
  const withBackup = !flags.includes('--no-backup')
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const run = await interruptMidWrite(flags, signal)
    try {
      if (judge(run, signal, withBackup)) return
    } finally {
      rmSync(run.dir, {recursive: true, force: true})
    }
  }
  throw new Error(`no run out of ${ATTEMPTS} was frozen before its rename`)
}

/** true when the run was frozen before its rename and left everything as it was; asserts it left nothing half-done. */
function judge(run: Interrupted, signal: NodeJS.Signals, withBackup: boolean): boolean {
  if (!run.caught) return false
  const names = readdirSync(run.dir).sort()
  const content = readFileSync(run.file, 'utf8')
  assert.ok(
    run.signal === signal || run.exitCode === 128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1),
    `ended by ${signal}: ${run.signal ?? run.exitCode}\n${run.stderr}`,
  )
  assert.ok(!names.includes('config.lock'), `no lock left: ${names.join(', ')}`)
  assert.deepEqual(names.filter(isTemp), [], 'no temporary file left')
  if (content === KUBECONFIG) {
    assert.deepEqual(names, ['config'], 'no backup left of a write that did not happen')
    assert.match(run.stderr, new RegExp(`^error: interrupted by ${signal}: kubeconfig .*/config was not changed$`, 'm'))
    return true
  }
  assert.equal(content, REWRITTEN, 'the kubeconfig is never half-written')
  if (withBackup) assert.equal(names.filter((n) => n.includes('.karp-backup-')).length, 1)
  return false
}

describe('kubeconfig rewrite interrupted mid-write (real process, real signals)', () => {
  it('SIGTERM during the write, with a backup: the file as it was, no lock, no temporary file, no backup', async () => {
    await interruptBeforeRename([], 'SIGTERM')
  })

  it('SIGINT (Ctrl-C) during the write, --no-backup: the same', async () => {
    await interruptBeforeRename(['--no-backup'], 'SIGINT')
  })

  it('SIGHUP (the terminal closed) during the write: the same', async () => {
    await interruptBeforeRename([], 'SIGHUP')
  })

  it('SIGKILL leaves its lock: the next run calls it stale, names the dead process, and gives the rm command that frees it', async (t) => {
    let run: Interrupted | undefined
    for (let attempt = 1; attempt <= ATTEMPTS && !run?.caught; attempt++) {
      if (run) rmSync(run.dir, {recursive: true, force: true})
      run = await interruptMidWrite(['--no-backup'], 'SIGKILL')
    }
    assert.ok(run?.caught, `no run out of ${ATTEMPTS} was frozen mid-write`)
    const {dir} = run
    t.after(() => rmSync(dir, {recursive: true, force: true}))
    assert.equal(run.signal, 'SIGKILL')
    assert.equal(readFileSync(run.file, 'utf8'), KUBECONFIG, 'killed before its rename: the file as it was')
    assert.ok(readdirSync(run.dir).includes('config.lock'))

    const refused = await karp(['kubeconfig', 'rewrite', '--kubeconfig', run.file, '--vip', VIP, '--force', '--no-verify', '--no-backup'])
    assert.equal(refused.exitCode, 4, refused.stderr)
    assert.match(
      refused.stderr,
      new RegExp(
        `^error: .*/config\\.lock is stale: process ${run.pid}, which created it \\d+ s ago, is no longer running, so nothing is writing .*/config; remove the lock: rm -- '.*/config\\.lock'$`,
        'm',
      ),
    )
    assert.equal(readFileSync(run.file, 'utf8'), KUBECONFIG)

    const command = /rm -- '[^']*'/.exec(refused.stderr)?.[0] ?? ''
    execFileSync('sh', ['-c', command])
    const again = await karp(['kubeconfig', 'rewrite', '--kubeconfig', run.file, '--vip', VIP, '--force', '--no-verify', '--no-backup'])
    assert.equal(again.exitCode, 0, again.stderr)
    assert.equal(readFileSync(run.file, 'utf8'), REWRITTEN)
  })
})
