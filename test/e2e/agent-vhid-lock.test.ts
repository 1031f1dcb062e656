// One agent per vhid per node (agent/README.md, One agent per vhid per node): ucarp ignores packets from its
// own source address, so two agents of one vhid on one node would each elect itself. The second waits for
// the node's lock (karp-node-lock, an abstract AF_UNIX name of the network namespace) before it touches the
// VIP. Two lab nodes; node1 also runs a second agent in its namespace with a state dir of its own, as the
// DaemonSet's pod runs beside the static pod during a bootstrap handover.
import assert from 'node:assert/strict'
import {existsSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {execa} from 'execa'
import {watchHolders} from '../../lab/holders.js'
import {karpTlsDir} from '../../lab/karp-tls.js'
import {killGroup, Lab, labSkipReason, sleep, VHID, waitFor, type LabNode} from '../../lab/agent-lab.js'

const skip = labSkipReason()
const LOCK = `karp-agent/vhid/${VHID}`
const waitingWarning = new RegExp(
  `warning=vhid-taken vhid=${VHID} reason="another agent of vhid ${VHID} runs on this node \\(it holds the lock ${LOCK}\\): waiting until it exits" eligible=false`,
)

/** The abstract AF_UNIX names bound in the namespace (/proc/net/unix shows them with a leading @). */
async function abstractNames(lab: Lab, node: LabNode): Promise<string[]> {
  const {stdout} = await lab.net.exec(node.ns, ['cat', '/proc/net/unix'])
  return stdout
    .split('\n')
    .map((line) => line.trim().split(/\s+/).at(7) ?? '')
    .filter((path) => path.startsWith('@'))
}

/** Alive and not a zombie. */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

/** The agent's karp-node-lock process. */
function lockHolder(node: LabNode): number {
  const agent = node.agent
  assert.ok(agent, `${node.name} runs no agent`)
  const pid = Lab.processTree(agent.pid).find((p) => {
    try {
      return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'karp-node-lock'
    } catch {
      return false
    }
  })
  assert.ok(pid, `no karp-node-lock under ${node.name}'s agent`)
  return pid
}

describe('one agent per vhid per node', {skip}, () => {
  let lab: Lab
  /** The agent that runs on node1 after the takeover. */
  let nodeAgent: LabNode | undefined

  before(async () => {
    lab = await Lab.create(2)
    for (const n of lab.nodes) lab.startService(n)
    for (const n of lab.nodes) await lab.waitForService(n)
  })

  after(async () => {
    await lab?.destroy()
  })

  it('karp-node-lock holds a name while its parent lives, exits 3 while it is taken, and dies with a SIGKILLed parent', async () => {
    const [a, b] = lab.nodes as [LabNode, LabNode]
    const helper = join(karpTlsDir(), 'karp-node-lock')
    const name = 'karp-test/lock'
    // A shell that starts the helper (the "; echo" keeps sh from exec'ing it in its place) and waits for it.
    const holderIn = (node: LabNode, log: string) =>
      lab.spawnIn(node.ns, ['sh', '-c', `'${helper}' --name ${name} --parent $$; echo "exit $?"`], {}, join(node.dir, log))
    const said = (node: LabNode, log: string) => {
      try {
        return readFileSync(join(node.dir, log), 'utf8')
      } catch {
        return ''
      }
    }
    const first = holderIn(a, 'lock-1.log')
    await waitFor('the first holder', 5_000, () => said(a, 'lock-1.log') === 'held\n')
    assert.deepEqual(
      (await abstractNames(lab, a)).filter((n) => n === `@${name}`),
      [`@${name}`],
    )
    const taken = await execa('ip', ['netns', 'exec', a.ns, 'sh', '-c', `'${helper}' --name ${name} --parent $$; echo "exit $?"`], {
      reject: false,
    })
    assert.equal(taken.stdout, 'exit 3')
    assert.equal(taken.stderr, 'karp-node-lock: the name is held by another process')
    // Another network namespace, another node: the same name is free there.
    const elsewhere = holderIn(b, 'lock-2.log')
    await waitFor('the holder on the other node', 5_000, () => said(b, 'lock-2.log') === 'held\n')
    const wrongParent = await execa('ip', ['netns', 'exec', a.ns, helper, '--name', 'karp-test/other', '--parent', String(first.pid)], {
      reject: false,
    })
    assert.equal(wrongParent.exitCode, 4, wrongParent.stderr)
    const usage = await execa(helper, ['--name', name], {reject: false})
    assert.equal(usage.exitCode, 2)
    assert.match(usage.stderr, /usage: karp-node-lock --name NAME --parent PID/)
    // SIGKILL of the parent alone: the kernel kills the helper (PR_SET_PDEATHSIG) and frees the name.
    const locker = lockHolder({...a, agent: first})
    process.kill(first.pid, 'SIGKILL')
    await first.exited
    await waitFor('the helper to die with its parent', 5_000, () => !running(locker))
    await waitFor('the name to be free', 5_000, async () => !(await abstractNames(lab, a)).includes(`@${name}`))
    const again = holderIn(a, 'lock-3.log')
    await waitFor('a new holder', 5_000, () => said(a, 'lock-3.log') === 'held\n')
    for (const p of [again, elsewhere]) killGroup(p.pid, 'SIGKILL')
  })

  it('a second agent of the vhid on the node waits, ready and out of CARP, and never touches the VIP the first holds', async () => {
    const [a, b] = lab.nodes as [LabNode, LabNode]
    lab.startAgent(a)
    await lab.waitForHolders(`${a.name} holding the VIP`, (h) => h.length === 1 && h[0] === a.name)
    lab.startAgent(b)
    await waitFor(`${b.name} running ucarp`, 10_000, () => lab.statePid(b, 'ucarp.pid') !== undefined)
    assert.equal(await lab.waitForOneHolder(), a.name)
    const second = lab.secondAgentPlace(a, 'second')
    const watch = watchHolders(() => lab.holders(), 20)
    lab.startAgent(second)
    await waitFor(`the second agent on ${a.name} waiting`, 10_000, () => waitingWarning.test(lab.agentLog(second)))
    // Several retries (every KARP_HEALTH_INTERVAL, 0.5 s).
    await sleep(3000)
    const seen = await watch.stop()
    assert.ok(
      seen.samples.every((h) => h.length === 1 && h[0] === a.name),
      `the VIP left ${a.name} or had another holder: ${JSON.stringify(seen.samples)}`,
    )
    const log = lab.agentLog(second)
    assert.equal(log.match(new RegExp(waitingWarning, 'g'))?.length, 1, log)
    assert.doesNotMatch(log, /stale_vip_removed=|starting vip=|role=(master|backup)/)
    assert.equal(lab.statePid(second, 'ucarp.pid'), undefined)
    for (const mode of ['live', 'ready'] as const) {
      const probe = await lab.probeResult(second, mode)
      assert.equal(probe.code, 0, `${mode}: ${probe.output}`)
      assert.match(probe.output, new RegExp(`^ucarp stopped on purpose: another agent of vhid ${VHID} runs on this node `, 'm'))
    }
    assert.deepEqual(
      (await abstractNames(lab, a)).filter((n) => n === `@${LOCK}`),
      [`@${LOCK}`],
      'one lock',
    )
    // SIGTERM while waiting: it stops at once, having done nothing.
    const started = Date.now()
    assert.equal(await lab.stopAgent(second), 0)
    assert.ok(Date.now() - started < 3000, `the waiting agent took ${Date.now() - started} ms to stop`)
    assert.match(lab.agentLog(second), /role=stopped from=waiting vip=\S+ reason="shutdown"/)
    assert.deepEqual(await lab.holders(), [a.name])
  })

  it('takes over once the first agent stopped: a holder at every sample, and it ends up in CARP', async () => {
    const [a, b] = lab.nodes as [LabNode, LabNode]
    assert.equal(await lab.waitForOneHolder(), a.name)
    const second = lab.secondAgentPlace(a, 'takeover')
    lab.startAgent(second)
    await waitFor(`the second agent on ${a.name} waiting`, 10_000, () => waitingWarning.test(lab.agentLog(second)))
    const watch = watchHolders(() => lab.holders(), 20)
    assert.equal(await lab.stopAgent(a), 0)
    await waitFor(`the second agent on ${a.name} taking the lock`, 10_000, () =>
      new RegExp(`node_lock=held vhid=${VHID} reason="the other agent of vhid ${VHID} on this node has exited"`).test(lab.agentLog(second)),
    )
    await waitFor(`the second agent on ${a.name} running ucarp`, 10_000, () => lab.statePid(second, 'ucarp.pid') !== undefined)
    const holder = await lab.waitForOneHolder()
    const seen = await watch.stop()
    assert.ok(
      seen.samples.length > 0 && seen.samples.every((h) => h.length >= 1),
      `a sample without a holder: ${JSON.stringify(seen.samples)}`,
    )
    assert.equal(holder, b.name, 'the other node took over while the first agent handed over')
    assert.match(lab.agentLog(a), /role=stopped from=master .*reason="shutdown: handed the VIP over" successor=seen vip_released=now/)
    // "ucarp running" is the ready answer (exit 0) of an agent whose ucarp runs.
    await waitFor('the second agent ready as a backup', 5_000, async () =>
      /^ucarp running \(role backup\)$/m.test((await lab.probeResult(second, 'ready')).output),
    )
    nodeAgent = second
  })

  it("takes over when the lock holder's shell is SIGKILLed: the kernel frees the lock with it", async () => {
    const a = nodeAgent
    assert.ok(a, 'the agent that took over on node1')
    const holderAgent = a.agent
    assert.ok(holderAgent)
    const locker = lockHolder(a)
    const status = readFileSync(`/proc/${locker}/status`, 'utf8')
    const smaps = readFileSync(`/proc/${locker}/smaps_rollup`, 'utf8')
    console.error(
      `karp-node-lock memory: ${/VmRSS:\s+\d+ kB/.exec(status)?.[0]}, ${/RssAnon:\s+\d+ kB/.exec(status)?.[0]}, ${/Pss:\s+\d+ kB/.exec(smaps)?.[0]}`,
    )
    const next = lab.secondAgentPlace(a, 'after-kill')
    lab.startAgent(next)
    await waitFor(`the next agent on ${a.name} waiting`, 10_000, () => waitingWarning.test(lab.agentLog(next)))
    // The shell alone (as when a container's PID 1 dies, the runtime then kills the rest): ucarp, an orphan
    // now, is killed only once the next agent took the lock, which the shell's death alone freed.
    // (Its exit is not awaited until then: the orphan holds the log's pipe open.)
    process.kill(holderAgent.pid, 'SIGKILL')
    await waitFor('the shell to die', 5_000, () => !running(holderAgent.pid))
    await waitFor('karp-node-lock to die with the shell', 5_000, () => !running(locker))
    await waitFor(`the next agent on ${a.name} taking the lock`, 10_000, () => /node_lock=held /.test(lab.agentLog(next)))
    killGroup(holderAgent.pid, 'SIGKILL')
    await holderAgent.exited
    a.agent = undefined
    await waitFor(`the next agent on ${a.name} running ucarp`, 10_000, () => lab.statePid(next, 'ucarp.pid') !== undefined)
    assert.equal(await lab.healthcheck(next, 'ready'), 0)
    await lab.waitForOneHolder()
    assert.ok(existsSync(join(next.dir, 'state', 'agent.pid')))
    await lab.stopAgent(next)
  })
})
