import assert from 'node:assert/strict'
import {appendFileSync, mkdirSync, mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, describe, it} from 'node:test'
import {formatLogLines, PodLogKeeper} from '../../lab/pod-logs.js'

describe('PodLogKeeper', () => {
  const root = mkdtempSync(join(tmpdir(), 'karp-pod-logs-'))
  after(() => rmSync(root, {recursive: true, force: true}))

  const write = (node: string, podDir: string, line: string): string => {
    const dir = join(root, node, podDir, 'agent')
    mkdirSync(dir, {recursive: true})
    appendFileSync(join(dir, '0.log'), `${line}\n`)
    return join(root, node, podDir)
  }

  it('keeps the lines of a pod whose logs the kubelet deleted, merged in time order, other namespaces left out', () => {
    const keeper = new PodLogKeeper(
      ['node1', 'node2'].map((node) => ({node, dir: join(root, node)})),
      (ns) => ns !== 'kube-system',
    )
    try {
      const old = write('node1', 'karp-system_karp-old_uid1', '2026-12-02T02:53:10.100000000Z stderr F old: handed over')
      write('node2', 'karp-system_karp-new_uid2', '2026-12-02T02:53:09.311725000Z stderr F new: master')
      write('node2', 'kube-system_coredns_uid3', '2026-12-02T02:53:09.500000000Z stdout F not kept')
      keeper.poll()
      rmSync(old, {recursive: true})
      write('node2', 'karp-system_karp-new_uid2', '2026-12-02T02:53:11.000000000Z stderr P new: later')
      const lines = keeper.lines(Date.parse('2026-12-02T02:53:00Z'))
      assert.deepEqual(
        lines.map((l) => [l.node, l.pod, l.line]),
        [
          ['node2', 'karp-new', 'new: master'],
          ['node1', 'karp-old', 'old: handed over'],
          ['node2', 'karp-new', 'new: later'],
        ],
      )
      assert.deepEqual(
        keeper.lines(Date.parse('2026-12-02T02:53:10.5Z')).map((l) => l.line),
        ['new: later'],
      )
      assert.equal(formatLogLines(lines.slice(0, 1)), '02:53:09.311 node2 karp-new new: master')
    } finally {
      keeper.stop()
    }
  })
})
