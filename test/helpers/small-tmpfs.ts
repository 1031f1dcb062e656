// A small tmpfs of its own for a test that needs a disk to run full: mounted for the test, then removed.
// Root mounts it; without root or the tools, the suites that need one skip (and fail under CI=true).
import assert from 'node:assert/strict'
import {execFileSync, spawnSync} from 'node:child_process'
import {mkdtempSync, rmdirSync, statfsSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {missingTools} from '../../lab/process.js'

export const PAGE = 4096

/** Why a small tmpfs cannot be mounted here, or false. Under CI=true a missing prerequisite fails the run instead. */
export function smallTmpfsSkipReason(what: string): string | false {
  const missing: string[] = []
  if (process.getuid?.() !== 0) missing.push('root (to mount a tmpfs)')
  missing.push(...missingTools(['mount', 'umount', 'unshare']))
  if (missing.length === 0) {
    const probe = mkdtempSync(join(tmpdir(), 'karp-full-disk-probe-'))
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'karp-probe', probe], {encoding: 'utf8'})
    if (mount.status !== 0) missing.push(`permission to mount a tmpfs (${mount.stderr.trim()})`)
    else spawnSync('umount', [probe])
    rmdirSync(probe)
  }
  if (missing.length === 0) return false
  const reason = `${what} need${what.endsWith('s') ? '' : 's'} ${missing.join(', ')}`
  if (process.env.CI === 'true') throw new Error(`CI=true and ${reason}`)
  return reason
}

export const availableBytes = (dir: string) => {
  const s = statfsSync(dir)
  return s.bavail * s.bsize
}

/** Runs fn on a fresh tmpfs of `pages` pages, mode 0700, unmounted and removed afterwards whatever happens. */
export async function onSmallTmpfs(pages: number, fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'karp-full-disk-'))
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${pages * PAGE},mode=0700`, 'karp-full-disk', dir])
  try {
    await fn(dir)
  } finally {
    execFileSync('umount', [dir])
    rmdirSync(dir)
  }
}

/** Fills the tmpfs with dir/filler until exactly `freePages` pages are left. */
export function fillLeaving(dir: string, freePages: number): void {
  writeFileSync(join(dir, 'filler'), Buffer.alloc(availableBytes(dir) - freePages * PAGE))
  assert.equal(availableBytes(dir), freePages * PAGE, 'the tmpfs has exactly the room the test means')
}
