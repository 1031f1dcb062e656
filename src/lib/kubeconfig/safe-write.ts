import {
  accessSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fsyncSync,
  openSync,
  readFileSync,
  realpathSync,
  type Stats,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs'
import {dirname} from 'node:path'

import writeFileAtomic from 'write-file-atomic'

import {CheckFailedError, UsageError} from '../errors.js'

/** The file a kubeconfig path really is: symlinks resolved, so the write goes through to the target. */
export interface WriteTarget {
  /** The path as listed. */
  path: string
  /** The file written: the symlink's target, or path itself. */
  realPath: string
  dir: string
  stat: Stats
}

/** Called inside the write, after the temporary file exists and just before the on-disk check and rename. */
export type BeforeRename = (realPath: string) => void | Promise<void>

const mode = (stat: Stats) => stat.mode & 0o7777
const octal = (m: number) => `0${m.toString(8).padStart(3, '0')}`

function describe(target: WriteTarget): string {
  return target.realPath === target.path ? target.path : `${target.path} (a symlink to ${target.realPath})`
}

export function resolveWriteTarget(path: string): WriteTarget {
  let realPath: string
  try {
    realPath = realpathSync(path)
  } catch (error) {
    throw new UsageError(`cannot resolve kubeconfig ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
  }
  const stat = statSync(realPath)
  if (!stat.isFile()) throw new UsageError(`kubeconfig ${path} is not a regular file`)
  return {path, realPath, dir: dirname(realPath), stat}
}

/**
 * Refuses a file or directory that is read-only: without the owner's write bit (a choice someone made, which
 * root would otherwise override) or not writable at all (a read-only mount, permissions).
 */
export function checkWritable(target: WriteTarget): void {
  const hint = 'make it writable if you mean to change it, or see the change with --dry-run'
  if ((mode(target.stat) & 0o200) === 0) {
    throw new UsageError(`kubeconfig ${describe(target)} is read-only (mode ${octal(mode(target.stat))}); nothing was changed`, hint)
  }
  try {
    accessSync(target.realPath, constants.W_OK)
  } catch (error) {
    throw new UsageError(`kubeconfig ${describe(target)} is not writable (${(error as NodeJS.ErrnoException).code}); nothing was changed`, hint)
  }
  const dirStat = statSync(target.dir)
  const why = (mode(dirStat) & 0o200) === 0 ? `mode ${octal(mode(dirStat))}` : undefined
  let code: string | undefined
  try {
    accessSync(target.dir, constants.W_OK)
  } catch (error) {
    code = (error as NodeJS.ErrnoException).code
  }
  if (why || code) {
    throw new UsageError(
      `directory ${target.dir} of kubeconfig ${target.path} is read-only (${why ?? code}): karp writes the backup and a temporary file beside the kubeconfig; nothing was changed`,
      hint,
    )
  }
}

/** <name>.karp-backup-<UTC timestamp>, e.g. config.karp-backup-20261126T184548Z. */
export function backupPath(realPath: string, now: Date): string {
  return `${realPath}.karp-backup-${now.toISOString().replace(/\.\d+Z$/, 'Z').replaceAll(/[-:]/g, '')}`
}

/** Writes the original bytes beside the file, with its mode and owner; never overwrites an existing file. */
export function writeBackup(target: WriteTarget, bytes: Buffer, now: Date): string {
  const base = backupPath(target.realPath, now)
  for (let n = 1; ; n++) {
    const path = n === 1 ? base : `${base}-${n}`
    let fd: number
    try {
      // 0600 until the real mode is set: a kubeconfig holds credentials.
      fd = openSync(path, 'wx', 0o600)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST' && n < 100) continue
      throw new UsageError(`cannot write the backup ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; nothing was changed`)
    }
    try {
      for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done)
      try {
        fchownSync(fd, target.stat.uid, target.stat.gid)
      } catch (error) {
        // Only root can give a file away; anyone else keeps the backup as their own, with the same mode.
        if (process.getuid?.() === 0) throw error
      }
      fchmodSync(fd, mode(target.stat))
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    return path
  }
}

function fsyncDirectory(dir: string): void {
  let fd: number | undefined
  try {
    fd = openSync(dir, 'r')
    fsyncSync(fd)
  } catch {
    // Some filesystems cannot fsync a directory; the rename itself is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

/** kubectl's own lock (client-go clientcmd: <file>.lock, created exclusively while it writes the file). */
function takeLock(target: WriteTarget): () => void {
  const lock = `${target.realPath}.lock`
  let fd: number
  try {
    fd = openSync(lock, 'wx', 0o600)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new CheckFailedError(
        `${lock} exists: kubectl or karp is writing ${target.path} right now; nothing was changed`,
        'try again; if nothing is writing it, the lock is stale: delete it',
      )
    }
    throw new UsageError(`cannot create ${lock}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; nothing was changed`)
  }
  closeSync(fd)
  return () => {
    try {
      unlinkSync(lock)
    } catch {
      // Already gone: nothing to clean.
    }
  }
}

/**
 * Replaces the file's content atomically (write-file-atomic: temporary file in the same directory, fsync,
 * rename; mode and owner kept), then fsyncs the directory. Just before the rename the file is read again:
 * if it no longer holds `expected`, someone else wrote it, and nothing is written (exit 4).
 */
export async function replaceAtomically(target: WriteTarget, content: Buffer, expected: Buffer, beforeRename?: BeforeRename): Promise<void> {
  const release = takeLock(target)
  try {
    await writeFileAtomic(target.realPath, content, {
      mode: mode(target.stat),
      chown: {uid: target.stat.uid, gid: target.stat.gid},
      fsync: true,
      tmpfileCreated: async () => {
        await beforeRename?.(target.realPath)
        let now: Buffer | undefined
        try {
          now = readFileSync(target.realPath)
        } catch {
          now = undefined
        }
        if (!now?.equals(expected)) {
          throw new CheckFailedError(
            `kubeconfig ${describe(target)} ${now ? 'changed' : 'disappeared'} on disk after karp read it (another program wrote it); nothing was written`,
            'run the command again to edit its current content',
          )
        }
      },
    })
  } finally {
    release()
  }
  fsyncDirectory(target.dir)
}
