// Every command that reads a kubeconfig, run as users run it (the built CLI), against files that are not
// kubeconfigs or that hold their secrets next to a syntax error: each must end at once with exit 2 and one
// line naming the file, and no secret on stdout or stderr. No control plane is needed: all of it happens
// before karp talks to any cluster.
import assert from 'node:assert/strict'
import {closeSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync} from 'node:fs'
import {createServer, type Server} from 'node:net'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {execa} from 'execa'

import {karp} from '../helpers/karp.js'
import {fixtureText, tempDir} from '../fixtures/kubeconfig/harness.js'

const VIP = '10.99.0.10'

/** Each command that loads a kubeconfig, with flags that get it as far as loading it. */
const COMMANDS: Array<[string, string[]]> = [
  ['status', ['status']],
  ['install', ['install', '--vip', VIP, '--yes']],
  ['uninstall', ['uninstall', '--yes']],
  ['check-cert', ['check-cert', '--vip', VIP]],
  ['kubeconfig rewrite', ['kubeconfig', 'rewrite', '--vip', VIP, '--force', '--no-verify']],
]

// A command that read the whole of an endless or huge file would hit this heap limit (or the deadline)
// instead of exiting 2: together they bound the memory and time each refusal may take.
const BOUNDED = {NODE_OPTIONS: '--max-old-space-size=256'}
const DEADLINE_MS = 30_000

async function run(args: string[]) {
  return karp(args, {env: BOUNDED, timeoutMs: DEADLINE_MS})
}

function assertOneLineExit2(result: {exitCode: number; stdout: string; stderr: string}, file: string, what: RegExp, label: string) {
  assert.equal(result.exitCode, 2, `${label}: exit code (stderr: ${result.stderr.slice(0, 500)})`)
  const lines = result.stderr.trimEnd().split('\n')
  assert.equal(lines.length, 1, `${label}: one line on stderr, got:\n${result.stderr.slice(0, 2000)}`)
  assert.ok(lines[0]?.startsWith('error: '), `${label}: ${lines[0]}`)
  assert.ok(lines[0]?.includes(file), `${label}: names ${file}: ${lines[0]}`)
  assert.match(lines[0] ?? '', what, label)
  assert.equal(result.stdout, '', `${label}: nothing on stdout`)
}

/** 60 MB of valid YAML shaped like a kubeconfig with an absurd preferences list. */
function writeHugeKubeconfig(path: string): void {
  const fd = openSync(path, 'w')
  try {
    writeSync(fd, `${fixtureText('k3s.yaml')}x-junk:\n`)
    const block = '  - "0123456789012345678901234567890123456789012345678901234567890123456789"\n'.repeat(10_000)
    for (let written = 0; written < 60 * 1024 * 1024; written += block.length) writeSync(fd, block)
  } finally {
    closeSync(fd)
  }
}

/** Billion laughs: a valid kubeconfig plus ten levels of nine aliases each, which expand to 10^9 strings. */
function aliasBomb(): string {
  const lines = ['x-a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
  for (let i = 1; i < 10; i++) lines.push(`x-a${i}: &a${i} [${Array.from({length: 9}, () => `*a${i - 1}`).join(',')}]`)
  return `${fixtureText('k3s.yaml')}${lines.join('\n')}\n`
}

describe('kubeconfig paths and contents that are not kubeconfigs: exit 2, one line, at once, for every command', () => {
  const dir = tempDir()
  const path = (name: string) => join(dir, name)
  let socketServer: Server | undefined

  before(async () => {
    await execa('mkfifo', [path('fifo')])
    mkdirSync(path('a-directory'))
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(path('socket'), resolve))
    socketServer = server
    writeHugeKubeconfig(path('huge.yaml'))
    writeFileSync(path('alias-bomb.yaml'), aliasBomb())
  })

  after(async () => {
    await new Promise<void>((resolve) => (socketServer ? socketServer.close(() => resolve()) : resolve()))
    rmSync(dir, {recursive: true, force: true})
  })

  const hostile: Array<{label: string; file: string; what: RegExp}> = [
    {
      label: 'a FIFO nothing writes (reading it would wait forever)',
      file: path('fifo'),
      what: /is a FIFO \(named pipe\), not a regular file/,
    },
    {label: '/dev/zero (endless)', file: '/dev/zero', what: /is a character device, not a regular file/},
    {label: 'a directory', file: path('a-directory'), what: /is a directory, not a regular file/},
    {label: 'a listening unix socket', file: path('socket'), what: /is a socket, not a regular file/},
    {label: 'a 60 MB file', file: path('huge.yaml'), what: /is 60\.\d MiB, more than the 4 MiB karp reads/},
    {label: 'a YAML alias bomb', file: path('alias-bomb.yaml'), what: /expands YAML aliases more than 100 times/},
  ]

  for (const [name, args] of COMMANDS) {
    for (const {label, file, what} of hostile) {
      it(`${name} --kubeconfig <${label}>`, async () => {
        assertOneLineExit2(await run([...args, '--kubeconfig', file]), file, what, `${name} on ${label}`)
      })
    }
  }

  it('KUBECONFIG listing a FIFO is refused the same way (status)', async () => {
    const result = await karp(['status'], {env: {...BOUNDED, KUBECONFIG: path('fifo')}, timeoutMs: DEADLINE_MS})
    assertOneLineExit2(result, path('fifo'), /is a FIFO/, 'status with KUBECONFIG=<fifo>')
  })
})

describe('a malformed kubeconfig never prints its secrets', () => {
  const SECRETS = ['SECRET-TOKEN-7d1f0c', 'SECRETKEYDATA4c2b9e', 'SECRET-PASSWORD-a93e', 'SECRETBLOCK5e8f1a']
  const head = [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: c',
    '  cluster:',
    '    server: https://127.0.0.1:6443',
    'contexts:',
    '- name: c',
    '  context: {cluster: c, user: u}',
    'current-context: c',
    'users:',
    '- name: u',
    '  user:',
  ].join('\n')
  const malformed: Array<[string, string]> = [
    // The parsers quote the lines around this error: the token and key above it, the password below.
    [
      'an unclosed flow sequence between the token, the key and the password',
      `${head}\n    token: ${SECRETS[0]}\n    client-key-data: ${SECRETS[1]}\n  bad: [unclosed\n    password: ${SECRETS[2]}\n`,
    ],
    // Here the parsers put part of the line into the reason itself ("...extra characters: |SECRET...").
    ['a value that starts like a block scalar header', `${head}\n    client-key-data: ${SECRETS[1]}\n    token: |${SECRETS[3]}\n`],
    // Duplicate keys: js-yaml quotes the lines around the second one.
    ['a duplicated key', `${head}\n    token: ${SECRETS[0]}\n    token: ${SECRETS[0]}\n    client-key-data: ${SECRETS[1]}\n`],
  ]
  const dir = tempDir()

  for (const [i, [label, text]] of malformed.entries()) {
    const file = join(dir, `malformed-${i}.yaml`)
    writeFileSync(file, text)
    for (const [name, args] of COMMANDS) {
      for (const json of [false, true]) {
        it(`${name}${json ? ' --json' : ''}: ${label}`, async () => {
          const result = await run([...args, '--kubeconfig', file, ...(json ? ['--json'] : [])])
          for (const secret of SECRETS) {
            assert.ok(!result.stdout.includes(secret), `stdout shows ${secret}:\n${result.stdout}`)
            assert.ok(!result.stderr.includes(secret), `stderr shows ${secret}:\n${result.stderr}`)
          }
          assert.equal(result.exitCode, 2, result.stderr)
          if (json) {
            const error = (result.json as {error?: {message?: string; exitCode?: number}}).error
            assert.equal(error?.exitCode, 2)
            assert.match(error?.message ?? '', /^kubeconfig .*malformed-\d\.yaml is not valid YAML: .* at line \d+, column \d+$/)
          } else {
            assertOneLineExit2(result, file, /is not valid YAML: .* at line \d+, column \d+$/, `${name}: ${label}`)
          }
        })
      }
    }
  }
})
