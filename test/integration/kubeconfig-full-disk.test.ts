// `karp kubeconfig rewrite` (the built CLI) on a real, small, nearly full tmpfs: whatever does not fit, the
// kubeconfig stays byte for byte as it was, nothing is left beside it (no partial backup, temporary file
// or lock), and the command says "disk full" naming the file, with a non-zero exit. Root mounts the tmpfs;
// each run happens in a fresh network namespace with no route anywhere, so a verify step that old code
// would reach after a bad write cannot send a packet off this machine.
import assert from 'node:assert/strict'
import {readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {execa} from 'execa'

import {karpBin} from '../helpers/karp.js'
import {fillLeaving, onSmallTmpfs, PAGE, smallTmpfsSkipReason} from '../helpers/small-tmpfs.js'
import {fixtureText} from '../fixtures/kubeconfig/harness.js'

const VIP = '10.99.0.10'

const skip = smallTmpfsSkipReason('the full-disk tests')

/** A real kubeconfig padded to about 40 KB (a long comment), so "too little room" can be several pages short. */
const KUBECONFIG = `${fixtureText('k3s.yaml')}# ${'padding '.repeat(5000)}\n`
const PAGES = Math.ceil(Buffer.byteLength(KUBECONFIG) / PAGE)

/** A fresh small tmpfs holding the kubeconfig and a filler that leaves exactly `freePages` pages free. */
async function onNearlyFullDisk(freePages: number, fn: (dir: string, file: string) => Promise<void>): Promise<void> {
  await onSmallTmpfs(PAGES * 4 + 8, async (dir) => {
    const file = join(dir, 'config')
    writeFileSync(file, KUBECONFIG, {mode: 0o600})
    fillLeaving(dir, freePages)
    await fn(dir, file)
  })
}

async function rewrite(file: string, flags: string[]) {
  const result = await execa(
    'unshare',
    ['--net', '--', process.execPath, karpBin, 'kubeconfig', 'rewrite', '--kubeconfig', file, '--vip', VIP, '--force', ...flags],
    {
      reject: false,
      stdin: 'ignore',
      env: {NO_COLOR: '1'},
      timeout: 60_000,
    },
  )
  return {exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr}
}

function assertNothingChanged(dir: string, file: string): void {
  assert.equal(readFileSync(file, 'utf8'), KUBECONFIG, 'the kubeconfig is byte for byte as it was')
  assert.deepEqual(readdirSync(dir).sort(), ['config', 'filler'], 'no partial backup, temporary file or lock is left')
}

/** With the room back, the same command works: nothing (a lock) was left to block it. */
async function assertWorksWithRoom(dir: string, file: string): Promise<void> {
  rmSync(join(dir, 'filler'))
  const again = await rewrite(file, ['--no-verify', '--no-backup'])
  assert.equal(again.exitCode, 0, again.stderr)
  assert.equal(readFileSync(file, 'utf8'), KUBECONFIG.replace('https://127.0.0.1:6443', `https://${VIP}:6443`))
}

describe('kubeconfig rewrite on a full disk (real tmpfs)', {skip}, () => {
  const cases: Array<{flags: string[]; freePages: number; what: string; message: RegExp}> = [
    {
      flags: ['--no-verify', '--no-backup'],
      freePages: PAGES - 1,
      what: 'the new content does not fit',
      message: /^error: cannot write kubeconfig \/.*\/config: the disk is full \(ENOSPC\); nothing was changed$/,
    },
    {
      flags: ['--no-backup'],
      freePages: PAGES - 1,
      what: 'the new content does not fit (verify on)',
      message: /^error: cannot write kubeconfig \/.*\/config: the disk is full \(ENOSPC\); nothing was changed$/,
    },
    {
      flags: ['--no-verify'],
      freePages: PAGES - 1,
      what: 'the backup does not fit',
      message: /^error: cannot write the backup of kubeconfig \/.*\/config: the disk is full \(ENOSPC\); nothing was changed$/,
    },
    {
      flags: [],
      freePages: 2 * PAGES - 1,
      what: 'the backup fits, the new content does not (verify on)',
      message: /^error: cannot write kubeconfig \/.*\/config: the disk is full \(ENOSPC\); nothing was changed$/,
    },
    {
      flags: ['--no-verify', '--no-backup'],
      freePages: 0,
      what: 'not even the lock fits',
      message: /^error: cannot write the lock \/.*\/config\.lock: the disk is full \(ENOSPC\); nothing was changed$/,
    },
  ]
  for (const {flags, freePages, what, message} of cases) {
    it(`${flags.join(' ') || '(backup and verify)'}: ${what} -> exit 2, "disk full", the file unchanged, nothing left`, async () => {
      await onNearlyFullDisk(freePages, async (dir, file) => {
        const result = await rewrite(file, flags)
        const lines = result.stderr.split('\n')
        assert.equal(result.exitCode, 2, result.stderr)
        assert.match(lines[0] ?? '', message, result.stderr)
        assert.match(result.stderr, /hint: free space on the filesystem of \/.*, then run again/)
        assertNothingChanged(dir, file)
        await assertWorksWithRoom(dir, file)
      })
    })
  }
})
