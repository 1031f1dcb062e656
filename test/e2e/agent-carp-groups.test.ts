// Two CARP groups on one vhid, in the agent's network-namespace lab (lab/agent-lab.ts): the nodes of a
// password roll-out (the rolled ones cannot hear the others: ucarp rejects their advertisements as "Bad
// digest"), and a group that is not karp's at all. Counts of holders only, never a timing.
import assert from 'node:assert/strict'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {Lab, labSkipReason, sleep, VHID, VIP, waitFor, type LabNode} from '../../lab/agent-lab.js'
import {karpTlsDir} from '../../lab/karp-tls.js'

const skip = labSkipReason()
const OTHER_VIP = '10.77.0.20'

/** Samples the holders every 100 ms until stopped: every sample, in order. */
function sampleHolders(lab: Lab): {stop: () => Promise<string[][]>} {
  const samples: string[][] = []
  let running = true
  const loop = (async () => {
    while (running) {
      samples.push(await lab.holders())
      await sleep(100)
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      return samples
    },
  }
}

/** The role the agent's state dir says, as up.sh, down.sh and the agent set it. */
function role(node: LabNode): string {
  try {
    return readFileSync(join(node.dir, 'state', 'role'), 'utf8').trim()
  } catch {
    return ''
  }
}

/** The agents' transition lines and the holder changes, for a failure message. */
function story(lab: Lab, samples: string[][] = []): string {
  const changes = samples.map((s, i) => `${i}:[${s.join(',')}]`).filter((c, i) => i === 0 || samples[i]?.join() !== samples[i - 1]?.join())
  const lines = lab.nodes.flatMap((n) =>
    lab
      .agentLog(n)
      .split('\n')
      .filter((l) => / karp node=| Bad digest/.test(l) && !/Bad digest/.test(l)),
  )
  return `holders: ${changes.join(' ')}\n${lines.join('\n')}`
}

function logOf(node: LabNode, file: string): string {
  try {
    return readFileSync(join(node.dir, file), 'utf8')
  } catch {
    return ''
  }
}

/** Plain ucarp on the node: another CARP group on the lab's vhid, with its own password and VIP. */
function startForeignGroup(lab: Lab, node: LabNode, vip: string): void {
  node.extra.push(
    lab.spawnIn(
      node.ns,
      [
        'ucarp',
        '--interface=eth0',
        `--srcip=${node.ip}`,
        `--vhid=${VHID}`,
        '--pass=not-karps',
        `--addr=${vip}`,
        '--advbase=1',
        '--upscript=/bin/true',
        '--downscript=/bin/true',
      ],
      {},
      join(node.dir, 'foreign-ucarp.log'),
    ),
  )
}

describe('karp agents and another CARP group on the same vhid', {skip}, () => {
  let lab: Lab

  before(async () => {
    lab = await Lab.create(3)
    for (const n of lab.nodes) lab.startService(n)
    for (const n of lab.nodes) await lab.waitForService(n)
  })

  after(async () => {
    await lab?.destroy()
  })

  it('rolls a new password out one node at a time with one holder after every step and a holder at every sample', async () => {
    for (const n of lab.nodes) lab.startAgent(n, {toolset: 'busybox'})
    const first = lab.node(await lab.waitForOneHolder())
    // The order that made two masters before: a backup first (its group of one elects itself), then the
    // holder while a node is still on the old password, then the last one.
    const [backup, last] = lab.nodes.filter((n) => n !== first) as [LabNode, LabNode]
    const sampler = sampleHolders(lab)
    let samples: string[][]
    try {
      for (const node of [backup, first, last]) {
        assert.equal(await lab.stopAgent(node), 0)
        writeFileSync(join(node.dir, 'password'), 'new-secret-43\n', {mode: 0o600})
        lab.startAgent(node, {toolset: 'busybox'})
        // As the DaemonSet rolls on: the next pod goes as soon as this one is ready (ucarp running).
        await waitFor(`${node.name} agent ready`, 20_000, async () => (await lab.healthcheck(node)) === 0)
        await lab.waitForOneHolder(30_000)
        // Rolled first, alone on the new password: it hears the old group's master and only listens.
        if (node === backup) {
          await waitFor(`${node.name} listens`, 15_000, () => / listening=true/.test(lab.agentLog(node)))
        }
      }
    } finally {
      samples = await sampler.stop()
    }
    const holder = await lab.waitForOneHolder()
    assert.equal(await lab.probe(), holder)
    const gaps = samples.filter((s) => s.length === 0).length
    assert.equal(gaps, 0, `samples with no holder: ${gaps} of ${samples.length}\n${story(lab, samples)}`)
    // A node rolled while the old group still had a master listened instead of taking the VIP.
    assert.ok(
      lab.nodes.some((n) =>
        / role=backup from=\S+ .*reason="another CARP group's master advertises and a node answers for the VIP: listening until that master stops" listening=true/.test(
          lab.agentLog(n),
        ),
      ),
      `no agent listened\n${story(lab)}`,
    )
    assert.ok(lab.nodes.some((n) => /warning=foreign-carp-group vhid=42 /.test(lab.agentLog(n))))
    for (const n of lab.nodes) assert.doesNotMatch(lab.agentLog(n), /new-secret-43|lab-secret-42/, 'no password in the log')
    for (const n of lab.nodes) await lab.stopAgent(n)
    assert.deepEqual(await lab.holders(), [])
  })

  it('takes its own VIP while another group on the same vhid advertises for another VIP', async () => {
    const [a, b, other] = lab.nodes as [LabNode, LabNode, LabNode]
    startForeignGroup(lab, other, OTHER_VIP)
    await waitFor('the other group elects its master', 15_000, () =>
      logOf(other, 'foreign-ucarp.log').includes('Switching to state: MASTER'),
    )
    for (const n of [a, b]) lab.startAgent(n, {toolset: 'busybox'})
    const holder = lab.node(await lab.waitForOneHolder(30_000))
    assert.notEqual(holder, other)
    assert.match(
      lab.agentLog(holder),
      /foreign_group=ignored vhid=42 reason="nobody answers for the VIP: the other group holds another address"/,
    )
    assert.equal(await lab.probe(), holder.name)
    for (const n of [a, b]) await lab.stopAgent(n)
  })

  it('only listens while a node of the other group answers for the VIP, and elects a holder once nobody does', async () => {
    const [a, b, other] = lab.nodes as [LabNode, LabNode, LabNode]
    // The other group (still advertising from the last test) now has a node that answers for karp's VIP.
    await lab.net.exec(other.ns, ['ip', 'addr', 'add', `${VIP}/32`, 'dev', 'eth0'])
    for (const n of [a, b]) lab.startAgent(n, {toolset: 'busybox'})
    await waitFor('both agents listen', 30_000, () => [a, b].every((n) => / listening=true/.test(lab.agentLog(n))))
    // Listening, neither is ever elected: not by waiting longer than the dead interval, and not by a leaving
    // master of their own group (karp-carp-leave, sent when a holder's API server dies).
    const leave = await lab.net.exec(other.ns, [
      join(karpTlsDir(), 'karp-carp-leave'),
      '--srcip',
      other.ip,
      '--vhid',
      VHID,
      '--vip',
      VIP,
      '--passfile',
      join(a.dir, 'password'),
      '--advbase',
      '4',
    ])
    assert.equal(leave.exitCode, 0, leave.stderr)
    for (let i = 0; i < 50; i++) {
      assert.deepEqual(await lab.holders(), [other.name], `a karp node took a VIP another node answers for\n${story(lab)}`)
      await sleep(100)
    }
    assert.deepEqual(
      [a, b].map((n) => role(n)),
      ['backup', 'backup'],
    )
    await lab.net.exec(other.ns, ['ip', 'addr', 'del', `${VIP}/32`, 'dev', 'eth0'])
    const holder = lab.node(await lab.waitForOneHolder(20_000))
    assert.match(lab.agentLog(holder), /reason="nobody answers for the VIP" listening=false/)
  })

  for (const [what, mac, keeps] of [
    ['lower', '00:00:00:00:00:02', false],
    ['higher', 'fe:ff:ff:ff:ff:fe', true],
  ] as const) {
    it(`lets the VIP go when a node with a ${what} MAC address holds it too while another group advertises${keeps ? ': no, keeps it' : ''}`, async () => {
      const [, , other] = lab.nodes as [LabNode, LabNode, LabNode]
      const holder = lab.node(await lab.waitForOneHolder(30_000))
      await lab.net.exec(other.ns, ['ip', 'link', 'set', 'dev', 'eth0', 'address', mac])
      await lab.net.exec(other.ns, ['ip', 'addr', 'add', `${VIP}/32`, 'dev', 'eth0'])
      try {
        if (keeps) {
          await waitFor(`${holder.name} says another node holds the VIP`, 15_000, () =>
            /warning=vip-also-held other=fe:ff:ff:ff:ff:fe /.test(lab.agentLog(holder)),
          )
          assert.equal(role(holder), 'master')
          assert.equal(await lab.holdsVip(holder), true)
        } else {
          await waitFor(`${holder.name} lets the VIP go`, 15_000, () =>
            /role=deferred from=master .*reason="00:00:00:00:00:02 answers for the VIP too .*the lower MAC address keeps it" vip_released=now/.test(
              lab.agentLog(holder),
            ),
          )
          assert.deepEqual(await lab.holders(), [other.name])
        }
      } finally {
        await lab.net.exec(other.ns, ['ip', 'addr', 'del', `${VIP}/32`, 'dev', 'eth0'])
      }
      // Nobody else answers now: a deferred holder takes the VIP back.
      assert.equal(await lab.waitForOneHolder(15_000), holder.name)
    })
  }
})
