// The automatic per-node skew (KARP_ADVSKEW=auto, agent/README.md "Why these defaults"): 1 + (last octet of
// the source address mod 8) x KARP_SKEW_STEP. Never 0: a backup with skew 0 meets its deadline exactly on its
// third wake-up, often misses it by microseconds and pays a fourth advertisement period. Two agents in the
// netns lab, at addresses ending in 16 (a multiple of 8) and 17, with real ucarp.
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {after, before, describe, it} from 'node:test'
import {Lab, labSkipReason, waitFor, type LabNode} from '../../lab/agent-lab.js'

const skip = labSkipReason()

describe('the automatic skew', {skip}, () => {
  let lab: Lab

  before(async () => {
    lab = await Lab.create(2, 16)
  })

  after(async () => {
    for (const n of lab?.nodes ?? []) await lab.stopAgent(n).catch(() => lab.killAgent(n))
    await lab?.destroy()
  })

  /** The arguments of the ucarp that the agent on `node` runs, once it runs one. */
  const ucarpArgs = async (node: LabNode): Promise<string> => {
    let args = ''
    await waitFor(
      `ucarp running on ${node.name}`,
      20_000,
      () => {
        const pid = lab.statePid(node, 'ucarp.pid')
        try {
          args = pid ? readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ') : ''
        } catch {
          args = ''
        }
        return args.includes('ucarp')
      },
      () => lab.agentLog(node),
    )
    return args
  }

  it('is 1, not 0, at an address whose last octet is a multiple of 8, and 1 + KARP_SKEW_STEP one address up', async () => {
    const [at16, at17] = lab.nodes as [LabNode, LabNode]
    assert.match(at16.ip, /\.16$/)
    for (const n of lab.nodes) lab.startAgent(n, {health: false})
    const expected: [LabNode, number][] = [
      [at16, 1],
      [at17, 5],
    ]
    for (const [node, skew] of expected) {
      assert.match(await ucarpArgs(node), new RegExp(`--advskew=${skew} `), `${node.name} (${node.ip}) runs ucarp with skew ${skew}`)
      assert.match(
        lab.agentLog(node),
        new RegExp(`starting vip=\\S+ vhid=\\S+ iface=\\S+ src=${node.ip.replaceAll('.', '\\.')} advbase=1 advskew=${skew} `),
      )
    }
  })
})
