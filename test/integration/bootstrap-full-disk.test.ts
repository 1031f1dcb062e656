// `karp bootstrap` (the built CLI) on a real, small, nearly full tmpfs holding both the password file's
// directory and the manifest directory: whatever does not fit, nothing is left (no half-written or
// temporary file, no password file without its manifest, no directory it created), the command says
// "disk full" naming the file, exit 2; with the room back the same command works.
import assert from 'node:assert/strict'
import {readdirSync, readFileSync, rmSync} from 'node:fs'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {karp} from '../helpers/karp.js'
import {fillLeaving, onSmallTmpfs, smallTmpfsSkipReason} from '../helpers/small-tmpfs.js'

const skip = smallTmpfsSkipReason('the bootstrap full-disk tests')

const tree = (dir: string) => (readdirSync(dir, {recursive: true}) as string[]).sort()

function bootstrap(dir: string) {
  return karp([
    'bootstrap',
    '--vip',
    '10.99.0.10',
    '--password-file',
    join(dir, 'etc', 'karp', 'password'),
    '--manifest-dir',
    join(dir, 'manifests'),
  ])
}

describe('karp bootstrap on a full disk (real tmpfs)', {skip}, () => {
  const cases: Array<{freePages: number; what: string; message: RegExp}> = [
    {
      freePages: 0,
      what: 'the password file does not fit',
      message: /^error: cannot write password file \/.*\/etc\/karp\/password: the disk is full \(ENOSPC\); nothing was changed$/,
    },
    {
      // A page each: the password file fits, the manifest does not, and the password file goes again.
      freePages: 1,
      what: 'the password file fits, the manifest does not',
      message: /^error: cannot write static pod manifest \/.*\/manifests\/karp\.yaml: the disk is full \(ENOSPC\); nothing was changed$/,
    },
  ]
  for (const {freePages, what, message} of cases) {
    it(`${what} -> exit 2, "disk full", nothing left; with room, the same command works`, async () => {
      await onSmallTmpfs(64, async (dir) => {
        fillLeaving(dir, freePages)
        const full = await bootstrap(dir)
        assert.equal(full.exitCode, 2, full.stderr)
        assert.match(full.stderr.split('\n')[0] ?? '', message, full.stderr)
        assert.match(full.stderr, /hint: free space on the filesystem of \/.*, then run again/)
        assert.equal(full.stdout, '')
        assert.deepEqual(tree(dir), ['filler'], 'nothing is left beside the filler')

        rmSync(join(dir, 'filler'))
        const again = await bootstrap(dir)
        assert.equal(again.exitCode, 0, again.stderr)
        assert.deepEqual(tree(dir), ['etc', 'etc/karp', 'etc/karp/password', 'manifests', 'manifests/karp.yaml'])
        assert.match(readFileSync(join(dir, 'etc', 'karp', 'password'), 'utf8'), /^\S{19}\n$/)
      })
    })
  }
})
