// The agent (agent/*.sh) under faults, with real ucarp in the netns lab (lab.ts): a server that is not the
// API server on the health port, an API server that never answers while the agent stops, and ucarp killed
// while its up script is still on its way to `ip addr add`. Bounds only (a stop must end within the pod's
// grace period), no speed asserts.
import assert from 'node:assert/strict'
import {chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, afterEach, before, describe, it} from 'node:test'
import {TERMINATION_GRACE_PERIOD_SECONDS} from '../../agent/env.js'
import {makeCa, makeCertificate, testKey} from '../helpers/certs.js'
import {
  API_SERVER_NAMES,
  HEALTH_PORT,
  IP,
  killGroup,
  Lab,
  labSkipReason,
  sleep,
  SYSTEM_PATH,
  VIP,
  waitFor,
  type HealthRequest,
  type LabNode,
} from '../../lab/agent-lab.js'

const skip = labSkipReason()
const GRACE_MS = TERMINATION_GRACE_PERIOD_SECONDS * 1000
/** Where the blackholed "API server" listens inside each node (KUBERNETES_SERVICE_HOST/PORT for the reports). */
const BLACKHOLE_PORT = 6446
const blackholed = {KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(BLACKHOLE_PORT)}

/** The agent's own /readyz requests and handshakes since the `from`th entry, not the lab's readiness probe. */
const fromAgent = (requests: HealthRequest[], from: number) => requests.slice(from).filter((r) => !r.lab)

/** A process that exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

/** Pids of live processes whose command line mentions this text. */
function processesMentioning(text: string): number[] {
  const pids: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text) && alive(Number(entry))) pids.push(Number(entry))
    } catch {
      // exited while we looked
    }
  }
  return pids
}

describe('karp agent under faults', {skip}, () => {
  let lab: Lab

  before(async () => {
    lab = await Lab.create(2)
  })

  after(async () => {
    await lab?.destroy()
  })

  afterEach(async () => {
    for (const n of lab.nodes) {
      await lab.stopAgent(n).catch(() => lab.killAgent(n))
      await lab.killService(n)
      for (const p of n.extra.splice(0)) {
        killGroup(p.pid, 'SIGKILL')
        await p.exited
      }
    }
  })

  async function serve(node: LabNode, opts: Parameters<Lab['startService']>[1] = {}): Promise<void> {
    lab.startService(node, opts)
    await lab.waitForService(node)
  }

  describe('health check: the token goes to the API server or nobody', () => {
    it('sends no token to a TLS server whose certificate another CA signed, even one naming kubernetes and 127.0.0.1', async () => {
      const node = lab.nodes[0] as LabNode
      const rogueCa = makeCa('rogue CA', {key: testKey('rogue CA', 'ec')})
      const rogue = makeCertificate({
        commonName: 'kube-apiserver',
        key: testKey('rogue apiserver', 'ec'),
        issuer: rogueCa,
        dnsSans: API_SERVER_NAMES,
        ipSans: ['127.0.0.1'],
      })
      const tls = {cert: join(node.dir, 'rogue.crt'), key: join(node.dir, 'rogue.key')}
      writeFileSync(tls.cert, rogue.certPem)
      writeFileSync(tls.key, rogue.key.privatePem, {mode: 0o600})
      const from = lab.healthRequests(node).length
      const logFrom = lab.agentLog(node).length
      await serve(node, {tls})
      lab.startAgent(node)
      await waitFor('three health checks by the agent', 20_000, () => fromAgent(lab.healthRequests(node), from).length >= 3)
      const seen = fromAgent(lab.healthRequests(node), from)
      assert.deepEqual(
        seen.filter((r) => r.auth === 'token'),
        [],
        `the agent sent its token to a server the pod CA did not sign: ${JSON.stringify(seen)}`,
      )
      assert.ok(
        seen.every((r) => r.tlsError),
        `the agent completed a request to the rogue server: ${JSON.stringify(seen)}`,
      )
      // Gated from the start, the node says why, once for as long as the reason stays the same.
      const failing = lab
        .agentLog(node)
        .slice(logFrom)
        .split('\n')
        .filter((l) => l.includes('warning=health-check-failing'))
      assert.equal(failing.length, 1, failing.join('\n'))
      assert.match(failing[0] ?? '', /reason="karp-tls: the server's certificate is not signed by a CA of --ca" eligible=false$/)
      assert.equal(lab.statePid(node, 'ucarp.pid'), undefined, 'ucarp stays stopped while the health check fails')
      assert.equal(await lab.holdsVip(node), false)
    })

    it('sends no token over plain HTTP', async () => {
      const node = lab.nodes[0] as LabNode
      const from = lab.healthRequests(node).length
      await serve(node, {tls: false})
      lab.startAgent(node, {env: {KARP_HEALTH_URL: `http://127.0.0.1:${HEALTH_PORT}/readyz`}})
      await waitFor('three health checks by the agent', 20_000, () => fromAgent(lab.healthRequests(node), from).length >= 3)
      const seen = fromAgent(lab.healthRequests(node), from)
      assert.ok(
        seen.every((r) => r.auth === 'none'),
        `the agent sent an Authorization header over plain HTTP: ${JSON.stringify(seen)}`,
      )
    })

    it('sends the token to the API server whose certificate the pod CA signed for kubernetes (no 127.0.0.1 in it), and takes the VIP', async () => {
      const node = lab.nodes[0] as LabNode
      const from = lab.healthRequests(node).length
      await serve(node)
      lab.startAgent(node)
      assert.equal(await lab.waitForOneHolder(), node.name)
      const seen = fromAgent(lab.healthRequests(node), from)
      assert.ok(seen.length >= 2 && seen.every((r) => r.auth === 'token'), JSON.stringify(seen))
    })
  })

  describe('graceful stop with the API server (the role-report target) blackholed', () => {
    it('hands the VIP over and exits within the grace period', async () => {
      for (const n of lab.nodes) {
        lab.startSilentServer(n, '127.0.0.1', BLACKHOLE_PORT)
        await serve(n)
      }
      for (const n of lab.nodes) lab.startAgent(n, {env: blackholed})
      const old = lab.node(await lab.waitForOneHolder())
      const from = lab.agentLog(old).length
      // lab.stopAgent SIGTERMs as the kubelet does and throws when the agent is still there after the bound.
      assert.equal(await lab.stopAgent(old, GRACE_MS), 0)
      const holders = await lab.holders()
      assert.ok(holders.length === 1 && holders[0] !== old.name, `holders right after the stop: [${holders.join(', ')}]`)
      assert.match(lab.agentLog(old).slice(from), /role=stopped from=master .*successor=seen vip_released=now/)
      assert.match(lab.agentLog(old).slice(from), /warning=report-abandoned role=backup/)
    })

    it('lets the VIP go and exits within the grace period when no successor shows up (busybox, as in the image)', async () => {
      const node = lab.nodes[0] as LabNode
      lab.startSilentServer(node, '127.0.0.1', BLACKHOLE_PORT)
      await serve(node)
      lab.startAgent(node, {env: blackholed, toolset: 'busybox'})
      assert.equal(await lab.waitForOneHolder(), node.name)
      const from = lab.agentLog(node).length
      assert.equal(await lab.stopAgent(node, GRACE_MS), 0)
      assert.equal(await lab.holdsVip(node), false)
      assert.match(lab.agentLog(node).slice(from), /role=stopped from=master .*successor=timeout vip_released=now/)
      assert.match(lab.agentLog(node).slice(from), /warning=report-abandoned role=backup/)
    })
  })

  describe('ucarp killed while its up script runs', () => {
    /**
     * Starts the node's agent alone with an `ip` first on its PATH that holds `ip addr replace` of the VIP
     * (the add up.sh runs) until the test creates <gate>/release, and resolves once up.sh is held there. Role
     * reports go to a blackholed API server, so a stopping agent is still there (in its last report) when
     * the held add goes through, as in a pod: the VIP is on the host's interface and outlives the container
     * until its lease runs out. The lease is long here (10 minutes), so a VIP the agent left behind is still
     * there when the test looks: the kernel's expiry must not stand in for the agent's cleanup.
     */
    async function agentHeldInUpScript(node: LabNode): Promise<{gate: string; ucarp: number}> {
      const gate = mkdtempSync(join(lab.dir, 'ip-gate-'))
      const wrapper = join(gate, 'ip')
      writeFileSync(
        wrapper,
        `#!/bin/sh
case " $* " in
  *" addr replace ${VIP}/"*)
    : >"${gate}/held"
    while [ ! -e "${gate}/release" ]; do sleep 0.05; done
    "${IP}" "$@"
    rc=$?
    : >"${gate}/added"
    exit $rc
    ;;
esac
exec "${IP}" "$@"
`,
      )
      chmodSync(wrapper, 0o755)
      lab.startSilentServer(node, '127.0.0.1', BLACKHOLE_PORT)
      await serve(node)
      lab.startAgent(node, {env: {...blackholed, PATH: `${gate}:${SYSTEM_PATH}`, KARP_HANDOVER_TIMEOUT: '2', KARP_VIP_LIFETIME: '600'}})
      await waitFor('up.sh held in ip addr add', 20_000, () => existsSync(join(gate, 'held')))
      const ucarp = lab.statePid(node, 'ucarp.pid')
      assert.ok(ucarp)
      return {gate, ucarp}
    }

    /** SIGTERM; once the agent logged `pattern`, the held add goes through; the agent's exit code. */
    async function stopAndRelease(node: LabNode, gate: string, pattern: RegExp): Promise<number | null> {
      const agent = node.agent
      assert.ok(agent)
      const from = lab.agentLog(node).length
      process.kill(agent.pid, 'SIGTERM')
      await waitFor(`the stopping agent to log ${pattern}`, GRACE_MS, () => pattern.test(lab.agentLog(node).slice(from)))
      writeFileSync(join(gate, 'release'), '')
      const code = await Promise.race([agent.exited, sleep(GRACE_MS).then(() => 'timeout' as const)])
      assert.notEqual(code, 'timeout', `the agent did not exit within ${GRACE_MS} ms of SIGTERM`)
      await waitFor('nothing left of the held up.sh', 10_000, () => processesMentioning(gate).length === 0)
      return code as number | null
    }

    it('leaves no VIP when up.sh, past its checks, adds it while the agent stops', async () => {
      const node = lab.nodes[0] as LabNode
      const {gate, ucarp} = await agentHeldInUpScript(node)
      // Released as soon as the agent has looked at the VIP (role=stopped) or says it waits for the hook.
      assert.equal(await stopAndRelease(node, gate, /role=stopped|waiting_for_hook=/), 0)
      assert.equal(alive(ucarp), false)
      assert.ok(existsSync(join(gate, 'added')), 'the held ip addr replace ran')
      assert.equal(await lab.holdsVip(node), false, 'the VIP stayed on a node that no longer advertises it')
      assert.equal(readFileSync(join(node.dir, 'state', 'role'), 'utf8').trim(), 'backup')
    })

    it("leaves no VIP when up.sh is held past the agent's patience and goes on after the agent let the VIP go", async () => {
      const node = lab.nodes[0] as LabNode
      const {gate} = await agentHeldInUpScript(node)
      const from = lab.agentLog(node).length
      assert.equal(await stopAndRelease(node, gate, /role=stopped/), 0)
      assert.equal(await lab.holdsVip(node), false, 'the VIP stayed on a node that no longer advertises it')
      assert.match(lab.agentLog(node).slice(from), /warning=hook-killed/)
    })
  })
})
