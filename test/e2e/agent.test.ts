// The agent (agent/*.sh) with real ucarp between real network namespaces: see lab.ts for the topology.
// Correctness only: who holds the VIP, who the client reaches, what the agent logged; no timing asserts.
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {execa} from 'execa'
import {agentDir, Lab, labSkipReason, sleep, VIP, waitFor, type AgentOptions, type LabNode} from '../../lab/agent-lab.js'

const skip = labSkipReason()

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
    const cases: [string, string, RegExp][] = [
      ['KARP_VIP', `${VIP}\n10.77.0.11`, /KARP_VIP=10\.77\.0\.10\\x0a10\.77\.0\.11 is not an IPv4 address/],
      ['KARP_VIP', `${VIP} `, /KARP_VIP=10\.77\.0\.10 {2}is not an IPv4 address/],
      ['KARP_VIP', '010.77.0.10', /KARP_VIP=010\.77\.0\.10 is not/],
      ['KARP_VHID', '42\n43', /KARP_VHID=42\\x0a43 is not 1-255/],
      ['KARP_PREEMPT', 'true\n', /KARP_PREEMPT=true\\x0a is not true or false/],
      ['KARP_INTERFACE', '-eth0', /KARP_INTERFACE=-eth0 is not an interface name/],
      ['KARP_INTERFACE', 'eth0\nlo', /KARP_INTERFACE=eth0\\x0alo is not an interface name/],
      ['KARP_HEALTH_URL', 'https://127.0.0.1:6444/readyz\nx', /KARP_HEALTH_URL=https:\/\/127\.0\.0\.1:6444\/readyz\\x0ax is not an http:\/\/ or https:\/\/ URL/],
      ['KARP_HEALTH_URL', 'https://u@127.0.0.1:6444/readyz', /KARP_HEALTH_URL=https:\/\/u@127\.0\.0\.1:6444\/readyz is not/],
      ['KARP_REPORT_TIMEOUT', '5\n', /KARP_REPORT_TIMEOUT=5\\x0a is not a number of seconds/],
      ['KARP_VIP', `\u001b[31m${'9'.repeat(300)}`, /KARP_VIP=\\x1b\[31m9{75}\.\.\. is not an IPv4 address/],
    ]
    for (const [name, value, message] of cases) {
      const r = await run({[name]: value})
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
      assert.ok(lines.some((l) => /role=backup from=init .*reason="started/.test(l)), lines.join('\n'))
      if (n.name === holder) assert.ok(lines.some((l) => /role=master .*vip=10\.77\.0\.10\/32 .*reason="elected/.test(l)), lines.join('\n'))
    }
    const held = await execa('ip', ['-n', lab.node(holder).ns, '-4', 'addr', 'show', 'dev', 'eth0'])
    assert.match(held.stdout, /inet 10\.77\.0\.10\/32 /)
  })

  it('moves the VIP when the holder is SIGKILLed, and the restarted agent drops the VIP it left', async () => {
    const old = lab.node(await lab.waitForOneHolder())
    await lab.killAgent(old)
    assert.equal(await lab.holdsVip(old), true, 'a killed agent leaves its VIP behind')
    await lab.waitForHolders('another node holding the VIP', (h) => h.some((n) => n !== old.name), 20_000, 0)
    lab.startAgent(old)
    const holder = await lab.waitForOneHolder(20_000, old.name)
    assert.match(lab.agentLog(old), new RegExp(`stale_vip_removed=${VIP.replaceAll('.', '\\.')} iface=eth0`))
    assert.equal(await lab.probe(), holder)
  })

  it('hands the VIP over on SIGTERM before letting it go', async () => {
    const old = lab.node(await lab.waitForOneHolder())
    const code = await lab.stopAgent(old)
    assert.equal(code, 0)
    // Make-before-break: when the agent has exited, a successor already holds the VIP.
    const holders = await lab.holders()
    assert.ok(holders.some((n) => n !== old.name), `holders right after the stop: ${holders.join(', ')}`)
    assert.equal(await lab.holdsVip(old), false)
    const last = transitions(lab, old).at(-1) ?? ''
    assert.match(last, /role=stopped from=master .*reason="shutdown: handed the VIP over" successor=seen vip_released=now/)
    const holder = await lab.waitForOneHolder()
    assert.equal(await lab.probe(), holder)
    assert.equal(await lab.clientArpNode(), holder)
    lab.startAgent(old)
    await lab.waitForOneHolder()
  })

  it('moves the VIP when the holder\'s API server stops answering, and the node rejoins once healthy', async () => {
    const old = lab.node(await lab.waitForOneHolder())
    await lab.killService(old)
    const holder = await lab.waitForOneHolder(20_000, old.name)
    assert.equal(await lab.probe(), holder)
    assert.equal(await lab.healthcheck(old), 0, 'a node gated by its health check stays live')
    assert.match(transitions(lab, old).join('\n'), /role=backup from=master .*reason="health check failed 2 times: karp-tls: cannot connect to 127\.0\.0\.1 port 6444: Connection refused" successor=seen/)
    assert.equal(lab.statePid(old, 'ucarp.pid'), undefined, 'ucarp stays stopped while unhealthy')
    lab.startService(old)
    await waitFor(`${old.name} running ucarp again`, 20_000, async () => lab.statePid(old, 'ucarp.pid') !== undefined)
    await waitFor(`${old.name} logging that it rejoined`, 10_000, async () =>
      /role=backup from=init .*reason="started \(health check passed 2 times\)/.test(transitions(lab, old).at(-1) ?? ''),
    )
    assert.equal(await lab.waitForOneHolder(), holder, 'a recovered node does not take the VIP back')
  })

  it('moves the VIP when the holder\'s link is cut, and has one holder once it is back', async () => {
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
    await lab.rejoin(old)
    const holder = await lab.waitForOneHolder(20_000)
    const loser = split.find((n) => n !== holder) as string
    assert.match(transitions(lab, lab.node(loser)).at(-1) ?? '', /role=backup from=master .*reason="a preferred master advertised"/)
    // No gratuitous ARP from the node that yielded may outlive its VIP: the client's cache ends on the holder.
    await sleep(3000)
    assert.equal(await lab.clientArpNode(), holder)
    assert.equal(await lab.probe(), holder)
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

  it('leaves no VIP anywhere when every agent stops', async () => {
    await lab.waitForOneHolder()
    const codes = await Promise.all(lab.nodes.map((n) => lab.stopAgent(n)))
    assert.deepEqual(codes, lab.nodes.map(() => 0))
    assert.deepEqual(await lab.holders(), [])
    await sleep(2000)
    assert.deepEqual(await lab.holders(), [], 'no delayed action put a VIP back')
    assert.equal(await lab.probe(), null)
  })
})
