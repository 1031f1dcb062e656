import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {describe, it} from 'node:test'
import {memoryKb} from '../../lab/process.js'

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
    } finally {
      child.kill('SIGKILL')
    }
  })
})
