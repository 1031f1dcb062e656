import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {open} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {PassThrough, Readable} from 'node:stream'
import {after, before, describe, it} from 'node:test'

import {execa} from 'execa'
import {parseAllDocuments} from 'yaml'

import {passwordFromFile, readPasswordFile} from '../../src/lib/config/password-file.js'
import {karpBin} from '../helpers/karp.js'

// Real files in a temp dir (a FIFO, a symlink, a directory, /dev/zero); stdin as a real stream.
describe('readPasswordFile', () => {
  let dir: string
  const file = (name: string, content: string | Buffer) => {
    const path = join(dir, name)
    writeFileSync(path, content)
    return path
  }
  before(() => (dir = mkdtempSync(join(tmpdir(), 'karp-pw-'))))
  after(() => rmSync(dir, {recursive: true, force: true}))

  it('takes the first line, without its newline or a Windows CR', async () => {
    assert.deepEqual(await readPasswordFile(file('plain', 's3cret')), {ok: true, value: 's3cret'})
    assert.deepEqual(await readPasswordFile(file('lines', 's3cret\nsecond line\n')), {ok: true, value: 's3cret'})
    assert.deepEqual(await readPasswordFile(file('crlf', 'with space ~!\r\n')), {ok: true, value: 'with space ~!'})
    assert.deepEqual(await readPasswordFile(file('max', `${'x'.repeat(19)}\n`)), {ok: true, value: 'x'.repeat(19)})
    const link = join(dir, 'link')
    symlinkSync(join(dir, 'plain'), link)
    assert.deepEqual(await readPasswordFile(link), {ok: true, value: 's3cret'})
  })

  it('reads stdin for "-", up to the first line, and leaves the rest unread', async () => {
    const stdin = new PassThrough()
    stdin.write('from-stdin\nnot this\n')
    assert.deepEqual(await readPasswordFile('-', stdin), {ok: true, value: 'from-stdin'})
    assert.deepEqual(await readPasswordFile('-', Readable.from([Buffer.from('pi'), Buffer.from('ped')])), {ok: true, value: 'piped'})
  })

  it('reads a FIFO, as process substitution gives one', async () => {
    const fifo = join(dir, 'fifo')
    execFileSync('mkfifo', [fifo])
    const writing = (async () => {
      const writer = await open(fifo, 'w')
      await writer.write('through-a-fifo\n')
      await writer.close()
    })()
    const [read] = await Promise.all([readPasswordFile(fifo), writing])
    assert.deepEqual(read, {ok: true, value: 'through-a-fifo'})
  })

  // Each file's content holds a marker that must not appear in the message.
  const refusals: Array<[string, () => string, RegExp]> = [
    ['an empty file', () => file('empty', ''), /: its first line is empty; expected the password, 1 to 19 printable ASCII characters$/],
    ['an empty first line', () => file('blank', '\nQw3rtyZ\n'), /: its first line is empty/],
    [
      'a line of 20 bytes',
      () => file('long', `Qw3rtyZ${'y'.repeat(13)}\n`),
      /: its first line is 20 bytes long; ucarp accepts at most 19$/,
    ],
    [
      'a control character',
      () => file('tab', 'Qw3rtyZ\tx\n'),
      /: its first line holds a control or non-ASCII character; expected 1 to 19 printable ASCII characters$/,
    ],
    ['non-ASCII', () => file('utf8', 'Qw3rtyZä\n'), /holds a control or non-ASCII character/],
    ['a missing file', () => join(dir, 'nope'), /: cannot read it: no such file$/],
    ['a directory', () => (mkdirSync(join(dir, 'sub'), {recursive: true}), join(dir, 'sub')), /: cannot read it: is a directory$/],
    ['an endless file without a newline', () => '/dev/zero', /: its first line is over 4096 bytes long; ucarp accepts at most 19$/],
  ]
  for (const [what, path, message] of refusals) {
    it(`refuses ${what}, naming the file and never its content`, async () => {
      const p = path()
      const checked = await readPasswordFile(p)
      assert.equal(checked.ok, false)
      const problem = checked.ok ? '' : checked.problem
      assert.ok(problem.startsWith(`invalid --password-file ${JSON.stringify(p)}: `), problem)
      assert.match(problem, message)
      assert.doesNotMatch(problem, /Qw3rty/)
    })
  }

  it('is one way of giving the password: with --password it is refused, unread', async () => {
    assert.deepEqual(await passwordFromFile(undefined, 'x'), {ok: true, value: undefined})
    assert.deepEqual(await passwordFromFile('/nonexistent', 'x'), {
      ok: false,
      problem: 'invalid --password-file "/nonexistent": cannot be combined with --password; give the password one way',
    })
  })

  it('shows a long path capped with its length, as every message shows a value', async () => {
    const checked = await readPasswordFile(`/no/such/${'d'.repeat(200)}`)
    assert.equal(checked.ok, false)
    assert.match(checked.ok ? '' : checked.problem, /^invalid --password-file "\/no\/such\/d{51}…" \(209 characters\): cannot read it/)
  })
})

// The built binary, as users run it, with a real file and a real stdin pipe.
describe('karp render --password-file (binary)', () => {
  let dir: string
  before(() => (dir = mkdtempSync(join(tmpdir(), 'karp-pw-cli-'))))
  after(() => rmSync(dir, {recursive: true, force: true}))

  const render = (args: string[], input?: string) =>
    execa(process.execPath, [karpBin, 'render', '--vip', '192.168.1.250', ...args], {
      reject: false,
      env: {NO_COLOR: '1'},
      timeout: 60_000,
      ...(input === undefined ? {stdin: 'ignore'} : {input}),
    })
  const secretOf = (stdout: string) => {
    const secret = parseAllDocuments(stdout)
      .map((d) => d.toJS() as {kind: string; data?: {password: string}})
      .find((o) => o.kind === 'Secret')
    return Buffer.from(secret?.data?.password ?? '', 'base64').toString()
  }

  it('renders the same objects as --password, from a file or from stdin', async () => {
    const path = join(dir, 'pw')
    writeFileSync(path, 'fr0m-a-file\n', {mode: 0o600})
    const fromFlag = await render(['--password', 'fr0m-a-file'])
    const fromFile = await render(['--password-file', path])
    const fromStdin = await render(['--password-file', '-'], 'fr0m-a-file\n')
    assert.equal(fromFile.exitCode, 0, fromFile.stderr)
    assert.equal(fromStdin.exitCode, 0, fromStdin.stderr)
    assert.equal(secretOf(fromFile.stdout), 'fr0m-a-file')
    assert.equal(fromFile.stdout, fromFlag.stdout)
    assert.equal(fromStdin.stdout, fromFlag.stdout)
    assert.doesNotMatch(fromFile.stderr, /random CARP password/)
  })

  it('exits 2 with one line naming the file, never the password, and prints nothing', async () => {
    const path = join(dir, 'long')
    writeFileSync(path, 'this-password-is-far-too-long\n')
    const run = await render(['--password-file', path])
    assert.equal(run.exitCode, 2)
    assert.equal(run.stdout, '')
    assert.equal(
      run.stderr,
      `error: invalid --password-file ${JSON.stringify(path)}: its first line is 29 bytes long; ucarp accepts at most 19\n`.trimEnd(),
    )
    const both = await render(['--password', 'x', '--password-file', path])
    assert.equal(both.exitCode, 2)
    assert.match(both.stderr, /^error: invalid --password-file ".*": cannot be combined with --password; give the password one way$/m)
    const empty = await render(['--password-file', '-'], '')
    assert.equal(empty.exitCode, 2)
    assert.match(empty.stderr, /^error: invalid --password-file "-": the first line of stdin is empty/m)
  })
})
