// KARP_HEALTH_GATE=after-first-ready (agent/README.md, Health gate): a static pod that bootstraps a cluster
// runs ucarp at once, since its API server cannot become ready before the VIP it serves on exists, and its
// failing checks keep it out of nothing until the check has passed KARP_HEALTH_SUCCESSES times; from then
// on the gate works as with `always`. Three lab nodes with real ucarp; the stand-in API servers are
// started late (connection refused until then).
import assert from 'node:assert/strict'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {execa} from 'execa'
import {watchHolders} from '../../lab/holders.js'
import {agentDir, Lab, labSkipReason, sleep, waitFor, type AgentOptions, type LabNode} from '../../lab/agent-lab.js'

const skip = labSkipReason()
const afterFirstReady: AgentOptions = {env: {KARP_HEALTH_GATE: 'after-first-ready'}}
const unarmedFailure =
  /warning=health-check-failing reason="karp-tls: cannot connect to 127\.0\.0\.1 port 6444: Connection refused" eligible=true health_gate=unarmed /

describe('KARP_HEALTH_GATE=after-first-ready', {skip}, () => {
  let lab: Lab

  before(async () => {
    lab = await Lab.create(3)
  })

  after(async () => {
    await lab?.destroy()
  })

  it('refuses a gate it does not know, naming the variable and what is allowed', async () => {
    const node = lab.nodes[0] as LabNode
    for (const [value, shown] of [
      ['sometimes', 'sometimes'],
      ['always\n', 'always\\x0a'],
    ]) {
      const r = await execa('ip', ['netns', 'exec', node.ns, join(agentDir, 'entrypoint.sh')], {
        env: {...lab.agentEnv(node), KARP_HEALTH_GATE: value as string},
        extendEnv: false,
        reject: false,
        timeout: 10_000,
      })
      assert.equal(r.exitCode, 2, r.stderr)
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
      assert.ok(r.stderr.includes(`fatal="KARP_HEALTH_GATE=${shown} is not always or after-first-ready"`), r.stderr)
    }
    assert.equal(await lab.holdsVip(node), false)
  })

  it('takes the VIP on a lone node whose API server fails from the start, ready, and says once why its checks fail', async () => {
    const node = lab.nodes[0] as LabNode
    lab.startAgent(node, afterFirstReady)
    await lab.waitForHolders(`${node.name} holding the VIP`, (h) => h.length === 1 && h[0] === node.name)
    const ready = await lab.probeResult(node, 'ready')
    assert.equal(ready.code, 0, ready.output)
    assert.match(ready.output, /^ucarp running \(role master\)$/m)
    const log = lab.agentLog(node)
    assert.match(log, /starting vip=.* health=https:\/\/127\.0\.0\.1:6444\/readyz health_gate=after-first-ready /)
    // About ten failed checks by now: one line for their one reason.
    assert.equal(log.match(new RegExp(unarmedFailure, 'g'))?.length, 1, log)
    assert.doesNotMatch(log, /health_gate=armed|eligible=false/)
  })

  it('is one of three whose API servers all fail from the start: one of the others takes the VIP when the holder dies', async () => {
    const [first, ...others] = lab.nodes as [LabNode, LabNode, LabNode]
    for (const n of others) lab.startAgent(n, afterFirstReady)
    for (const n of others) {
      await waitFor(`${n.name} running ucarp`, 10_000, () => lab.statePid(n, 'ucarp.pid') !== undefined)
    }
    assert.equal(await lab.waitForOneHolder(), first.name)
    // A crash: its VIP stays until the lease runs out, and a backup whose API server never answered takes over.
    await lab.killAgent(first)
    const holder = await lab.waitForOneHolder(20_000, first.name)
    assert.match(lab.agentLog(lab.node(holder)), unarmedFailure)
    for (const n of others) assert.equal(await lab.healthcheck(n, 'ready'), 0, `${n.name} ready`)
    lab.startAgent(first, afterFirstReady)
    await waitFor(`${first.name} running ucarp again`, 10_000, () => lab.statePid(first, 'ucarp.pid') !== undefined)
    assert.equal(await lab.waitForOneHolder(), holder)
  })

  it('arms once its API server passed twice; then a failing server moves the VIP away as with the gate always on', async () => {
    for (const n of lab.nodes) lab.startService(n)
    for (const n of lab.nodes) await lab.waitForService(n)
    for (const n of lab.nodes) {
      await waitFor(`${n.name} arming its health gate`, 10_000, () =>
        /health_gate=armed reason="health check passed 2 times: from now on 2 failed checks take this node out of CARP"/.test(
          lab.agentLog(n),
        ),
      )
    }
    const old = lab.node(await lab.waitForOneHolder())
    const watch = watchHolders(() => lab.holders(), 20)
    await lab.killService(old)
    const holder = await lab.waitForOneHolder(20_000, old.name)
    await sleep(500)
    const seen = await watch.stop()
    assert.equal(seen.zeroAfterFirst, 0, `a sample without a holder: ${JSON.stringify(seen.samples)}`)
    const log = lab.agentLog(old)
    assert.match(
      log,
      /role=backup from=master .*reason="health check failed 2 times: karp-tls: cannot connect to 127\.0\.0\.1 port 6444: Connection refused" successor=seen/,
    )
    assert.match(log, /carp_leave=sent advbase=4 /)
    assert.equal(lab.statePid(old, 'ucarp.pid'), undefined, 'ucarp stays stopped while unhealthy')
    const out = await lab.probeResult(old, 'ready')
    assert.equal(out.code, 0, out.output)
    assert.match(out.output, /^ucarp stopped on purpose: health check failed 2 times: /m)
    assert.deepEqual(await lab.holders(), [holder])
    lab.startService(old)
    await waitFor(`${old.name} running ucarp again`, 20_000, () => lab.statePid(old, 'ucarp.pid') !== undefined)
    assert.equal(await lab.waitForOneHolder(), holder, 'a recovered node does not take the VIP back')
  })
})
