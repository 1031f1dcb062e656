// karp-pcap-immediate.so (agent/tls/karp-pcap-immediate.c), preloaded into Debian's ucarp by the agent: what
// the agent relies on, checked on real ucarp processes in the agent lab (lab/agent-lab.ts). How much sooner
// advertisements are read is a timing, measured by bench/failover, not here.
import assert from 'node:assert/strict'
import {chmodSync, existsSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {agentInstallDir, Lab, labSkipReason, sleep, VHID, VIP, waitFor, type LabNode, type Proc} from '../../lab/agent-lab.js'
import {karpTlsDir} from '../../lab/karp-tls.js'

const skip = labSkipReason()

/** Size (kB) of the mappings of a process that are its packet sockets' capture rings. */
function ringKb(pid: number): number {
  let total = 0
  let socket = false
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) socket = /socket:\[/.test(line)
    else if (socket && line.startsWith('Size:')) total += Number(/(\d+)/.exec(line)?.[1] ?? 0)
  }
  return total
}

describe('karp-pcap-immediate.so in ucarp', {skip}, () => {
  let lab: Lab
  let node: LabNode
  const preload = () => join(agentInstallDir(), 'karp-pcap-immediate.so')
  /** ucarp as the agent starts it (its up script records the environment it was given), elected master. */
  const startUcarp = async (name: string, env: Record<string, string>): Promise<{ucarp: Proc; upEnv: string}> => {
    const upEnv = join(node.dir, `${name}.up-env`)
    const up = join(node.dir, `${name}.up.sh`)
    writeFileSync(up, `#!/bin/sh\nenv > ${upEnv}\n`)
    chmodSync(up, 0o755)
    // env sets LD_PRELOAD for ucarp alone, as the agent does (`LD_PRELOAD=... ucarp`).
    const ucarp = lab.spawnIn(
      node.ns,
      [
        'env',
        ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
        'ucarp',
        '--interface=eth0',
        `--srcip=${node.ip}`,
        `--vhid=${VHID}`,
        '--pass=pcap-test',
        `--addr=${VIP}`,
        '--advbase=1',
        `--upscript=${up}`,
        '--downscript=/bin/true',
      ],
      {},
      join(node.dir, `${name}.log`),
    )
    await waitFor(`${name} elected (its up script ran)`, 10_000, () => existsSync(upEnv))
    return {ucarp, upEnv}
  }
  const stop = async (ucarp: Proc) => {
    process.kill(ucarp.pid, 'SIGKILL')
    await ucarp.exited
  }

  before(async () => {
    lab = await Lab.create(1)
    node = lab.nodes[0] as LabNode
  })
  after(async () => {
    await lab?.destroy()
  })

  it("is loaded into ucarp, opens a small ring instead of libpcap's 2 MiB, and leaves the hooks' environment", async () => {
    const {ucarp, upEnv} = await startUcarp('preloaded', {LD_PRELOAD: preload()})
    try {
      assert.match(readFileSync(`/proc/${ucarp.pid}/maps`, 'utf8'), /karp-pcap-immediate\.so/)
      const ring = ringKb(ucarp.pid)
      assert.ok(ring > 0 && ring <= 128, `capture ring ${ring} kB`)
      // ucarp's hooks inherit its environment; the library takes itself out of it when it loads.
      assert.doesNotMatch(readFileSync(upEnv, 'utf8'), /LD_PRELOAD/)
    } finally {
      await stop(ucarp)
    }
  })

  it("ucarp without it, for comparison: libpcap's default ring of 2 MiB", async () => {
    const {ucarp} = await startUcarp('plain', {})
    try {
      assert.ok(ringKb(ucarp.pid) >= 2048, `capture ring ${ringKb(ucarp.pid)} kB`)
      assert.doesNotMatch(readFileSync(`/proc/${ucarp.pid}/maps`, 'utf8'), /karp-pcap-immediate\.so/)
    } finally {
      await stop(ucarp)
    }
  })

  it('leaves a program without libpcap that loads it working', async () => {
    const r = await lab.net.exec(node.ns, ['busybox', 'sh', '-c', 'echo fine'], {env: {LD_PRELOAD: preload()}})
    assert.equal(r.exitCode, 0, r.stderr)
    assert.equal(r.stdout.trim(), 'fine')
  })

  it("refuses an interface libpcap cannot capture on with libpcap's own message, and ucarp exits", async () => {
    // A veth pair of the test's own in the node's namespace, left down: capture needs an interface that is up.
    await lab.net.exec(node.ns, ['ip', 'link', 'add', 'down0', 'type', 'veth', 'peer', 'name', 'down1'])
    try {
      const run = (env: string[]) =>
        lab.net.exec(
          node.ns,
          ['env', ...env, 'ucarp', '--interface=down0', '--srcip=10.77.0.250', `--vhid=${VHID}`, '--pass=pcap-test', `--addr=${VIP}`],
          {timeoutMs: 10_000},
        )
      const preloaded = await run([`LD_PRELOAD=${preload()}`])
      const plain = await run([])
      assert.equal(preloaded.exitCode, 2)
      const message = (r: {stderr: string}) => /\[ERROR\] (Unable to open interface .*)/.exec(r.stderr)?.[1]
      assert.equal(message(preloaded), 'Unable to open interface [down0]: down0: That device is not up')
      assert.equal(message(preloaded), message(plain))
    } finally {
      await lab.net.exec(node.ns, ['ip', 'link', 'del', 'down0'])
    }
  })
})

describe("karp-pcap-immediate.so holding back a leaving master's advertisement", {skip}, () => {
  let lab: Lab
  let passfile: string
  const preload = () => join(agentInstallDir(), 'karp-pcap-immediate.so')
  const ucarps: Proc[] = []
  /** ucarp on a node, with advbase 1 and the default dead ratio (3 s); its up script leaves a file. */
  const startUcarp = (node: LabNode, skew: number, env: Record<string, string>) => {
    const upRan = join(node.dir, 'hold.up-ran')
    const up = join(node.dir, 'hold.up.sh')
    writeFileSync(up, `#!/bin/sh\nenv > ${upRan}\n`)
    chmodSync(up, 0o755)
    const log = join(node.dir, 'hold.log')
    const ucarp = lab.spawnIn(
      node.ns,
      [
        'env',
        ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
        'ucarp',
        '--interface=eth0',
        `--srcip=${node.ip}`,
        `--vhid=${VHID}`,
        `--passfile=${passfile}`,
        `--addr=${VIP}`,
        '--advbase=1',
        `--advskew=${skew}`,
        `--upscript=${up}`,
        '--downscript=/bin/true',
      ],
      {},
      log,
    )
    ucarps.push(ucarp)
    return {ucarp, upRan: () => existsSync(upRan), log: () => readFileSync(log, 'utf8')}
  }
  const held = (holdMs: number) => ({LD_PRELOAD: preload(), PCAP_IMMEDIATE_HOLD_MS: String(holdMs), PCAP_IMMEDIATE_DEAD_MS: '3000'})
  /** What the agent does when its API server dies: its ucarp gone, it announces an interval of 4 s (> 3 s). */
  const leave = async (node: LabNode, ucarp: Proc) => {
    process.kill(ucarp.pid, 'SIGKILL')
    await ucarp.exited
    const sent = await lab.net.exec(node.ns, [
      join(karpTlsDir(), 'karp-carp-leave'),
      '--srcip',
      node.ip,
      '--vhid',
      VHID,
      '--vip',
      VIP,
      '--passfile',
      passfile,
      '--advbase',
      '4',
    ])
    assert.equal(sent.exitCode, 0, sent.stderr)
  }

  before(async () => {
    lab = await Lab.create(3)
    passfile = join(lab.nodes[0]!.dir, 'hold.pass')
    writeFileSync(passfile, 'hold-test\n', {mode: 0o600})
  })
  after(async () => {
    for (const ucarp of ucarps) if (ucarp.running) process.kill(ucarp.pid, 'SIGKILL')
    await Promise.all(ucarps.map((u) => u.exited))
    await lab?.destroy()
  })

  it("lets the backup that holds it back least take over, and the other drops it on that one's advertisement", async () => {
    const [master, slow, fast] = lab.nodes as [LabNode, LabNode, LabNode]
    const old = startUcarp(master, 0, {})
    await waitFor('the skew-0 ucarp elected', 10_000, () => old.upRan())
    const waiting = startUcarp(slow, 100, held(800))
    const first = startUcarp(fast, 10, held(40))
    await sleep(2500) // both backups have read the master's advertisements
    assert.ok(!waiting.upRan() && !first.upRan(), 'the backups stayed backups while the master advertised')
    await leave(master, old.ucarp)
    // ucarp logs why after its up script ran.
    await waitFor(`${fast.name} elected on the leaving advertisement`, 5000, () =>
      /Putting MASTER DOWN \(going to time out\)/.test(first.log()),
    )
    assert.ok(first.upRan())
    // Like LD_PRELOAD, the settings leave the environment that ucarp's hooks inherit.
    assert.doesNotMatch(readFileSync(join(fast.dir, 'hold.up-ran'), 'utf8'), /PCAP_IMMEDIATE_|LD_PRELOAD/)
    assert.match(first.log(), /karp-pcap-immediate: passed on the leaving advertisement of vhid 42 from 10\.77\.0\.11 after \d+ ms/)
    await waitFor(`${slow.name} to drop what it held`, 5000, () => /karp-pcap-immediate: dropped/.test(waiting.log()))
    assert.match(
      waiting.log(),
      /karp-pcap-immediate: dropped the leaving advertisement of vhid 42 from 10\.77\.0\.11: 10\.77\.0\.13 advertised \d+ ms later/,
    )
    // Past the dead interval: it reads the new master's advertisements and never took over.
    await sleep(4000)
    assert.ok(!waiting.upRan(), `${slow.name} took over too:\n${waiting.log()}`)
    assert.doesNotMatch(waiting.log(), /going to time out|passed on/)
    const heldMs = Number(/passed on .* after (\d+) ms/.exec(first.log())?.[1])
    assert.ok(heldMs >= 40, `held ${heldMs} ms, asked for 40`)
  })

  it('passes it on once the hold is over when nobody takes over meanwhile, and drops its repeat', async () => {
    const [, slow, fast] = lab.nodes as [LabNode, LabNode, LabNode]
    const master = ucarps.at(-1) as Proc
    const waiting = () => readFileSync(join(slow.dir, 'hold.log'), 'utf8')
    await leave(fast, master)
    await waitFor(`${slow.name} elected on the leaving advertisement`, 5000, () =>
      /Putting MASTER DOWN \(going to time out\)/.test(waiting()),
    )
    assert.ok(existsSync(join(slow.dir, 'hold.up-ran')))
    const passed = [...waiting().matchAll(/passed on the leaving advertisement of vhid 42 from 10\.77\.0\.13 after (\d+) ms/g)]
    assert.equal(passed.length, 1, waiting())
    assert.ok(Number(passed[0]?.[1]) >= 800, `held ${passed[0]?.[1]} ms, asked for 800`)
  })
})
