// The agent (agent/*.sh) with real ucarp between real network namespaces: see lab.ts for the topology.
// Correctness only: who holds the VIP, who the client reaches, what the agent logged; no timing asserts.
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {execa} from 'execa'
import {watchHolders} from '../../lab/holders.js'
import {
  agentDir,
  agentInstallDir,
  killGroup,
  Lab,
  labSkipReason,
  sleep,
  VHID,
  VIP,
  waitFor,
  type AgentOptions,
  type LabNode,
} from '../../lab/agent-lab.js'

const skip = labSkipReason()
/**
 * KARP_VIP_LIFETIME as the lab's agents get it by default: one second more than the longest of the dead
 * interval (advbase 1 x deadratio 3), the drain (1.2 s) and a health check with its interval (0.5 + 1 s).
 */
const LIFETIME_S = 4

async function startAll(lab: Lab, opts: AgentOptions = {}): Promise<void> {
  for (const n of lab.nodes) if (!n.service) lab.startService(n)
  for (const n of lab.nodes) await lab.waitForService(n)
  for (const n of lab.nodes) if (!n.agent) lab.startAgent(n, opts)
}

function ucarpArgs(lab: Lab, node: LabNode): string[] {
  const pid = lab.statePid(node, 'ucarp.pid')
  assert.ok(pid, `${node.name} has no ucarp pid file`)
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
}

/** Processes of an agent (its shell, ucarp, their children) running in the node's namespace. */
function agentProcesses(lab: Lab, node: LabNode): number[] {
  return lab.net.pidsIn(node.ns).filter((pid) => {
    try {
      return (
        readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(agentInstallDir()) ||
        readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'ucarp'
      )
    } catch {
      return false
    }
  })
}

/** Samples the node's eth0 every 100 ms for `ms`: a VIP that anything put back would show. */
async function assertNeverHolds(lab: Lab, node: LabNode, ms: number): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    assert.equal(await lab.holdsVip(node), false, `${node.name} holds the VIP again after it let it go`)
    await sleep(100)
  }
}

/** The transition lines the agent logged (its own, not ucarp's). */
function transitions(lab: Lab, node: LabNode): string[] {
  return lab
    .agentLog(node)
    .split('\n')
    .filter((l) => / karp node=\S+ role=/.test(l))
}

describe('karp agent in a network-namespace lab', {skip}, () => {
  let lab: Lab

  before(async () => {
    lab = await Lab.create(3)
  })

  after(async () => {
    await lab?.destroy()
  })

  it('has shellcheck-clean scripts', async () => {
    const scripts = ['entrypoint.sh', 'lib.sh', 'up.sh', 'down.sh', 'healthcheck.sh'].map((f) => join(agentDir, f))
    const r = await execa('shellcheck', ['-x', ...scripts], {reject: false})
    assert.equal(r.exitCode, 0, r.stdout)
  })

  // The agent started once by hand with its pod environment plus env, to see how it refuses a setting.
  const runEntrypoint = (node: LabNode, env: Record<string, string>) =>
    execa('ip', ['netns', 'exec', node.ns, join(agentDir, 'entrypoint.sh')], {
      env: {...lab.agentEnv(node, {health: false}), ...env},
      extendEnv: false,
      reject: false,
      timeout: 10_000,
    })

  it('refuses a bad configuration and says which setting is wrong', async () => {
    const node = lab.nodes[0] as LabNode
    const run = (env: Record<string, string>) => runEntrypoint(node, env)
    const vhid = await run({KARP_VHID: '0'})
    assert.equal(vhid.exitCode, 2)
    assert.match(vhid.stderr, /KARP_VHID=0 is not 1-255/)
    const longPassword = join(node.dir, 'long-password')
    await execa('sh', ['-c', `printf '%s\\n' 01234567890123456789 > ${longPassword}`])
    const password = await run({KARP_PASSWORD_FILE: longPassword})
    assert.equal(password.exitCode, 2)
    assert.match(password.stderr, /must be 1-19 bytes \(is 20\)/)
    assert.doesNotMatch(password.stderr, /0123456789/, 'the password must not be logged')
    assert.equal(await lab.holdsVip(node), false)
  })

  it('refuses a value with a newline or anything after it, in one line naming the variable with the value escaped and capped', async () => {
    const node = lab.nodes[0] as LabNode
    const run = (env: Record<string, string>) => runEntrypoint(node, env)
    const cases: [string, string, RegExp, Record<string, string>?][] = [
      ['KARP_VIP', `${VIP}\n10.77.0.11`, /KARP_VIP=10\.77\.0\.10\\x0a10\.77\.0\.11 is not an IPv4 address/],
      ['KARP_VIP', `${VIP} `, /KARP_VIP=10\.77\.0\.10 {2}is not an IPv4 address/],
      ['KARP_VIP', '010.77.0.10', /KARP_VIP=010\.77\.0\.10 is not/],
      ['KARP_VHID', '42\n43', /KARP_VHID=42\\x0a43 is not 1-255/],
      ['KARP_PREEMPT', 'true\n', /KARP_PREEMPT=true\\x0a is not true or false/],
      ['KARP_INTERFACE', '-eth0', /KARP_INTERFACE=-eth0 is not an interface name/],
      ['KARP_INTERFACE', 'eth0\nlo', /KARP_INTERFACE=eth0\\x0alo is not an interface name/],
      [
        'KARP_HEALTH_URL',
        'https://127.0.0.1:6444/readyz\nx',
        /KARP_HEALTH_URL=https:\/\/127\.0\.0\.1:6444\/readyz\\x0ax is not an http:\/\/ or https:\/\/ URL/,
      ],
      ['KARP_HEALTH_URL', 'https://u@127.0.0.1:6444/readyz', /KARP_HEALTH_URL=https:\/\/u@127\.0\.0\.1:6444\/readyz is not/],
      ['KARP_REPORT_TIMEOUT', '5\n', /KARP_REPORT_TIMEOUT=5\\x0a is not a number of seconds/],
      // The lease must outlast the dead interval (advbase 1 x deadratio 3) and the rest: 4 s at least.
      ['KARP_VIP_LIFETIME', '3', /KARP_VIP_LIFETIME=3 is not whole seconds from 4 to 86400 \(longer than the dead interval/],
      ['KARP_VIP_LIFETIME', '4.5', /KARP_VIP_LIFETIME=4\.5 is not whole seconds from 4/],
      ['KARP_VIP_LIFETIME', '8', /KARP_VIP_LIFETIME=8 is not whole seconds from 9 to 86400/, {KARP_DRAIN_SECONDS: '8.5'}],
      ['KARP_VIP', `\u001b[31m${'9'.repeat(300)}`, /KARP_VIP=\\x1b\[31m9{75}\.\.\. is not an IPv4 address/],
    ]
    for (const [name, value, message, others] of cases) {
      const r = await run({...others, [name]: value})
      const what = `${name}=${JSON.stringify(value)}`
      assert.equal(r.exitCode, 2, `${what}: exit ${r.exitCode}, stderr ${r.stderr}`)
      assert.match(r.stderr, message, what)
      assert.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line\n${r.stderr}`)
      // eslint-disable-next-line no-control-regex
      assert.doesNotMatch(r.stderr.trim(), /[\u0000-\u001f\u007f]/, `${what}: control characters in the message`)
    }
    assert.equal(await lab.holdsVip(node), false)
  })

  it('has exactly one holder at steady state, found by ip route get, with the password passed by file', async () => {
    await startAll(lab)
    const holder = await lab.waitForOneHolder()
    assert.equal(await lab.probe(), holder)
    assert.equal(await lab.clientArpNode(), holder)
    for (const n of lab.nodes) {
      const args = ucarpArgs(lab, n)
      assert.ok(args.includes('--interface=eth0'), args.join(' '))
      assert.ok(args.includes(`--srcip=${n.ip}`), args.join(' '))
      assert.ok(args.includes(`--passfile=${join(n.dir, 'password')}`), args.join(' '))
      assert.ok(!args.some((a) => a.startsWith('--pass=') || a.includes('lab-secret')), 'no password on the command line')
      const lines = transitions(lab, n)
      assert.ok(
        lines.some((l) => /role=backup from=init .*reason="started/.test(l)),
        lines.join('\n'),
      )
      if (n.name === holder)
        assert.ok(
          lines.some((l) => /role=master .*vip=10\.77\.0\.10\/32 .*reason="elected/.test(l)),
          lines.join('\n'),
        )
    }
    const held = await execa('ip', ['-n', lab.node(holder).ns, '-4', 'addr', 'show', 'dev', 'eth0'])
    assert.match(held.stdout, /inet 10\.77\.0\.10\/32 /)
  })

  it('holds the VIP as a lease the master keeps renewing: there for 15 s, its lifetime never running out', async () => {
    const holder = lab.node(await lab.waitForOneHolder())
    const lifetimes: Array<number | 'forever' | undefined> = []
    const end = Date.now() + 15_000
    while (Date.now() < end) {
      lifetimes.push(await lab.vipLifetime(holder))
      await sleep(200)
    }
    const shown = lifetimes.join(' ')
    console.error(`valid_lft of ${holder.name} over ${lifetimes.length} samples: ${shown}`)
    // A lease of at most LIFETIME_S at every sample, over 15 s: without renewals it would have gone after
    // LIFETIME_S. (valid_lft counts down in whole seconds, so renewals every half second keep it at 4.)
    assert.ok(
      lifetimes.every((l) => typeof l === 'number' && l <= LIFETIME_S),
      `the VIP missing, without a lease or with a longer one at some sample: ${shown}`,
    )
    assert.deepEqual(await lab.holders(), [holder.name])
  })

  it('moves the VIP when the holder is SIGKILLed, and the kernel takes the VIP off the dead node once nothing renews it', async () => {
    const old = lab.node(await lab.waitForOneHolder())
    await lab.killAgent(old)
    assert.deepEqual(agentProcesses(lab, old), [], 'the agent is dead')
    assert.equal(typeof (await lab.vipLifetime(old)), 'number', 'the dead agent left its VIP, as a lease')
    await lab.waitForHolders('another node holding the VIP', (h) => h.some((n) => n !== old.name), 20_000, 0)
    await waitFor(`${old.name}'s VIP to expire`, 20_000, async () => !(await lab.holdsVip(old)))
    assert.deepEqual(agentProcesses(lab, old), [], 'no agent ran there: the kernel removed the VIP')
    const holder = await lab.waitForOneHolder(20_000, old.name)
    assert.equal(await lab.probe(), holder)
    const from = lab.agentLog(old).length
    lab.startAgent(old)
    await waitFor(`${old.name} back as backup`, 20_000, () => /role=backup from=init .*reason="started/.test(lab.agentLog(old).slice(from)))
    assert.doesNotMatch(lab.agentLog(old).slice(from), /stale_vip_removed=/, 'nothing left to remove')
    assert.equal(await lab.waitForOneHolder(), holder)
  })

  it('removes, when it starts, a VIP without a lease that something else left on the node', async () => {
    const holder = lab.node(await lab.waitForOneHolder())
    const backup = lab.nodes.find((n) => n !== holder) as LabNode
    assert.equal(await lab.stopAgent(backup), 0)
    // As an agent from before leases would have left it after a crash, or a hand-made address.
    const added = await lab.net.exec(backup.ns, ['ip', 'addr', 'add', `${VIP}/32`, 'dev', 'eth0'])
    assert.equal(added.exitCode, 0, added.stderr)
    assert.equal(await lab.vipLifetime(backup), 'forever')
    const from = lab.agentLog(backup).length
    lab.startAgent(backup)
    await waitFor(`${backup.name} removing the stale VIP`, 20_000, () =>
      new RegExp(`stale_vip_removed=${VIP.replaceAll('.', '\\.')} iface=eth0`).test(lab.agentLog(backup).slice(from)),
    )
    assert.equal(await lab.waitForOneHolder(), holder.name)
  })

  it('puts the VIP back when a frozen agent let its lease run out while ucarp stayed master', async () => {
    const old = lab.node(await lab.waitForOneHolder())
    const agent = old.agent
    assert.ok(agent)
    const from = lab.agentLog(old).length
    // Only the agent's shell: ucarp goes on advertising, so no backup takes over (the price of a freeze).
    process.kill(agent.pid, 'SIGSTOP')
    try {
      await waitFor(`the kernel removing the frozen ${old.name}'s VIP`, 20_000, async () => !(await lab.holdsVip(old)))
      assert.deepEqual(await lab.holders(), [], 'a backup took over from a master that advertises')
    } finally {
      process.kill(agent.pid, 'SIGCONT')
    }
    await waitFor(`${old.name} putting the VIP back`, 20_000, async () => lab.holdsVip(old))
    // The VIP goes on before the agent logs that it did.
    await waitFor(`${old.name} logging the VIP back`, 5_000, () => lab.agentLog(old).slice(from).includes('vip_restored='))
    const lines = lab.agentLog(old).slice(from)
    assert.match(lines, /warning=vip-lease-lapsed vip=10\.77\.0\.10 iface=eth0 unrenewed=\d+\.\ds lifetime=4s/)
    assert.match(lines, /vip_restored=10\.77\.0\.10 iface=eth0 reason="the lease lapsed while this node was master"/)
    assert.equal(await lab.waitForOneHolder(), old.name)
    assert.equal(typeof (await lab.vipLifetime(old)), 'number')
    assert.equal(await lab.probe(), old.name)
  })

  it('hands the VIP over on SIGTERM before letting it go', async () => {
    const old = lab.node(await lab.waitForOneHolder())
    const code = await lab.stopAgent(old)
    assert.equal(code, 0)
    // Make-before-break: when the agent has exited, a successor already holds the VIP.
    const holders = await lab.holders()
    assert.ok(
      holders.some((n) => n !== old.name),
      `holders right after the stop: ${holders.join(', ')}`,
    )
    assert.equal(await lab.holdsVip(old), false)
    const last = transitions(lab, old).at(-1) ?? ''
    assert.match(last, /role=stopped from=master .*reason="shutdown: handed the VIP over" successor=seen vip_released=now/)
    const holder = await lab.waitForOneHolder()
    assert.equal(await lab.probe(), holder)
    assert.equal(await lab.clientArpNode(), holder)
    lab.startAgent(old)
    await lab.waitForOneHolder()
  })

  it("moves the VIP when the holder's API server stops answering, and the node rejoins once healthy", async () => {
    const old = lab.node(await lab.waitForOneHolder())
    const others = lab.nodes.filter((n) => n !== old)
    const before = new Map(others.map((n) => [n.name, transitions(lab, n).length]))
    const watch = watchHolders(() => lab.holders(), 20)
    await lab.killService(old)
    const holder = await lab.waitForOneHolder(20_000, old.name)
    await sleep(1000)
    const seen = await watch.stop()
    assert.equal(await lab.probe(), holder)
    assert.equal(await lab.healthcheck(old), 0, 'a node gated by its health check stays live')
    assert.match(
      transitions(lab, old).join('\n'),
      /role=backup from=master .*reason="health check failed 2 times: karp-tls: cannot connect to 127\.0\.0\.1 port 6444: Connection refused" successor=seen/,
    )
    // Its API server dead, it told the backups to take over now (karp-carp-leave), and one did at once.
    assert.match(lab.agentLog(old), /carp_leave=sent advbase=4 /)
    assert.match(lab.agentLog(lab.node(holder)), /Putting MASTER DOWN \(going to time out\)/)
    // The backups' skews differ (.12 and .13): the other one held that advertisement back longer, read the new
    // master's first advertisement meanwhile, and never took over (karp-pcap-immediate.so).
    const other = others.find((n) => n.name !== holder) as LabNode
    assert.match(
      lab.agentLog(other),
      new RegExp(
        `karp-pcap-immediate: dropped the leaving advertisement of vhid ${VHID} from ${old.ip.replaceAll('.', '\\.')}: ${lab.node(holder).ip.replaceAll('.', '\\.')} advertised`,
      ),
    )
    assert.ok(
      !transitions(lab, other)
        .slice(before.get(other.name))
        .some((l) => / role=master /.test(l)),
      `${other.name} took over too`,
    )
    // The old holder keeps the VIP until its successor answers for it (Graceful stop); of the others, one at most.
    assert.ok(
      seen.samples.every((h) => h.filter((n) => n !== old.name).length <= 1),
      `two successors at once: ${JSON.stringify(seen.samples)}`,
    )
    assert.equal(lab.statePid(old, 'ucarp.pid'), undefined, 'ucarp stays stopped while unhealthy')
    // Gated, it renews nothing: no VIP comes back over more than a lifetime.
    await assertNeverHolds(lab, old, (LIFETIME_S + 1) * 1000)
    lab.startService(old)
    await waitFor(`${old.name} running ucarp again`, 20_000, () => lab.statePid(old, 'ucarp.pid') !== undefined)
    await waitFor(`${old.name} logging that it rejoined`, 10_000, () =>
      /role=backup from=init .*reason="started \(health check passed 2 times\)/.test(transitions(lab, old).at(-1) ?? ''),
    )
    assert.equal(await lab.waitForOneHolder(), holder, 'a recovered node does not take the VIP back')
  })

  it('is ready only once it runs ucarp or knows why it must not, and live throughout', async () => {
    const holder = await lab.waitForOneHolder()
    const node = lab.nodes.find((n) => n.name !== holder) as LabNode
    assert.equal(await lab.stopAgent(node), 0)
    // An API server that accepts and never answers: each first check takes the whole KARP_HEALTH_TIMEOUT.
    const silentPort = 6447
    lab.startSilentServer(node, '127.0.0.1', silentPort)
    await waitFor('the silent server listening', 10_000, () => {
      try {
        return readFileSync(join(node.dir, 'silent.log'), 'utf8').includes('silent on')
      } catch {
        return false
      }
    })
    const from = lab.agentLog(node).length
    lab.startAgent(node, {env: {KARP_HEALTH_URL: `https://127.0.0.1:${silentPort}/readyz`, KARP_HEALTH_TIMEOUT: '3'}})
    const gatedFile = join(node.dir, 'state', 'gated')
    await waitFor(`${node.name} waiting for its first check`, 10_000, () => {
      try {
        return readFileSync(gatedFile, 'utf8').includes('waiting for the first healthy check')
      } catch {
        return false
      }
    })
    const waiting = await lab.probeResult(node, 'ready')
    assert.equal(waiting.code, 1, waiting.output)
    assert.match(waiting.output, /^not ready: ucarp not started yet, waiting for the first healthy check$/m)
    assert.equal(await lab.healthcheck(node, 'live'), 0, 'waiting for the first check is no reason to restart')
    // Two checks failed (KARP_HEALTH_FAILURES): out of CARP for a known reason, which waiting longer would not change.
    await waitFor(`${node.name} concluding that its API server fails`, 20_000, () =>
      readFileSync(gatedFile, 'utf8').startsWith('health check failed'),
    )
    const out = await lab.probeResult(node, 'ready')
    assert.equal(out.code, 0, out.output)
    assert.match(out.output, /^ucarp stopped on purpose: health check failed 2 times: /m)
    assert.equal(lab.statePid(node, 'ucarp.pid'), undefined)
    assert.match(lab.agentLog(node).slice(from), /warning=health-check-failing reason="karp-tls: /)
    const bad = await execa('ip', ['netns', 'exec', node.ns, join(agentDir, 'healthcheck.sh'), 'startup'], {reject: false, all: true})
    assert.equal(bad.exitCode, 2)
    assert.match(bad.all ?? '', /unknown mode "startup": live \(the default\) or ready/)
    assert.equal(await lab.stopAgent(node), 0)
    for (const p of node.extra.splice(0)) killGroup(p.pid, 'SIGKILL')
    lab.startAgent(node)
    await waitFor(`${node.name} ready with its API server answering`, 20_000, async () => (await lab.healthcheck(node, 'ready')) === 0)
    // Ready as soon as ucarp runs; its role is "init" until ucarp's first down.sh (a few ms later) says backup.
    let said = ''
    await waitFor(
      `${node.name} ready as a backup`,
      5_000,
      async () => {
        const ready = await lab.probeResult(node, 'ready')
        said = ready.output
        return ready.code === 0 && /^ucarp running \(role backup\)$/m.test(ready.output)
      },
      () => said,
    )
    assert.equal(await lab.waitForOneHolder(), holder)
  })

  it("moves the VIP when the holder's link is cut, and has one holder once it is back", async () => {
    const old = lab.node(await lab.waitForOneHolder())
    await lab.cutLink(old)
    await lab.waitForOneHolder(20_000, old.name)
    assert.match(transitions(lab, old).at(-1) ?? '', /role=backup from=master .*reason="link lost carrier" vip_released=now/)
    await lab.restoreLink(old)
    const holder = await lab.waitForOneHolder()
    assert.equal(await lab.probe(), holder)
  })

  it('has one holder again after a partition heals, and the client ends up at it', async () => {
    const old = lab.node(await lab.waitForOneHolder())
    await lab.isolate(old)
    // The isolated node keeps its VIP (it still has carrier), the others elect a master of their own.
    const split = await lab.waitForHolders('a master on each side', (h) => h.length === 2 && h.includes(old.name), 20_000, 0)
    assert.equal(split.length, 2)
    const watch = watchHolders(() => lab.holders(), 20)
    await lab.rejoin(old)
    const holder = await lab.waitForOneHolder(20_000)
    const loser = split.find((n) => n !== holder) as string
    assert.match(
      transitions(lab, lab.node(loser)).at(-1) ?? '',
      /role=backup from=master .*reason="a preferred master advertised" vip_released=on-successor-announcement/,
    )
    // The yielding master let go once the preferred one announced itself (its reassertion when it read the
    // yielding master's advertisement), not after a fixed drain.
    const holderMac = lab.node(holder).mac
    await waitFor(`${loser} released the VIP on ${holder}'s gratuitous ARP`, 5000, () =>
      lab.agentLog(lab.node(loser)).includes(`reason="gratuitous ARP from ${holderMac}"`),
    )
    // No gratuitous ARP from the node that yielded may outlive its VIP: the client's cache ends on the holder.
    await sleep(3000)
    const seen = await watch.stop()
    // Two masters, one of them yields: never a third holder, and once one node holds the VIP it stays the only one.
    assert.ok(
      seen.samples.every((h) => h.length <= 2),
      `three holders: ${JSON.stringify(seen.samples)}`,
    )
    const firstSingle = seen.samples.findIndex((h) => h.length === 1)
    assert.ok(firstSingle >= 0)
    assert.deepEqual([...new Set(seen.samples.slice(firstSingle).map((h) => h.join()))], [holder], 'one holder from then on')
    assert.equal(await lab.clientArpNode(), holder)
    assert.equal(await lab.probe(), holder)
  })

  it("resolves two backups that promote together: one yields, lets go on the other's ARP, and the client ends there", async () => {
    // Equal skews: the two backups' timers start from the same advertisement and fire together.
    await Promise.all(lab.nodes.map((n) => lab.stopAgent(n)))
    await startAll(lab, {env: {KARP_ADVSKEW: '8'}})
    const old = lab.node(await lab.waitForOneHolder())
    const others = lab.nodes.filter((n) => n !== old)
    const before = new Map(others.map((n) => [n.name, transitions(lab, n).length]))
    const watch = watchHolders(() => lab.holders(), 20)
    await lab.cutLink(old)
    const holder = await lab.waitForOneHolder(20_000, old.name)
    await sleep(3000)
    const seen = await watch.stop()
    const promoted = others.filter((n) =>
      transitions(lab, n)
        .slice(before.get(n.name))
        .some((l) => / role=master from=backup /.test(l)),
    )
    assert.deepEqual(promoted.map((n) => n.name).sort(), others.map((n) => n.name).sort(), 'both backups promoted')
    // ucarp's rule for equal advertisement intervals: the lower source address stays master.
    const [lower, higher] = others
    assert.equal(holder, lower?.name)
    assert.match(lab.agentLog(higher as LabNode), new RegExp(`vip_released=now .*reason="gratuitous ARP from ${lower?.mac}"`))
    // The old holder lost its link and took its VIP off. Of the other two: never a third holder; the one that
    // yielded, once it let go, never held the VIP again; the one that stayed, once it held it, always did.
    const live = seen.samples.map((h) => h.filter((n) => n !== old.name))
    const shown = JSON.stringify(seen.samples)
    assert.ok(
      live.every((h) => h.length <= 2),
      shown,
    )
    const span = (name: string) => {
      const first = live.findIndex((h) => h.includes(name))
      const last = live.findLastIndex((h) => h.includes(name))
      return {first, last, unbroken: first >= 0 && live.slice(first, last + 1).every((h) => h.includes(name))}
    }
    const kept = span(holder)
    assert.ok(kept.unbroken && kept.last === live.length - 1, `${holder} held the VIP without a gap to the end: ${shown}`)
    const yielded = span((higher as LabNode).name)
    assert.ok(yielded.first === -1 || (yielded.unbroken && yielded.last < live.length - 1), `${higher?.name} let go once: ${shown}`)
    assert.equal(await lab.clientArpNode(), holder)
    assert.equal(await lab.probe(), holder)
    await lab.restoreLink(old)
    await Promise.all(lab.nodes.map((n) => lab.stopAgent(n)))
    await startAll(lab)
    await lab.waitForOneHolder()
  })

  it('fails liveness when ucarp is gone, then hands over and exits', async () => {
    const old = lab.node(await lab.waitForOneHolder())
    assert.equal(await lab.healthcheck(old), 0)
    const agent = old.agent
    assert.ok(agent)
    // Freeze the entrypoint so the probe sees the state before the agent reacts to it.
    process.kill(agent.pid, 'SIGSTOP')
    process.kill(lab.statePid(old, 'ucarp.pid') as number, 'SIGKILL')
    await sleep(200)
    assert.notEqual(await lab.healthcheck(old), 0)
    process.kill(agent.pid, 'SIGCONT')
    assert.equal(await agent.exited, 1)
    old.agent = undefined
    assert.match(transitions(lab, old).at(-1) ?? '', /role=stopped from=master .*reason="ucarp exited with status \d+" successor=seen/)
    await lab.waitForOneHolder(20_000, old.name)
    lab.startAgent(old)
    await lab.waitForOneHolder()
  })

  it('runs under busybox ash with busybox ip, arping, awk and sleep, as in the image', async () => {
    await Promise.all(lab.nodes.map((n) => lab.stopAgent(n)))
    assert.deepEqual(await lab.holders(), [])
    await startAll(lab, {toolset: 'busybox'})
    const old = lab.node(await lab.waitForOneHolder())
    assert.equal(await lab.probe(), old.name)
    assert.equal(await lab.stopAgent(old), 0)
    assert.equal(await lab.holdsVip(old), false)
    const holder = await lab.waitForOneHolder(20_000, old.name)
    assert.equal(await lab.probe(), holder)
    lab.startAgent(old, {toolset: 'busybox'})
    await lab.waitForOneHolder()
  })

  it("printed no shell error in any run above (its log is all its own lines and ucarp's)", () => {
    for (const node of lab.nodes) {
      const errors = lab
        .agentLog(node)
        .split('\n')
        .filter((line) => /^\S*sh: /.test(line))
      assert.ok(lab.agentLog(node).includes(' karp node='), `${node.name} has an agent log`)
      assert.deepEqual(errors, [], `${node.name}'s agent printed shell errors`)
    }
  })

  it('leaves no VIP anywhere when every agent stops', async () => {
    await lab.waitForOneHolder()
    const codes = await Promise.all(lab.nodes.map((n) => lab.stopAgent(n)))
    assert.deepEqual(
      codes,
      lab.nodes.map(() => 0),
    )
    assert.deepEqual(await lab.holders(), [])
    // No delayed action puts a VIP back (a renewal would add a missing one), over more than a lifetime.
    const end = Date.now() + (LIFETIME_S + 1) * 1000
    while (Date.now() < end) {
      assert.deepEqual(await lab.holders(), [], 'a VIP came back after every agent stopped')
      await sleep(100)
    }
    assert.equal(await lab.probe(), null)
  })
})
