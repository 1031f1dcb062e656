import assert from 'node:assert/strict'
import {execFileSync, spawn, spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {
  chmodSync,
  chownSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import {hostname} from 'node:os'
import {basename, dirname, join} from 'node:path'
import {describe, it} from 'node:test'
import {fileURLToPath} from 'node:url'

import {parse} from 'yaml'

import {ExitCode} from '../../src/lib/errors.js'
import {assertMatchesSchema} from '../helpers/json-schema.js'
import {rejectsWithKarpError} from '../helpers/karp-error.js'
import {readKubeconfig} from '../../src/lib/kubeconfig/parse.js'
import {commitRewrite, type RewriteOptions, rewriteKubeconfig} from '../../src/lib/kubeconfig/rewrite.js'
import {planRewrite, selectRewrite} from '../../src/lib/kubeconfig/rewrite-plan.js'
import {backupPath, type BeforeRename, commitKubeconfig, resolveWriteTarget} from '../../src/lib/kubeconfig/safe-write.js'
import {changedLines, fixtureText, strayFiles, tempCopies, tempDir} from '../fixtures/kubeconfig/harness.js'

const VIP = '192.168.1.250'
const NOW = new Date('2026-11-26T18:45:48.123Z')
const isRoot = process.getuid?.() === 0

// The certificate check and the verify step have their own suite (kubeconfig-check); here they are off, so
// nothing leaves this machine's filesystem.
const rejects = (promise: Promise<unknown>, exitCode: number, message: RegExp) =>
  rejectsWithKarpError(promise, exitCode, message, {oneLine: true})

function rewrite(options: RewriteOptions) {
  return rewriteKubeconfig({vip: VIP, force: true, verify: false, env: {}, ...options})
}

/** The plan for pointing the file's current context at the VIP, from its content as it is now. */
function planFor(file: string, vip = VIP) {
  const files = [readKubeconfig(file)]
  const plan = planRewrite(files, selectRewrite(files, {}), {vip})
  assert.ok(plan.edit, `${file} already points at ${vip}`)
  return {...plan, edit: plan.edit}
}

/** The rewrite's commit step on a real file, its backup named for `at`. */
const commitAt = (file: string, at: Date, vip = VIP) => commitRewrite(planFor(file, vip), resolveWriteTarget(file), {backupAt: at})

/** The planned write through safe-write, which runs `beforeRename` between writing the temporary file and renaming it. */
function writeWith(file: string, beforeRename: BeforeRename, options: {vip?: string; backupAt?: Date} = {}) {
  const {edit} = planFor(file, options.vip)
  return commitKubeconfig(resolveWriteTarget(file), Buffer.from(edit.text, 'utf8'), edit.file.bytes, {
    backupAt: options.backupAt,
    beforeRename,
  })
}

/** Every backup name a write that ran between these times may have chosen (named to the second). */
function backupNamesBetween(file: string, from: Date, to: Date): string[] {
  const names: string[] = []
  for (let t = Math.floor(from.getTime() / 1000) * 1000; t <= to.getTime(); t += 1000) names.push(backupPath(file, new Date(t)))
  return names
}

describe('rewrite: safe write', () => {
  it('changes one line, keeps mode and owner, and leaves a backup with the same bytes, mode and owner', async () => {
    const t = tempCopies('k3s.yaml')
    const file = t.path('k3s.yaml')
    chmodSync(file, 0o600)
    if (isRoot) chownSync(file, 1234, 5678)
    const original = readFileSync(file)
    const started = new Date()
    const result = await rewrite({kubeconfig: file})
    const ended = new Date()
    assert.deepEqual(changedLines(original.toString(), readFileSync(file, 'utf8')), {
      removed: ['    server: https://127.0.0.1:6443'],
      added: [`    server: https://${VIP}:6443`],
    })
    assert.ok(
      result.backup && backupNamesBetween(file, started, ended).includes(result.backup),
      `${result.backup} is named for the time of the write`,
    )
    assert.deepEqual(readFileSync(result.backup), original)
    for (const path of [file, result.backup]) {
      const stat = statSync(path)
      assert.equal(stat.mode & 0o7777, 0o600, path)
      if (isRoot) assert.deepEqual([stat.uid, stat.gid], [1234, 5678], path)
    }
    assert.deepEqual(strayFiles(t.dir, ['k3s.yaml', basename(result.backup)]), [], 'no temporary or lock file left')
    assert.deepEqual(
      {...result, warnings: undefined},
      {
        file,
        target: file,
        context: 'default',
        cluster: 'default',
        oldServer: 'https://127.0.0.1:6443',
        newServer: `https://${VIP}:6443`,
        backup: result.backup,
        verified: false,
        changed: true,
        dryRun: false,
        diff: null,
        basedOn: null,
        warnings: undefined,
        exitCode: 0,
      },
    )
    assert.deepEqual(result.warnings, ['certificate check skipped (--force)'])
    const keys = [
      'file',
      'target',
      'context',
      'cluster',
      'oldServer',
      'newServer',
      'backup',
      'verified',
      'changed',
      'dryRun',
      'diff',
      'basedOn',
      'warnings',
      'exitCode',
    ]
    assert.deepEqual(Object.keys(result), keys, 'the order --json prints')
  })

  it('names the backup <file>.karp-backup-<UTC time>, and numbers a second backup in the same second instead of overwriting the first', async () => {
    const t = tempCopies('kubeadm-admin.conf')
    const file = t.path('kubeadm-admin.conf')
    const first = await commitAt(file, NOW)
    assert.equal(first.backup, `${file}.karp-backup-20261126T184548Z`)
    const second = await commitAt(file, NOW, '192.168.1.251')
    assert.equal(second.backup, `${first.backup}-2`)
    assert.match(readFileSync(second.backup ?? '', 'utf8'), /server: https:\/\/192\.168\.1\.250:6443/)
  })

  it('--no-backup writes no backup', async () => {
    const t = tempCopies('kubeadm-admin.conf')
    const result = await rewrite({kubeconfig: t.path('kubeadm-admin.conf'), backup: false})
    assert.equal(result.backup, null)
    assert.deepEqual(strayFiles(t.dir, ['kubeadm-admin.conf']), [])
  })

  it('writes a symlinked kubeconfig through to its target; the link stays a link', async () => {
    const t = tempCopies('rke-kube_config_cluster.yml')
    const target = t.path('rke-kube_config_cluster.yml')
    const linkDir = tempDir()
    const link = join(linkDir, 'config')
    symlinkSync(target, link)
    const result = await rewrite({kubeconfig: link})
    assert.ok(lstatSync(link).isSymbolicLink())
    assert.equal(result.file, link)
    assert.equal(result.target, target)
    assert.match(readFileSync(target, 'utf8'), /server: "https:\/\/192\.168\.1\.250:6443"/)
    assert.equal(dirname(result.backup ?? ''), t.dir, 'the backup sits beside the target')
    assert.deepEqual(strayFiles(linkDir, ['config']), [])
  })

  it('refuses a read-only file (mode 0444), even as root: nothing changed, nothing left behind', async () => {
    const t = tempCopies('k3s.yaml')
    const file = t.path('k3s.yaml')
    chmodSync(file, 0o444)
    await rejects(rewrite({kubeconfig: file}), ExitCode.usage, /^kubeconfig .*k3s\.yaml is read-only \(mode 0444\); nothing was changed$/)
    assert.equal(readFileSync(file, 'utf8'), fixtureText('k3s.yaml'))
    assert.deepEqual(strayFiles(t.dir, ['k3s.yaml']), [])
  })

  it('refuses a read-only directory (mode 0555): the backup and temporary file go beside the kubeconfig', async () => {
    const t = tempCopies('k3s.yaml')
    chmodSync(t.dir, 0o555)
    try {
      await rejects(
        rewrite({kubeconfig: t.path('k3s.yaml')}),
        ExitCode.usage,
        /^directory .* of kubeconfig .*k3s\.yaml is read-only \(mode 0555\)/,
      )
      assert.equal(readFileSync(t.path('k3s.yaml'), 'utf8'), fixtureText('k3s.yaml'))
      assert.deepEqual(strayFiles(t.dir, ['k3s.yaml']), [])
    } finally {
      chmodSync(t.dir, 0o755)
    }
  })

  it('stops without writing when the file changes between read and rename (exit 4), and removes its backup', async () => {
    const t = tempCopies('k3s.yaml')
    const file = t.path('k3s.yaml')
    const theirs = fixtureText('k3s.yaml').replace('current-context: default', 'current-context: theirs')
    let calls = 0
    const error = await rejects(
      writeWith(file, (path) => (calls++, writeFileSync(path, theirs)), {backupAt: NOW}),
      ExitCode.checkFailed,
      /k3s\.yaml changed on disk after karp read it \(another program wrote it\); nothing was written$/,
    )
    assert.equal(calls, 1)
    assert.match(error.hint ?? '', /run the command again/)
    assert.equal(readFileSync(file, 'utf8'), theirs)
    assert.deepEqual(strayFiles(t.dir, ['k3s.yaml']), [], 'no backup, temporary or lock file')
  })

  it('stops without writing when the file changed after the edit was planned from it (exit 4)', async () => {
    const t = tempCopies('k3s.yaml')
    const file = t.path('k3s.yaml')
    const plan = planFor(file)
    const theirs = fixtureText('k3s.yaml').replace('current-context: default', 'current-context: theirs')
    writeFileSync(file, theirs)
    await rejects(
      commitRewrite(plan, resolveWriteTarget(file), {backupAt: NOW}),
      ExitCode.checkFailed,
      /k3s\.yaml changed on disk after karp read it \(another program wrote it\); nothing was written$/,
    )
    assert.equal(readFileSync(file, 'utf8'), theirs)
    assert.deepEqual(strayFiles(t.dir, ['k3s.yaml']), [], 'no backup, temporary or lock file')
  })

  it('stops when the file disappears between read and rename', async () => {
    const t = tempCopies('k3s.yaml')
    const file = t.path('k3s.yaml')
    await rejects(
      writeWith(file, (path) => rmSync(path), {backupAt: NOW}),
      ExitCode.checkFailed,
      /disappeared on disk/,
    )
    assert.ok(!existsSync(file))
    assert.deepEqual(strayFiles(t.dir, []), [])
  })

  it('waits for nobody: a fresh kubectl lock file (<file>.lock, empty) means someone is writing it (exit 4)', async () => {
    const t = tempCopies('k3s.yaml')
    const file = t.path('k3s.yaml')
    writeFileSync(`${file}.lock`, '')
    const error = await rejects(
      rewrite({kubeconfig: file}),
      ExitCode.checkFailed,
      /k3s\.yaml\.lock exists: kubectl or another program is writing .*k3s\.yaml right now \(the lock is \d+ s old\); nothing was changed$/,
    )
    assert.match(error.hint ?? '', /run the command again in a moment; a lock older than 60 s is stale: rm -- '.*k3s\.yaml\.lock'$/)
    assert.equal(readFileSync(file, 'utf8'), fixtureText('k3s.yaml'))
    assert.deepEqual(strayFiles(t.dir, ['k3s.yaml', 'k3s.yaml.lock']), [])
  })

  it('warns that a hard-linked file is replaced, not edited in place', async () => {
    const t = tempCopies('k3s.yaml')
    linkSync(t.path('k3s.yaml'), join(t.dir, 'other-name'))
    const result = await rewrite({kubeconfig: t.path('k3s.yaml')})
    assert.match(result.warnings.join('\n'), /has 2 hard links/)
  })
})

/** Runs the command a refusal told the user to run, exactly as given, in a shell. */
function runAsTold(message: string): void {
  const command = /rm -- '[^']*'/.exec(message)?.[0]
  assert.ok(command, `no rm command in: ${message}`)
  execFileSync('sh', ['-c', command])
}

describe("rewrite: kubectl's lock (<file>.lock)", () => {
  it('holds the lock with its pid and host while writing, and removes it after', async () => {
    const t = tempCopies('k3s.yaml')
    const file = t.path('k3s.yaml')
    let lock: string | undefined
    await writeWith(file, () => void (lock = readFileSync(`${file}.lock`, 'utf8')), {backupAt: NOW})
    assert.equal(lock, `${process.pid} ${hostname()}\n`)
    assert.ok(!existsSync(`${file}.lock`))
  })

  it('a lock whose process is gone is stale: the message says so and gives the exact rm command, which works', async () => {
    const t = tempCopies('k3s.yaml')
    const file = t.path('k3s.yaml')
    const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], {encoding: 'utf8'})
    const pid = Number(dead.stdout.trim())
    writeFileSync(`${file}.lock`, `${pid} ${hostname()}\n`)
    const error = await rejects(
      rewrite({kubeconfig: file}),
      ExitCode.checkFailed,
      new RegExp(
        `k3s\\.yaml\\.lock is stale: process ${pid}, which created it \\d+ s ago, is no longer running, so nothing is writing .*k3s\\.yaml; remove the lock: rm -- '.*k3s\\.yaml\\.lock'$`,
      ),
    )
    assert.match(error.hint ?? '', /nothing was changed/)
    assert.equal(readFileSync(file, 'utf8'), fixtureText('k3s.yaml'))
    runAsTold(error.message)
    assert.deepEqual(strayFiles(t.dir, ['k3s.yaml']), [])
    assert.equal((await rewrite({kubeconfig: file, backup: false})).changed, true)
  })

  it('a lock whose process still runs is a live writer: try again, not rm', async () => {
    const t = tempCopies('k3s.yaml')
    const file = t.path('k3s.yaml')
    const writer = spawn('sleep', ['60'])
    try {
      writeFileSync(`${file}.lock`, `${writer.pid} ${hostname()}\n`)
      // Old enough to be stale by age: a running process still wins.
      const old = new Date(Date.now() - 3600_000)
      utimesSync(`${file}.lock`, old, old)
      const error = await rejects(
        rewrite({kubeconfig: file}),
        ExitCode.checkFailed,
        new RegExp(
          `k3s\\.yaml is being written by process ${writer.pid}, which holds .*k3s\\.yaml\\.lock \\(for 3600 s\\) and is still running; nothing was changed$`,
        ),
      )
      assert.match(
        error.hint ?? '',
        new RegExp(
          `^run the command again when it has finished; if process ${writer.pid} is not kubectl or karp, the lock is stale: rm -- `,
        ),
      )
      assert.doesNotMatch(error.message, /stale/)
    } finally {
      writer.kill()
    }
  })

  it('an empty lock (kubectl makes it so) older than a minute is stale by age: the exact rm command', async () => {
    const t = tempCopies('k3s.yaml')
    const file = t.path('k3s.yaml')
    writeFileSync(`${file}.lock`, '')
    const old = new Date(Date.now() - 5 * 60_000)
    utimesSync(`${file}.lock`, old, old)
    const error = await rejects(
      rewrite({kubeconfig: file}),
      ExitCode.checkFailed,
      /k3s\.yaml\.lock is stale: kubectl or another program created it 300 s ago, and kubectl and karp hold their lock only while writing the file \(well under a second\); remove the lock: rm -- '.*k3s\.yaml\.lock'$/,
    )
    assert.equal(readFileSync(file, 'utf8'), fixtureText('k3s.yaml'))
    runAsTold(error.message)
    assert.equal((await rewrite({kubeconfig: file, backup: false})).changed, true)
  })

  it('a lock from another host is judged by age, naming the host', async () => {
    const t = tempCopies('k3s.yaml')
    const file = t.path('k3s.yaml')
    writeFileSync(`${file}.lock`, '12345 some-other-host\n')
    await rejects(
      rewrite({kubeconfig: file}),
      ExitCode.checkFailed,
      /exists: process 12345 on host some-other-host is writing .* right now/,
    )
  })
})

/** The temporary names write-file-atomic 8 picks in this process: sha1(its path, pid, thread, call number). */
function writeFileAtomicNames(realPath: string, calls: number): string[] {
  // Its own __filename, as Node resolved it (node_modules may be a symlink); karp no longer depends on it.
  const library = join(realpathSync(fileURLToPath(new URL('../../node_modules', import.meta.url))), 'write-file-atomic', 'lib', 'index.js')
  return Array.from(
    {length: calls},
    (_, i) =>
      `${realPath}.${createHash('sha1')
        .update(library)
        .update(String(process.pid))
        .update('0')
        .update(String(i + 1))
        .digest()
        .readUInt32BE(0)}`,
  )
}

describe('rewrite: the temporary file', () => {
  it('has an unpredictable name, mode 0600 while it holds the new content, and the original mode after', async () => {
    const t = tempCopies('k3s.yaml')
    const file = t.path('k3s.yaml')
    chmodSync(file, 0o644)
    const seen: Array<{name: string; mode: number; content: string}> = []
    const look = () => {
      const name = strayFiles(t.dir, ['k3s.yaml', 'k3s.yaml.lock']).find((f) => !f.includes('.karp-backup-'))
      assert.ok(name, 'a temporary file exists while writing')
      seen.push({name, mode: statSync(join(t.dir, name)).mode & 0o7777, content: readFileSync(join(t.dir, name), 'utf8')})
    }
    await writeWith(file, look)
    await writeWith(file, look, {vip: '192.168.1.251'})
    for (const temp of seen) {
      assert.match(temp.name, /^k3s\.yaml\.karp-tmp-[A-Za-z0-9_-]{16}$/)
      assert.equal(temp.mode, 0o600, `${temp.name} is 0600 while it exists`)
    }
    assert.notEqual(seen[0]?.name, seen[1]?.name)
    assert.match(seen[1]?.content ?? '', /server: https:\/\/192\.168\.1\.251:6443/, 'written whole before the rename')
    assert.equal(statSync(file).mode & 0o7777, 0o644, 'the original mode is kept')
    assert.deepEqual(strayFiles(t.dir, ['k3s.yaml']), [])
  })

  it('never follows a symlink planted at a temporary name someone could predict', async () => {
    const t = tempCopies('k3s.yaml')
    const file = t.path('k3s.yaml')
    const attacker = tempDir()
    const planted = writeFileAtomicNames(file, 300)
    planted.forEach((name, i) => symlinkSync(join(attacker, `stolen-${i}`), name))
    await rewrite({kubeconfig: file})
    assert.deepEqual(readdirSync(attacker), [], 'no credential was written through a planted link')
    assert.ok(lstatSync(file).isFile(), 'the kubeconfig is still a regular file, not a planted link')
    assert.match(readFileSync(file, 'utf8'), /server: https:\/\/192\.168\.1\.250:6443/)
    for (const name of planted) assert.ok(lstatSync(name).isSymbolicLink())
  })

  it("backups are 0600 whatever the kubeconfig's mode, with its owner", async () => {
    const t = tempCopies('k3s.yaml')
    const file = t.path('k3s.yaml')
    chmodSync(file, 0o644)
    const result = await rewrite({kubeconfig: file})
    assert.equal(statSync(result.backup ?? '').mode & 0o7777, 0o600)
    assert.deepEqual(readFileSync(result.backup ?? ''), Buffer.from(fixtureText('k3s.yaml')))
  })
})

describe('rewrite: what it changes', () => {
  it('--dry-run returns a unified diff and writes nothing', async () => {
    const t = tempCopies('hand-written.yaml')
    const file = t.path('hand-written.yaml')
    const result = await rewrite({kubeconfig: file, dryRun: true})
    assertMatchesSchema('kubeconfig rewrite', result)
    assert.equal(result.dryRun, true)
    assert.equal(result.changed, true)
    assert.equal(result.backup, null)
    assert.match(result.diff ?? '', /^- {6}server: 'https:\/\/10\.10\.0\.11:6443' {3}# cp1 for now$/m)
    assert.match(result.diff ?? '', /^\+ {6}server: 'https:\/\/192\.168\.1\.250:6443' {3}# cp1 for now$/m)
    assert.match(result.diff ?? '', /^@@ -10,7 \+10,7 @@$/m)
    assert.equal(readFileSync(file, 'utf8'), fixtureText('hand-written.yaml'))
    assert.deepEqual(strayFiles(t.dir, ['hand-written.yaml']), [])
  })

  it('--dry-run on a read-only file shows the diff and warns that writing would fail', async () => {
    const t = tempCopies('k3s.yaml')
    chmodSync(t.path('k3s.yaml'), 0o400)
    const result = await rewrite({kubeconfig: t.path('k3s.yaml'), dryRun: true})
    assert.ok(result.diff)
    assert.match(result.warnings.join('\n'), /writing would fail: kubeconfig .* is read-only \(mode 0400\)/)
  })

  it('is a no-op (exit 0, no backup) when the server already is the VIP', async () => {
    const t = tempCopies('k3s.yaml')
    const file = t.path('k3s.yaml')
    await rewrite({kubeconfig: file, backup: false})
    const written = readFileSync(file)
    const mtime = statSync(file).mtimeMs
    const again = await rewrite({kubeconfig: file})
    assertMatchesSchema('kubeconfig rewrite', again)
    assert.equal(again.changed, false)
    assert.equal(again.backup, null)
    assert.equal(again.oldServer, again.newServer)
    assert.deepEqual(readFileSync(file), written)
    assert.equal(statSync(file).mtimeMs, mtime)
    assert.deepEqual(strayFiles(t.dir, ['k3s.yaml']), [])
  })

  it('keeps the port unless --port; an IPv6 server becomes the IPv4 VIP', async () => {
    const t = tempCopies('hand-written.yaml')
    const result = await rewrite({kubeconfig: t.path('hand-written.yaml'), context: 'edge', port: 443})
    assert.equal(result.oldServer, 'https://[fd00:10::11]:6443')
    assert.equal(result.newServer, `https://${VIP}:443`)
    assert.match(result.warnings.join('\n'), /the port changes from 6443 to 443/)
    assert.match(readFileSync(t.path('hand-written.yaml'), 'utf8'), /server: "https:\/\/192\.168\.1\.250:443"/)
  })

  it('warns when other contexts use the same cluster entry', async () => {
    const t = tempCopies('hand-written.yaml')
    const result = await rewrite({kubeconfig: t.path('hand-written.yaml'), context: 'lab'})
    assert.match(
      result.warnings.join('\n'),
      /cluster "lab" is also used by context "lab-readonly": it moves to the VIP too \(--new-context NAME leaves them alone\)/,
    )
  })

  it('--new-context adds a context and a cluster for the VIP and leaves the existing ones alone', async () => {
    const t = tempCopies('hand-written.yaml')
    const file = t.path('hand-written.yaml')
    const result = await rewrite({kubeconfig: file, context: 'lab', newContext: 'lab-vip'})
    assertMatchesSchema('kubeconfig rewrite', result)
    assert.deepEqual([result.context, result.cluster, result.basedOn], ['lab-vip', 'lab-vip', {context: 'lab', cluster: 'lab'}])
    const {removed, added} = changedLines(fixtureText('hand-written.yaml'), readFileSync(file, 'utf8'))
    assert.deepEqual(removed, [])
    assert.equal(added[0], '  - name: lab-vip')
    const config = parse(readFileSync(file, 'utf8')) as {
      clusters: Array<{name: string; cluster: Record<string, unknown>}>
      contexts: Array<{name: string; context: Record<string, unknown>}>
    }
    const lab = config.clusters.find((c) => c.name === 'lab')
    assert.deepEqual(config.clusters.find((c) => c.name === 'lab-vip')?.cluster, {...lab?.cluster, server: `https://${VIP}:6443`})
    assert.equal(lab?.cluster.server, 'https://10.10.0.11:6443')
    assert.deepEqual(config.contexts.find((c) => c.name === 'lab-vip')?.context, {
      cluster: 'lab-vip',
      user: 'admin',
      namespace: 'kube-system',
    })
    assert.doesNotMatch(result.warnings.join('\n'), /also used by/)

    const again = await rewrite({kubeconfig: file, context: 'lab', newContext: 'lab-vip'})
    assertMatchesSchema('kubeconfig rewrite', again)
    assert.equal(again.changed, false, 'the same --new-context again is a no-op')
    await rejects(
      rewrite({kubeconfig: file, context: 'lab', newContext: 'edge'}),
      ExitCode.usage,
      /^invalid --new-context "edge": a context named "edge" exists in .*; choose another name$/,
    )
    await rejects(rewrite({kubeconfig: file, newContext: ' x'}), ExitCode.usage, /^invalid --new-context " x": expected a non-empty name/)
  })

  it('refuses a server that goes through a proxy path', async () => {
    const dir = tempDir()
    const file = join(dir, 'config')
    writeFileSync(file, fixtureText('k3s.yaml').replace('https://127.0.0.1:6443', 'https://rancher.example.com/k8s/clusters/c-m-x1'))
    await rejects(
      rewrite({kubeconfig: file}),
      ExitCode.usage,
      /with path \/k8s\/clusters\/c-m-x1: it reaches the API server through a proxy/,
    )
  })
})

describe('rewrite: which file, which context (kubectl precedence)', () => {
  // a: sets current-context and defines the context, not its cluster; b: defines the cluster (and its own
  // current-context, which a's wins over); c: defines the same cluster again, shadowed by b.
  const a =
    'apiVersion: v1\nkind: Config\ncurrent-context: ctx-a\ncontexts:\n- context:\n    cluster: c1\n    user: u1\n  name: ctx-a\nusers:\n- name: u1\n  user:\n    token: t\n'
  const b =
    '# b: the clusters\napiVersion: v1\nkind: Config\ncurrent-context: ctx-b\nclusters:\n- cluster:\n    server: https://10.0.0.1:6443\n  name: c1\n- cluster:\n    server: https://10.0.0.2:6443\n  name: c2\ncontexts:\n- context:\n    cluster: c2\n    user: u1\n  name: ctx-b\n'
  const c =
    'clusters:\n- cluster:\n    server: https://10.9.9.9:6443\n  name: c1\ncontexts:\n- context:\n    cluster: nowhere\n    user: u1\n  name: ctx-lost\n'

  function files() {
    const dir = tempDir()
    const path = (n: string) => join(dir, n)
    writeFileSync(path('a'), a)
    writeFileSync(path('b'), b)
    writeFileSync(path('c'), c)
    return {dir, path, KUBECONFIG: [path('a'), path('b'), path('missing'), path('c')].join(':')}
  }

  it('rewrites the first file that defines the cluster of the current context, and no other', async () => {
    const f = files()
    const result = await rewrite({env: {KUBECONFIG: f.KUBECONFIG}})
    assert.deepEqual([result.file, result.context, result.cluster, result.oldServer], [f.path('b'), 'ctx-a', 'c1', 'https://10.0.0.1:6443'])
    assert.deepEqual(changedLines(b, readFileSync(f.path('b'), 'utf8')), {
      removed: ['    server: https://10.0.0.1:6443'],
      added: [`    server: https://${VIP}:6443`],
    })
    assert.equal(readFileSync(f.path('a'), 'utf8'), a)
    assert.equal(readFileSync(f.path('c'), 'utf8'), c)
  })

  it('--context picks another context; --kubeconfig overrides KUBECONFIG', async () => {
    const f = files()
    const result = await rewrite({env: {KUBECONFIG: f.KUBECONFIG}, context: 'ctx-b'})
    assert.deepEqual([result.file, result.cluster, result.oldServer], [f.path('b'), 'c2', 'https://10.0.0.2:6443'])
    const only = await rewrite({env: {KUBECONFIG: f.KUBECONFIG}, kubeconfig: f.path('c'), context: 'ctx-lost', dryRun: true}).catch(
      (e: Error) => e,
    )
    assert.match(
      String((only as Error).message),
      /context "ctx-lost" names cluster "nowhere", which no file defines \(.*\/c\); clusters: "c1"$/,
    )
  })

  it('falls back to ~/.kube/config', async () => {
    const home = tempDir()
    mkdirSync(join(home, '.kube'))
    writeFileSync(join(home, '.kube', 'config'), fixtureText('kubeadm-admin.conf'))
    const result = await rewrite({env: {HOME: home}})
    assert.equal(result.file, join(home, '.kube', 'config'))
  })

  it('errors list what exists', async () => {
    const f = files()
    await rejects(
      rewrite({env: {KUBECONFIG: f.KUBECONFIG}, context: 'nope'}),
      ExitCode.usage,
      /^invalid --context "nope": no such context in .*\/a, .*\/b, .*\/c; contexts: "ctx-a", "ctx-b", "ctx-lost"$/,
    )
    await rejects(
      rewrite({env: {KUBECONFIG: f.KUBECONFIG}, context: 'ctx-lost'}),
      ExitCode.usage,
      /names cluster "nowhere", which no file defines .*; clusters: "c1", "c2"$/,
    )
    const error = await rejects(rewrite({kubeconfig: f.path('c')}), ExitCode.usage, /sets no current-context$/)
    assert.match(error.hint ?? '', /pass --context, one of: "ctx-lost"/)
    await rejects(rewrite({env: {KUBECONFIG: join(f.dir, 'none')}}), ExitCode.usage, /none of the files in KUBECONFIG exists/)
    await rejects(rewrite({env: {HOME: tempDir()}}), ExitCode.usage, /no kubeconfig found at ~\/\.kube\/config/)
    await rejects(rewrite({kubeconfig: join(f.dir, 'none')}), ExitCode.usage, /^cannot read kubeconfig .*\/none: ENOENT$/)
  })

  it('a malformed file anywhere in the list stops everything before anything is written', async () => {
    const f = files()
    writeFileSync(f.path('c'), 'clusters:\n- name: c1\n  cluster: {server: [\n')
    await rejects(rewrite({env: {KUBECONFIG: f.KUBECONFIG}}), ExitCode.usage, /^kubeconfig .*\/c is not valid YAML: /)
    assert.equal(readFileSync(f.path('b'), 'utf8'), b)
    assert.deepEqual(strayFiles(f.dir, ['a', 'b', 'c']), [])
  })
})
