import assert from 'node:assert/strict'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {unusedPort} from '../helpers/certs.js'
import {karp, karpOnTerminal} from '../helpers/karp.js'

// The built binary refuses bad input before it contacts anything: the kubeconfig points at a loopback port
// nothing listens on, so any command that got as far as the network would exit 3, not 2.
const kubeconfig = join(mkdtempSync(join(tmpdir(), 'karp-cli-input-')), 'kubeconfig')
writeFileSync(
  kubeconfig,
  `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:${await unusedPort()}"}}]
users: [{name: u, user: {token: not-used}}]
contexts: [{name: ctx, context: {cluster: c, user: u}}]
current-context: ctx
`,
)

const UNPRINTABLE = /(?![\t\n])\p{Cc}/u

function assertUsageError(run: {exitCode: number; stdout: string; stderr: string}, line: RegExp): void {
  assert.equal(run.exitCode, 2, run.stderr + run.stdout)
  const errors = run.stderr.split('\n').filter((l) => l.startsWith('error: '))
  assert.equal(errors.length, 1, run.stderr)
  assert.match(errors[0] as string, line)
  assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace')
  assert.doesNotMatch(run.stderr + run.stdout, UNPRINTABLE, 'no raw control characters')
}

const withCluster = (command: string[]) => [...command, '--kubeconfig', kubeconfig]

describe('-n/--name: every command refuses a bad value with exit 2, naming the flag', () => {
  const commands: string[][] = [
    ['uninstall', '--yes'],
    ['status'],
    ['check-cert'],
    ['install', '--vip', '10.0.0.5', '--yes'],
    ['render', '--vip', '10.0.0.5', '--password', 'x'],
  ]
  for (const command of commands) {
    for (const [flag, label] of [
      ['-n', 'namespace'],
      ['--namespace', 'namespace'],
      ['--name', 'name'],
    ] as const) {
      it(`${command[0]} ${flag} BAD`, async () => {
        const args = command[0] === 'render' ? command : withCluster(command)
        const run = await karp([...args, flag, 'BAD'])
        assertUsageError(run, new RegExp(`^error: invalid --${label} "BAD": expected a DNS label`))
      })
    }
  }
})

describe('--image, --interface, --timeout, --request-timeout through the binary', () => {
  const refused: Array<[string[], RegExp]> = [
    [
      ['render', '--vip', '10.0.0.5', '--password', 'x', '--image', 'agent$(reboot)'],
      /^error: invalid --image "agent\$\(reboot\)": expected an image reference/,
    ],
    [
      ['render', '--vip', '10.0.0.5', '--password', 'x', '--image', 'ghcr.io/agént:v1'],
      /^error: invalid --image "ghcr\.io\/agént:v1": expected an image reference .*printable ASCII/,
    ],
    [['render', '--vip', '10.0.0.5', '--password', 'x', '--image', 'agent;id'], /^error: invalid --image "agent;id"/],
    [
      ['render', '--vip', '10.0.0.5', '--password', 'x', '--interface', '-eth0'],
      /^error: invalid --interface "-eth0": .*not starting with "-"$/,
    ],
    [
      withCluster(['install', '--vip', '10.0.0.5', '--timeout', '0.4ms']),
      /^error: invalid --timeout "0\.4ms": expected a duration from 1s to 24h/,
    ],
    [withCluster(['install', '--vip', '10.0.0.5', '--timeout', '0.5s']), /^error: invalid --timeout "0\.5s"/],
    [withCluster(['uninstall', '--yes', '--timeout', '0.4ms']), /^error: invalid --timeout "0\.4ms"/],
    [withCluster(['status', '--timeout', '0']), /^error: invalid --timeout "0"/],
    [withCluster(['check-cert', '--timeout', '500ms']), /^error: invalid --timeout "500ms"/],
    [
      withCluster(['status', '--request-timeout', 'soon']),
      /^error: invalid --request-timeout "soon": expected a duration from 1s to 24h .*, or 0 for none$/,
    ],
    [withCluster(['install', '--vip', '10.0.0.5', '--request-timeout', '0.4ms']), /^error: invalid --request-timeout "0\.4ms"/],
    [withCluster(['uninstall', '--yes', '--request-timeout', '-1']), /^error: invalid --request-timeout "-1"/],
    [withCluster(['check-cert', '--request-timeout', '25h']), /^error: invalid --request-timeout "25h"/],
  ]
  for (const [args, line] of refused) {
    it(`exits 2 for ${args.filter((a) => a !== kubeconfig && a !== '--kubeconfig').join(' ')}`, async () =>
      assertUsageError(await karp(args), line))
  }

  it('echoes at most 60 characters of a long value, with its length, on one line', async () => {
    const run = await karp(['render', '--vip', '10.0.0.5', '--password', 'x', '--image', `${'a'.repeat(100_000)}:v1`])
    assertUsageError(run, /^error: invalid --image "a{60}…" \(100003 characters\): expected an image reference/)
    assert.ok(run.stderr.length < 500, `${run.stderr.length} characters on stderr`)
  })

  it("caps the echo of check-cert's --server and --ca-file too", async () => {
    const server = await karp(['check-cert', '--server', `${'h'.repeat(5000)}:x`, '--vip', '10.0.0.5'])
    assertUsageError(server, /^error: invalid --server "h{60}…" \(5002 characters\): /)
    const caFile = await karp(['check-cert', '--server', '127.0.0.1', '--vip', '10.0.0.5', '--ca-file', `/nonexistent/${'d'.repeat(5000)}`])
    assertUsageError(caFile, /^error: invalid --ca-file "\/nonexistent\/d{47}…" \(5013 characters\): cannot read it \(ENAMETOOLONG\)$/)
  })

  it('shows control characters in a value escaped, never raw', async () => {
    const run = await karp(['render', '--vip', '10.0.0.5', '--password', 'x', '--interface', 'e\x1b[2J\x1b]0;owned\x07'])
    assertUsageError(run, /^error: invalid --interface "e\\x1b\[2J\\x1b\]0;owned\\x07": /)
  })

  it('refuses every bad flag at once, before any network access', async () => {
    const run = await karp(
      withCluster(['install', '--vip', '10.0.0.5', '--image', 'a b', '--interface', '-x', '--timeout', '0.4ms', '--request-timeout', 'x']),
    )
    assert.equal(run.exitCode, 2, run.stderr)
    const flags = run.stderr
      .split('\n')
      .filter((l) => l.startsWith('error: '))
      .map((l) => l.split(' ')[2])
    assert.deepEqual(flags.sort(), ['--image', '--interface', '--request-timeout', '--timeout'])
  })
})

describe('a kubeconfig whose server is not an https URL', () => {
  const dir = mkdtempSync(join(tmpdir(), 'karp-cli-server-'))
  const cases: Array<[string, RegExp]> = [
    [
      'http://127.0.0.1:1',
      /^error: cluster "c" in .* has server "http:\/\/127\.0\.0\.1:1": karp talks to the API server over https only; expected https:\/\/HOST:PORT$/,
    ],
    ['ftp://127.0.0.1', /has server "ftp:\/\/127\.0\.0\.1": karp talks to the API server over https only/],
    ['not a url', /has server "not a url", which is not a URL; expected https:\/\/HOST:PORT$/],
  ]
  for (const [server, line] of cases) {
    it(`every cluster command refuses ${JSON.stringify(server)} with exit 2 before contacting it`, async () => {
      const file = join(dir, `kubeconfig-${cases.findIndex(([s]) => s === server)}`)
      writeFileSync(
        file,
        `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: ${JSON.stringify(server)}}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`,
      )
      for (const command of [['status'], ['install', '--vip', '10.0.0.5', '--yes'], ['uninstall', '--yes']]) {
        assertUsageError(await karp([...command, '--kubeconfig', file]), line)
      }
    })
  }
})

describe('a confirmation prompt on a real terminal', () => {
  it('answered "no", uninstall changes nothing and exits 0, saying so', async () => {
    const run = await karpOnTerminal(withCluster(['uninstall']), [[/Remove karp karp-system\/karp/, 'n']])
    assert.equal(run.exitCode, 0, run.output)
    assert.match(run.output, /cancelled; nothing was deleted/)
    assert.doesNotMatch(run.output, /error|Removing/)
  })
  it('interrupted with Ctrl-C, uninstall exits 130 as a shell expects, changing nothing', async () => {
    const run = await karpOnTerminal(withCluster(['uninstall']), [[/Remove karp karp-system\/karp/, '\x03']])
    assert.equal(run.exitCode, 130, run.output)
    assert.match(run.output, /interrupted; nothing was changed/)
    assert.doesNotMatch(run.output, /\n\s+at |Removing/)
  })
})
