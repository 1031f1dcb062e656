import {closeSync, constants, fstatSync, openSync, readSync, type Stats, statSync} from 'node:fs'

import {escapeControl} from '../echo.js'
import {UsageError} from '../errors.js'

/**
 * The most karp reads of one kubeconfig. Real ones are a few KB (a cluster, a user and a context with
 * embedded certificates is about 5 KB), so even hundreds of contexts stay far below this; anything larger
 * is the wrong file, and the YAML tree built from it costs many times its size in memory.
 */
export const MAX_KUBECONFIG_BYTES = 4 * 1024 * 1024

const MIB = 1024 * 1024

function kindOf(stat: Stats): string | undefined {
  if (stat.isFile()) return undefined
  if (stat.isDirectory()) return 'a directory'
  if (stat.isFIFO()) return 'a FIFO (named pipe)'
  if (stat.isSocket()) return 'a socket'
  if (stat.isCharacterDevice()) return 'a character device'
  if (stat.isBlockDevice()) return 'a block device'
  return 'not a regular file'
}

function refuseKind(path: string, kind: string): never {
  throw new UsageError(`kubeconfig ${escapeControl(path)} is ${kind}, not a regular file; pass the path of a kubeconfig file`)
}

/** size: what stat said; without it, the file held more than the cap although stat said less (it grew). */
function refuseSize(path: string, size?: number): never {
  const what = size === undefined ? 'holds more than' : `is ${(size / MIB).toFixed(1)} MiB, more than`
  throw new UsageError(
    `kubeconfig ${escapeControl(path)} ${what} the ${MAX_KUBECONFIG_BYTES / MIB} MiB karp reads (a kubeconfig is a few KB): is this the right file?`,
  )
}

/**
 * Reads one kubeconfig file, which must be a regular file of at most MAX_KUBECONFIG_BYTES: the type and
 * size are checked before reading, and the read stops there even if the file grows meanwhile. A FIFO,
 * a device, a socket or a directory is refused without blocking (opened non-blocking, judged by fstat of
 * what was opened). Every failure is one line naming the file (exit 2).
 */
export function readKubeconfigBytes(path: string): Buffer {
  const cannot = (error: unknown): never => {
    const e = error as NodeJS.ErrnoException
    throw new UsageError(`cannot read kubeconfig ${escapeControl(path)}: ${e.code ?? e.message}`)
  }
  let before: Stats
  try {
    before = statSync(path)
  } catch (error) {
    return cannot(error)
  }
  // A socket cannot be opened at all (ENXIO), so say what it is before trying.
  const kind = kindOf(before)
  if (kind) refuseKind(path, kind)
  if (before.size > MAX_KUBECONFIG_BYTES) refuseSize(path, before.size)

  let fd: number
  try {
    // O_NONBLOCK: if the path was swapped for a FIFO since the stat, opening it must not wait for a writer.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY)
  } catch (error) {
    return cannot(error)
  }
  try {
    const stat = fstatSync(fd)
    const openedKind = kindOf(stat)
    if (openedKind) refuseKind(path, openedKind)
    const chunks: Buffer[] = []
    const chunk = Buffer.alloc(64 * 1024)
    let total = 0
    for (;;) {
      let n: number
      try {
        n = readSync(fd, chunk, 0, chunk.length, null)
      } catch (error) {
        return cannot(error)
      }
      if (n === 0) return Buffer.concat(chunks, total)
      total += n
      // The size was checked, but a file can grow while it is read (or be a /proc-style file of size 0).
      if (total > MAX_KUBECONFIG_BYTES) refuseSize(path)
      chunks.push(Buffer.from(chunk.subarray(0, n)))
    }
  } finally {
    closeSync(fd)
  }
}
