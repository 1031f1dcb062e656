import {accessSync, constants, mkdirSync, readFileSync, rmdirSync, type Stats, statSync, unlinkSync} from 'node:fs'
import {dirname, isAbsolute, resolve} from 'node:path'

import {parseDocument} from 'yaml'

import {readPasswordFile} from '../config/password-file.js'
import type {Checked} from '../config/validate.js'
import {STATIC_POD_LABEL} from '../constants.js'
import {echo} from '../echo.js'
import {UsageError} from '../errors.js'
import {placeFile} from '../kubeconfig/safe-write.js'

const octal = (mode: number) => `0${(mode & 0o7777).toString(8).padStart(3, '0')}`
const bad = <T>(flag: string, value: string, why: string): Checked<T> => ({ok: false, problem: `invalid --${flag} ${echo(value)}: ${why}`})

/** A manifest karp wrote is a few KB; anything far larger in its place is not one. */
const MANIFEST_READ_LIMIT = 1024 * 1024

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

/**
 * A path on this node that a hostPath volume names: absolute (Kubernetes refuses a relative one or ".."),
 * without control characters. `relativeFrom` resolves a relative path against this directory (for files
 * karp itself writes here); without it a relative path is refused.
 */
export function checkHostPath(flag: string, value: string, relativeFrom?: string): Checked<string> {
  if (value === '' || /[\p{Cc}]/u.test(value)) return bad(flag, value, 'expected a path without control characters')
  if (relativeFrom === undefined && !isAbsolute(value))
    return bad(flag, value, 'expected an absolute path on the node, such as /etc/kubernetes/pki/ca.crt')
  if (value.split('/').includes('..')) return bad(flag, value, 'a hostPath may not contain ".."; give the path without it')
  return {ok: true, value: resolve(relativeFrom ?? '/', value)}
}

/** Why a file could not be created under `dir` (its nearest existing ancestor must be a writable directory), or undefined. */
function whyNotCreatable(dir: string): string | undefined {
  let existing = dir
  let stat = statOrUndefined(existing)
  while (!stat && dirname(existing) !== existing) {
    existing = dirname(existing)
    stat = statOrUndefined(existing)
  }
  if (!stat?.isDirectory()) return `${existing} is not a directory`
  try {
    accessSync(existing, constants.W_OK)
  } catch (error) {
    return `directory ${existing} is not writable (${(error as NodeJS.ErrnoException).code})`
  }
  return undefined
}

/** Whether a check of the host file system could not even run (a permission, a loop): said as a problem, not a crash. */
function fileCheck<T>(flag: string, path: string, check: () => Checked<T> | Promise<Checked<T>>): Promise<Checked<T>> {
  return Promise.resolve()
    .then(check)
    .catch((error: unknown) => bad<T>(flag, path, `cannot check it: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`))
}

/** The password file: its password when it exists (and is private), undefined when bootstrap is to create it. */
export function inspectPasswordFile(path: string): Promise<Checked<string | undefined>> {
  return fileCheck('password-file', path, async () => {
    const stat = statOrUndefined(path)
    if (!stat) {
      const why = whyNotCreatable(dirname(path))
      return why ? bad('password-file', path, `it does not exist and cannot be created: ${why}`) : {ok: true, value: undefined}
    }
    if (!stat.isFile()) return bad('password-file', path, 'not a regular file')
    if ((stat.mode & 0o077) !== 0) {
      return bad(
        'password-file',
        path,
        `mode ${octal(stat.mode)} lets group or others read or change the CARP password; run chmod 600 ${path} (and on every node that has a copy)`,
      )
    }
    return readPasswordFile(path)
  })
}

/** Whether a file holds one Pod labelled as a karp static-pod agent. */
function isStaticPodManifest(bytes: Buffer): boolean {
  const document = parseDocument(bytes.toString('utf8'))
  if (document.errors.length > 0) return false
  try {
    const pod = document.toJS({maxAliasCount: 100}) as {kind?: unknown; metadata?: {labels?: Record<string, unknown>}} | null
    return pod?.kind === 'Pod' && pod.metadata?.labels?.[STATIC_POD_LABEL] === 'true'
  } catch {
    return false
  }
}

export type ManifestState = 'new' | 'unchanged' | 'replaced'

/**
 * What writing the manifest to `file` would do: create it, leave it (the same bytes), or replace an earlier
 * karp static pod manifest. Any other file there is refused: it belongs to someone else. `content` is
 * undefined when other flags are invalid: the checks still run, so every problem is reported at once.
 */
export function inspectManifestFile(file: string, content: Buffer | undefined): Promise<Checked<ManifestState>> {
  return fileCheck('manifest-dir', dirname(file), () => {
    const dir = dirname(file)
    const dirStat = statOrUndefined(dir)
    if (!dirStat) {
      const why = whyNotCreatable(dir)
      return why ? bad('manifest-dir', dir, `it does not exist and cannot be created: ${why}`) : {ok: true, value: 'new'}
    }
    if (!dirStat.isDirectory()) return bad('manifest-dir', dir, 'not a directory')
    const why = whyNotCreatable(dir)
    if (why) return bad('manifest-dir', dir, why)
    const stat = statOrUndefined(file)
    if (!stat) return {ok: true, value: 'new'}
    const foreign = bad<ManifestState>(
      'manifest-dir',
      dir,
      `${file} exists and is not a karp static pod manifest (label ${STATIC_POD_LABEL}: "true"); karp replaces only its own: choose another --name or move the file`,
    )
    if (!stat.isFile() || stat.size > MANIFEST_READ_LIMIT) return foreign
    const existing = readFileSync(file)
    if (content?.equals(existing)) return {ok: true, value: 'unchanged'}
    return isStaticPodManifest(existing) ? {ok: true, value: 'replaced'} : foreign
  })
}

/** mkdir -p with `mode`; returns the directories it created, outermost first, so a failure can take them back. */
function createDirectories(dir: string, mode: number, what: string): string[] {
  const missing: string[] = []
  for (let d = dir; !statOrUndefined(d); d = dirname(d)) missing.unshift(d)
  const created: string[] = []
  try {
    for (const d of missing) {
      mkdirSync(d, {mode})
      created.push(d)
    }
  } catch (error) {
    removeDirectories(created)
    const code = (error as NodeJS.ErrnoException).code
    throw new UsageError(
      `cannot create the directory of ${what}: ${code === 'ENOSPC' ? 'the disk is full (ENOSPC)' : code}; nothing was changed`,
    )
  }
  return created
}

function removeDirectories(created: string[]): void {
  for (const d of created.toReversed()) {
    try {
      rmdirSync(d)
    } catch {
      // Not empty or gone: someone else's now.
    }
  }
}

/** What was put on the host, so a later failure of the same run can take it back. */
export interface Written {
  undo(): void
}

/** Writes a new password file, mode 0600, its missing directories 0700; never over a file that appeared meanwhile. */
export async function createPasswordFile(path: string, password: string): Promise<Written> {
  const what = `password file ${path}`
  const created = createDirectories(dirname(path), 0o700, what)
  try {
    await placeFile(path, Buffer.from(`${password}\n`), {mode: 0o600, what, exclusive: true})
  } catch (error) {
    removeDirectories(created)
    throw error
  }
  return {
    undo: () => {
      try {
        unlinkSync(path)
      } catch {
        // Already gone.
      }
      removeDirectories(created)
    },
  }
}

/**
 * Writes the manifest, mode 0600 (the kubelet runs as root). A missing manifest directory is created 0755, as
 * the distributions create it: its parents (/etc/kubernetes) hold files that components running as other
 * users must reach.
 */
export async function writeManifestFile(file: string, content: Buffer): Promise<void> {
  const what = `static pod manifest ${file}`
  const created = createDirectories(dirname(file), 0o755, what)
  try {
    await placeFile(file, content, {mode: 0o600, what})
  } catch (error) {
    removeDirectories(created)
    throw error
  }
}
