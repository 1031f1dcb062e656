import {randomBytes} from 'node:crypto'
import {
  accessSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  linkSync,
  fsyncSync,
  lstatSync,
  openSync,
  readSync,
  realpathSync,
  renameSync,
  type Stats,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs'
import {hostname} from 'node:os'
import {basename, dirname, join} from 'node:path'

import {escapeControl} from '../echo.js'
import {CheckFailedError, UsageError} from '../errors.js'
import {InterruptGuard} from './interrupt-guard.js'
import {readKubeconfigBytes} from './read-file.js'

/** The file a kubeconfig path really is: symlinks resolved, so the write goes through to the target. */
export interface WriteTarget {
  /** The path as listed. */
  path: string
  /** The file written: the symlink's target, or path itself. */
  realPath: string
  dir: string
  stat: Stats
}

/** Called inside the write, after the temporary file is written and just before the on-disk check and rename. */
export type BeforeRename = (realPath: string) => void | Promise<void>

const mode = (stat: Stats) => stat.mode & 0o7777
const octal = (m: number) => `0${m.toString(8).padStart(3, '0')}`
const shellQuote = (s: string) => `'${escapeControl(s).replaceAll("'", `'\\''`)}'`

function describe(target: WriteTarget): string {
  return target.realPath === target.path
    ? escapeControl(target.path)
    : `${escapeControl(target.path)} (a symlink to ${escapeControl(target.realPath)})`
}

export function resolveWriteTarget(path: string): WriteTarget {
  let realPath: string
  try {
    realPath = realpathSync(path)
  } catch (error) {
    throw new UsageError(
      `cannot resolve kubeconfig ${escapeControl(path)}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    )
  }
  const stat = statSync(realPath)
  if (!stat.isFile()) throw new UsageError(`kubeconfig ${escapeControl(path)} is not a regular file`)
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
    throw new UsageError(
      `kubeconfig ${describe(target)} is not writable (${(error as NodeJS.ErrnoException).code}); nothing was changed`,
      hint,
    )
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
      `directory ${escapeControl(target.dir)} of kubeconfig ${escapeControl(target.path)} is read-only (${why ?? code}): karp writes the backup and a temporary file beside the kubeconfig; nothing was changed`,
      hint,
    )
  }
}

/** <name>.karp-backup-<UTC timestamp>, e.g. config.karp-backup-20261126T184548Z. */
export function backupPath(realPath: string, now: Date): string {
  return `${realPath}.karp-backup-${now
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replaceAll(/[-:]/g, '')}`
}

/** Why a write failed, in words: a full disk and a full quota are said as such. */
function writeError(error: unknown): string {
  const e = error as NodeJS.ErrnoException
  if (e.code === 'ENOSPC') return 'the disk is full (ENOSPC)'
  if (e.code === 'EDQUOT') return 'the disk quota is exceeded (EDQUOT)'
  return e.code ?? e.message
}

/** A failure while writing beside the kubeconfig: one line naming what and why; the hint says what to do. */
function cannotWrite(what: string, target: Pick<WriteTarget, 'dir'>, error: unknown): UsageError {
  if (error instanceof UsageError) return error
  const full = ['ENOSPC', 'EDQUOT'].includes((error as NodeJS.ErrnoException).code ?? '')
  return new UsageError(
    `cannot write ${what}: ${writeError(error)}; nothing was changed`,
    full ? `free space on the filesystem of ${escapeControl(target.dir)}, then run again` : undefined,
  )
}

/** Writes every byte (write(2) may write fewer than asked: a short write is continued, never ignored). */
function writeAll(fd: number, bytes: Buffer): void {
  for (let done = 0; done < bytes.length;) {
    const n = writeSync(fd, bytes, done, bytes.length - done, done)
    if (n <= 0) throw new Error(`the file system took ${done} of ${bytes.length} bytes and no more`)
    done += n
  }
}

/** Whether the file behind fd holds exactly these bytes: what a later read will see, not what write() claimed. */
function holdsExactly(fd: number, bytes: Buffer): boolean {
  if (fstatSync(fd).size !== bytes.length) return false
  const back = Buffer.alloc(bytes.length)
  for (let done = 0; done < back.length;) {
    const n = readSync(fd, back, done, back.length - done, done)
    if (n <= 0) return false
    done += n
  }
  return back.equals(bytes)
}

/**
 * A file beside the target with an unpredictable name, created exclusively (never an existing file, never
 * through a symlink) with mode 0600 before any byte of it is written, filled, flushed to disk and read back.
 * Returns its path and open descriptor; the caller gives it its final mode and name.
 */
function writeTempFile(
  target: Pick<WriteTarget, 'realPath' | 'dir'>,
  bytes: Buffer,
  guard: InterruptGuard,
  what: string,
): {path: string; fd: number} {
  const path = `${target.realPath}.karp-tmp-${randomBytes(12).toString('base64url')}`
  let fd: number
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
  } catch (error) {
    throw cannotWrite(`${what} (temporary file ${escapeControl(path)})`, target, error)
  }
  guard.track(path)
  try {
    writeAll(fd, bytes)
    fsyncSync(fd)
    if (!holdsExactly(fd, bytes)) {
      throw new Error('the temporary file does not read back as written (a full or failing disk?)')
    }
    return {path, fd}
  } catch (error) {
    closeSync(fd)
    removeQuietly(path)
    guard.untrack(path)
    throw cannotWrite(what, target, error)
  }
}

/** Gives the written temporary file the original's owner and mode, then flushes that too. */
function finishTempFile(fd: number, target: WriteTarget, fileMode: number): void {
  try {
    // Owner first: a change of owner clears the set-id bits a mode could carry.
    fchownSync(fd, target.stat.uid, target.stat.gid)
  } catch (error) {
    // Only root can give a file away; anyone else keeps it as their own, with the same mode.
    if (process.getuid?.() === 0) throw error
  }
  fchmodSync(fd, fileMode)
  fsyncSync(fd)
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path)
  } catch {
    // Already gone.
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

/**
 * A copy of the original beside it, mode 0600 (it holds credentials; `cp` onto the kubeconfig keeps the
 * kubeconfig's own mode) and the original's owner. Written whole as a temporary file first and renamed to
 * a free name, so a backup name never holds part of a file. Runs under the lock, so no other karp picks
 * the same name meanwhile.
 */
function writeBackup(target: WriteTarget, bytes: Buffer, now: Date, guard: InterruptGuard): string {
  const base = backupPath(target.realPath, now)
  const what = `the backup of kubeconfig ${describe(target)}`
  const temp = writeTempFile(target, bytes, guard, what)
  try {
    finishTempFile(temp.fd, target, 0o600)
  } catch (error) {
    removeQuietly(temp.path)
    guard.untrack(temp.path)
    throw cannotWrite(what, target, error)
  } finally {
    closeSync(temp.fd)
  }
  for (let n = 1; n <= 100; n++) {
    const path = n === 1 ? base : `${base}-${n}`
    try {
      lstatSync(path)
      continue
    } catch {
      // Free.
    }
    guard.track(path)
    try {
      renameSync(temp.path, path)
    } catch (error) {
      guard.untrack(path)
      removeQuietly(temp.path)
      guard.untrack(temp.path)
      throw cannotWrite(what, target, error)
    }
    guard.untrack(temp.path)
    return path
  }
  removeQuietly(temp.path)
  guard.untrack(temp.path)
  throw new UsageError(
    `cannot write ${what}: ${escapeControl(base)} and 99 numbered names after it exist; nothing was changed`,
    'remove old backups',
  )
}

/**
 * The age from which a lock without a live process of this host behind it is called stale. kubectl and
 * karp hold the lock only while writing one small file (milliseconds; karp's backup and read-back add
 * little), so a minute is far beyond any real write, yet short enough that the person who just met the
 * lock is not sent to wait for long. The message still says how to check for a stuck writer first.
 */
export const STALE_LOCK_AGE_MS = 60_000

interface LockInfo {
  pid?: number
  host?: string
  ageMs: number
}

/** What a lock file says about who made it (karp writes "<pid> <host>"; kubectl leaves it empty). */
function inspectLock(lock: string): LockInfo | undefined {
  let fd: number
  try {
    fd = openSync(lock, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW)
  } catch {
    // Gone (ENOENT), or not a file karp would read (a symlink): then only its age tells.
    try {
      return {ageMs: Math.max(0, Date.now() - lstatSync(lock).mtimeMs)}
    } catch {
      return undefined
    }
  }
  try {
    const stat = fstatSync(fd)
    const ageMs = Math.max(0, Date.now() - stat.mtimeMs)
    if (!stat.isFile()) return {ageMs}
    const buffer = Buffer.alloc(256)
    const text = buffer.subarray(0, readSync(fd, buffer, 0, buffer.length, 0)).toString('utf8')
    const match = /^(\d{1,10})(?:[ \t]+(\S{1,253}))?\s*$/.exec(text)
    return match ? {pid: Number(match[1]), host: match[2], ageMs} : {ageMs}
  } catch {
    return undefined
  } finally {
    closeSync(fd)
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it exists, as another user.
    return (error as NodeJS.ErrnoException).code !== 'ESRCH'
  }
}

/** The error for a lock that exists: a live writer (try again) or a stale lock (the exact command that removes it). */
function lockHeldError(target: WriteTarget, lock: string): CheckFailedError {
  const file = describe(target)
  const shown = escapeControl(lock)
  const rm = `rm -- ${shellQuote(lock)}`
  const info = inspectLock(lock)
  if (!info)
    return new CheckFailedError(
      `${shown} existed a moment ago: kubectl or karp was writing ${file}; nothing was changed`,
      'run the command again',
    )
  const age = `${Math.round(info.ageMs / 1000)} s`
  if (info.pid !== undefined && (info.host === undefined || info.host === hostname())) {
    if (!isRunning(info.pid)) {
      return new CheckFailedError(
        `${shown} is stale: process ${info.pid}, which created it ${age} ago, is no longer running, so nothing is writing ${file}; remove the lock: ${rm}`,
        'then run the command again; nothing was changed',
      )
    }
    return new CheckFailedError(
      `${file} is being written by process ${info.pid}, which holds ${shown} (for ${age}) and is still running; nothing was changed`,
      `run the command again when it has finished; if process ${info.pid} is not kubectl or karp, the lock is stale: ${rm}`,
    )
  }
  const who = info.pid === undefined ? 'kubectl or another program' : `process ${info.pid} on host ${info.host}`
  if (info.ageMs >= STALE_LOCK_AGE_MS) {
    return new CheckFailedError(
      `${shown} is stale: ${who} created it ${age} ago, and kubectl and karp hold their lock only while writing the file (well under a second); remove the lock: ${rm}`,
      `unless a kubectl or karp is stuck writing ${file}; then run the command again; nothing was changed`,
    )
  }
  return new CheckFailedError(
    `${shown} exists: ${who} is writing ${file} right now (the lock is ${age} old); nothing was changed`,
    `run the command again in a moment; a lock older than ${STALE_LOCK_AGE_MS / 1000} s is stale: ${rm}`,
  )
}

/**
 * Takes kubectl's own lock (client-go clientcmd: <file>.lock, created exclusively while it writes the
 * file), writing "<pid> <host>" into it so that a lock left by a killed karp can be told from a live one.
 */
function takeLock(target: WriteTarget, guard: InterruptGuard): () => void {
  const lock = `${target.realPath}.lock`
  let fd: number
  try {
    fd = openSync(lock, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw lockHeldError(target, lock)
    throw cannotWrite(`the lock ${escapeControl(lock)}`, target, error)
  }
  guard.track(lock)
  const release = () => {
    removeQuietly(lock)
    guard.untrack(lock)
  }
  try {
    writeAll(fd, Buffer.from(`${process.pid} ${hostname()}\n`))
  } catch (error) {
    release()
    throw cannotWrite(`the lock ${escapeControl(lock)}`, target, error)
  } finally {
    closeSync(fd)
  }
  return release
}

/** Replaces the file's content with a temporary file renamed over it, after checking that it still holds `expected`. */
async function replaceContent(
  target: WriteTarget,
  content: Buffer,
  expected: Buffer,
  guard: InterruptGuard,
  beforeRename?: BeforeRename,
): Promise<void> {
  const temp = writeTempFile(target, content, guard, `kubeconfig ${describe(target)}`)
  const discard = () => {
    removeQuietly(temp.path)
    guard.untrack(temp.path)
  }
  try {
    await beforeRename?.(target.realPath)
    let now: Buffer | undefined
    try {
      now = readKubeconfigBytes(target.realPath)
    } catch {
      now = undefined
    }
    if (!now?.equals(expected)) {
      throw new CheckFailedError(
        `kubeconfig ${describe(target)} ${now ? 'changed' : 'disappeared'} on disk after karp read it (another program wrote it); nothing was written`,
        'run the command again to edit its current content',
      )
    }
    try {
      finishTempFile(temp.fd, target, mode(target.stat))
    } catch (error) {
      throw cannotWrite(`kubeconfig ${describe(target)}`, target, error)
    }
  } catch (error) {
    closeSync(temp.fd)
    discard()
    throw error
  }
  closeSync(temp.fd)
  // The last moment a signal can still leave the file as it was.
  await guard.checkpoint()
  try {
    renameSync(temp.path, target.realPath)
  } catch (error) {
    discard()
    throw cannotWrite(`kubeconfig ${describe(target)}`, target, error)
  }
  guard.untrack(temp.path)
  fsyncDirectory(target.dir)
}

export interface CommitOptions {
  /** Keep a backup of `expected` named for this time (backupPath); none without it. */
  backupAt?: Date
  /** Test seam: runs once the temporary file is written, before the on-disk check and the rename. */
  beforeRename?: BeforeRename
}

/**
 * The one way karp changes a kubeconfig: under kubectl's lock, a backup of what it holds (optional), then
 * its new content written to a temporary file in the same directory (every byte, flushed, read back),
 * checked that the file still holds `expected`, and renamed over it; then the directory is flushed.
 * Any failure, and SIGINT/SIGTERM/SIGHUP before the rename, leave the kubeconfig byte for byte as it was
 * and nothing beside it (no lock, no temporary file, no backup). Returns the backup's path.
 */
export async function commitKubeconfig(
  target: WriteTarget,
  content: Buffer,
  expected: Buffer,
  options: CommitOptions = {},
): Promise<{backup: string | null}> {
  const guard = new InterruptGuard(`kubeconfig ${describe(target)} was not changed`)
  try {
    const release = takeLock(target, guard)
    try {
      const backup = options.backupAt ? writeBackup(target, expected, options.backupAt, guard) : null
      try {
        await replaceContent(target, content, expected, guard, options.beforeRename)
      } catch (error) {
        // Nothing was written: a backup of content that is still current would only mislead.
        if (backup) {
          removeQuietly(backup)
          guard.untrack(backup)
        }
        throw error
      }
      if (backup) guard.untrack(backup)
      guard.setState(
        `kubeconfig ${describe(target)} was already written${backup ? `; to undo: cp ${shellQuote(backup)} ${shellQuote(target.realPath)}` : ''}`,
      )
      return {backup}
    } finally {
      release()
    }
  } finally {
    await guard.close()
  }
}

/**
 * Puts a file that is not a kubeconfig in place the same way: a temporary file beside it (a hidden random
 * name, created exclusively, mode 0600 before any byte), written whole, flushed and read back, given `mode`, then
 * renamed over `path`; with `exclusive`, hard-linked to it instead, which fails rather than replace a file
 * that appeared there meanwhile. Any failure, and SIGINT/SIGTERM/SIGHUP before that last step, leave
 * nothing behind and `path` as it was. The file belongs to the user karp runs as.
 */
export async function placeFile(path: string, content: Buffer, options: {mode: number; what: string; exclusive?: boolean}): Promise<void> {
  const {what} = options
  const dir = dirname(path)
  // The temporary file's name starts with a dot: a kubelet reads every other file of its static pod directory.
  const target = {realPath: join(dir, `.${basename(path)}`), dir}
  const guard = new InterruptGuard(`${what} was not written`)
  try {
    const temp = writeTempFile(target, content, guard, what)
    const discard = () => {
      removeQuietly(temp.path)
      guard.untrack(temp.path)
    }
    try {
      fchmodSync(temp.fd, options.mode)
      fsyncSync(temp.fd)
    } catch (error) {
      discard()
      throw cannotWrite(what, target, error)
    } finally {
      closeSync(temp.fd)
    }
    // The last moment a signal can still leave nothing behind.
    await guard.checkpoint()
    try {
      if (options.exclusive) linkSync(temp.path, path)
      else renameSync(temp.path, path)
    } catch (error) {
      discard()
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new CheckFailedError(
          `${what} was created by another program while karp was writing it; nothing was changed`,
          'run the command again',
        )
      }
      throw cannotWrite(what, target, error)
    }
    guard.setState(`${what} was written`)
    discard()
    fsyncDirectory(target.dir)
  } finally {
    await guard.close()
  }
}
