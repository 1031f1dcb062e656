import {open} from 'node:fs/promises'
import type {Readable} from 'node:stream'

import {echo} from '../echo.js'
import {type Checked, MAX_PASSWORD_BYTES} from './validate.js'

/** Enough for any first line karp accepts; a file without a newline (e.g. /dev/zero) is not read further. */
const READ_LIMIT = 4096

const FLAG = 'password-file'

const bad = (path: string, why: string): Checked<string> => ({ok: false, problem: `invalid --${FLAG} ${echo(path)}: ${why}`})

/** Bytes up to the first newline (or READ_LIMIT), from a file descriptor's reads. */
async function firstLineOfFile(path: string): Promise<Buffer> {
  const file = await open(path, 'r')
  try {
    const chunks: Buffer[] = []
    let total = 0
    while (total < READ_LIMIT) {
      const {bytesRead, buffer} = await file.read(Buffer.alloc(READ_LIMIT - total), 0, READ_LIMIT - total, null)
      if (bytesRead === 0) break
      const chunk = buffer.subarray(0, bytesRead)
      chunks.push(chunk)
      total += bytesRead
      if (chunk.includes(0x0a)) break
    }
    return Buffer.concat(chunks)
  } finally {
    await file.close()
  }
}

/** The same from a stream (stdin), which is paused, not closed, once the line is in: a prompt may follow. */
function firstLineOfStream(stream: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let total = 0
    const finish = (error?: Error) => {
      stream.off('data', onData).off('end', onEnd).off('error', onError)
      stream.pause()
      if (error) reject(error)
      else resolve(Buffer.concat(chunks))
    }
    const onData = (chunk: Buffer | string) => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
      chunks.push(bytes)
      total += bytes.length
      if (bytes.includes(0x0a) || total >= READ_LIMIT) finish()
    }
    const onEnd = () => finish()
    const onError = (error: Error) => finish(error)
    stream.on('data', onData).on('end', onEnd).on('error', onError)
    stream.resume()
  })
}

const describeError = (error: NodeJS.ErrnoException) =>
  ({
    ENOENT: 'no such file',
    EACCES: 'permission denied',
    EISDIR: 'is a directory',
    ELOOP: 'too many symbolic links',
    ENOTDIR: 'a path component is not a directory',
  })[error.code ?? ''] ??
  error.code ??
  error.message

/**
 * The CARP password from the first line of a file, or of stdin for "-", so it need not be on the command
 * line. The same rule as --password (1 to 19 printable ASCII bytes); a trailing CR (a file saved on Windows)
 * is not part of it. A problem names the file and what is wrong with its first line, never its content.
 */
export async function readPasswordFile(path: string, stdin: Readable = process.stdin): Promise<Checked<string>> {
  let bytes: Buffer
  try {
    bytes = path === '-' ? await firstLineOfStream(stdin) : await firstLineOfFile(path)
  } catch (error) {
    return bad(path, `cannot read it: ${describeError(error as NodeJS.ErrnoException)}`)
  }
  const end = bytes.indexOf(0x0a)
  let line = end === -1 ? bytes : bytes.subarray(0, end)
  if (line.at(-1) === 0x0d) line = line.subarray(0, -1)
  const where = path === '-' ? 'the first line of stdin' : 'its first line'
  if (line.length === 0) return bad(path, `${where} is empty; expected the password, 1 to ${MAX_PASSWORD_BYTES} printable ASCII characters`)
  if (line.length > MAX_PASSWORD_BYTES)
    return bad(
      path,
      `${where} is ${end === -1 && line.length >= READ_LIMIT ? 'over ' : ''}${line.length} bytes long; ucarp accepts at most ${MAX_PASSWORD_BYTES}`,
    )
  if (!line.every((b) => b >= 0x20 && b <= 0x7e)) {
    return bad(path, `${where} holds a control or non-ASCII character; expected 1 to ${MAX_PASSWORD_BYTES} printable ASCII characters`)
  }
  return {ok: true, value: line.toString('ascii')}
}

/** --password-file, when given: the password it holds. It and --password are two ways to say one thing. */
export async function passwordFromFile(
  passwordFile: string | undefined,
  password: string | undefined,
  stdin?: Readable,
): Promise<Checked<string | undefined>> {
  if (passwordFile === undefined) return {ok: true, value: undefined}
  if (password !== undefined) return bad(passwordFile, 'cannot be combined with --password; give the password one way')
  return readPasswordFile(passwordFile, stdin)
}
