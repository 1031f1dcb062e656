import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {describe, it} from 'node:test'
import {memoryKb, splitByRoot, type ProcessMemory} from '../../lab/process.js'

describe('memoryKb', () => {
  it('sums RSS and PSS over live processes and skips the ones that are gone', async () => {
    const child = spawn('sleep', ['30'], {stdio: 'ignore'})
    try {
      await new Promise((resolve) => child.once('spawn', resolve))
      const self = memoryKb([process.pid])
      assert.equal(self.processes, 1)
      assert.ok(self.rss > 10_000, `this Node.js process has more than 10 MB resident: ${self.rss} kB`)
      assert.ok(self.pss > 0 && self.pss <= self.rss, `PSS ${self.pss} kB within RSS ${self.rss} kB`)
      const both = memoryKb([process.pid, child.pid!, 2 ** 22 + 1])
      assert.equal(both.processes, 2, 'a pid that does not exist is skipped')
      assert.ok(both.rss > self.rss)
      assert.equal(both.parts.find((p) => p.pid === child.pid)?.ppid, process.pid, 'the parent of the child is this process')
    } finally {
      child.kill('SIGKILL')
    }
  })
})

describe('splitByRoot', () => {
  const part = (pid: number, ppid: number, comm: string): ProcessMemory => ({pid, ppid, comm, rss: 1, pss: 1})

  it('keeps the root and its descendants, at any depth, apart from processes another parent started', () => {
    // A container: the entrypoint (10) with ucarp and a hook's ip; an exec probe (runc init 30 -> healthcheck.sh
    // 31 -> its child 32) whose runc init the shim (5, outside the cgroup) started.
    const parts = [
      part(10, 5, 'entrypoint.sh'),
      part(11, 10, 'ucarp'),
      part(12, 11, 'up.sh'),
      part(13, 12, 'ip'),
      part(30, 5, 'runc:[2:INIT]'),
      part(31, 30, 'healthcheck.sh'),
      part(32, 31, 'cat'),
    ]
    const {tree, others} = splitByRoot(parts, 10)
    assert.deepEqual(
      tree.map((p) => p.pid),
      [10, 11, 12, 13],
    )
    assert.deepEqual(
      others.map((p) => p.pid),
      [30, 31, 32],
    )
  })

  it('ends on a parent loop or an unknown parent instead of walking forever', () => {
    const {tree, others} = splitByRoot([part(1, 2, 'a'), part(2, 1, 'b'), part(3, 0, 'c')], 10)
    assert.deepEqual(tree, [])
    assert.equal(others.length, 3)
  })
})
