// karp-arp-watch (agent/tls/karp-arp-watch.c), the event a yielding master waits for before it lets the VIP
// go: a gratuitous ARP for the VIP from another MAC. Run in two nodes of the agent lab (lab/agent-lab.ts),
// with real ARP packets from busybox arping and from ucarp itself; no agent runs.
import assert from 'node:assert/strict'
import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {agentInstallDir, Lab, labSkipReason, sleep, VHID, VIP, waitFor, type LabNode} from '../../lab/agent-lab.js'
import {karpTlsDir} from '../../lab/karp-tls.js'

const skip = labSkipReason()
const OTHER_ADDRESS = '10.77.0.21'

describe('karp-arp-watch', {skip}, () => {
  let lab: Lab
  let watcher: LabNode
  let other: LabNode
  let runs = 0
  /** karp-arp-watch started in the watcher's namespace; done gives its exit code and what it wrote. */
  const watch = (args: string[]): {done: Promise<{code: number | null; out: string}>} => {
    const log = join(watcher.dir, `arp-watch-${++runs}.log`)
    const p = lab.spawnIn(watcher.ns, [join(karpTlsDir(), 'karp-arp-watch'), ...args], {}, log)
    return {done: p.exited.then((code) => ({code, out: readFileSync(log, 'utf8')}))}
  }
  const busyboxArping = (node: LabNode, mode: '-U' | '-A', address: string) =>
    lab.net.exec(node.ns, ['busybox', 'arping', mode, '-c', '1', '-w', '1', '-I', 'eth0', address])

  before(async () => {
    lab = await Lab.create(2)
    ;[watcher, other] = lab.nodes as [LabNode, LabNode]
  })
  after(async () => {
    await lab?.destroy()
  })

  for (const mode of ['-U', '-A'] as const) {
    it(`sees another node's gratuitous ARP for the address (arping ${mode}) and prints its MAC`, async () => {
      await lab.net.exec(other.ns, ['ip', 'addr', 'replace', `${VIP}/32`, 'dev', 'eth0'])
      try {
        const w = watch(['--iface', 'eth0', '--ip', VIP, '--timeout', '10'])
        await sleep(300)
        await busyboxArping(other, mode, VIP)
        const {code, out} = await w.done
        assert.equal(code, 0)
        assert.equal(out.trim(), other.mac)
      } finally {
        await lab.net.exec(other.ns, ['ip', 'addr', 'del', `${VIP}/32`, 'dev', 'eth0'])
      }
    })
  }

  it('sees the gratuitous ARP ucarp sends when it becomes master', async () => {
    const w = watch(['--iface', 'eth0', '--ip', VIP, '--timeout', '15'])
    const ucarp = lab.spawnIn(
      other.ns,
      [
        'ucarp',
        '--interface=eth0',
        `--srcip=${other.ip}`,
        `--vhid=${VHID}`,
        '--pass=arp-watch',
        `--addr=${VIP}`,
        '--advbase=1',
        '--upscript=/bin/true',
        '--downscript=/bin/true',
      ],
      {},
      join(other.dir, 'ucarp.log'),
    )
    try {
      const {code, out} = await w.done
      assert.equal(code, 0)
      assert.equal(out.trim(), other.mac)
    } finally {
      process.kill(ucarp.pid, 'SIGKILL')
      await ucarp.exited
    }
  })

  it("starts COMMAND once it listens: the gratuitous ARP a yielding master's advertisement provokes is seen", async () => {
    // The other node is ucarp master and has long sent its own announcements: without a provocation, none comes.
    const password = join(watcher.dir, 'carp-password')
    writeFileSync(password, 'arp-watch\n')
    const ucarp = lab.spawnIn(
      other.ns,
      [
        'env',
        `LD_PRELOAD=${join(agentInstallDir(), 'karp-pcap-immediate.so')}`,
        'ucarp',
        '--interface=eth0',
        `--srcip=${other.ip}`,
        `--vhid=${VHID}`,
        '--pass=arp-watch',
        `--addr=${VIP}`,
        '--advbase=1',
        '--upscript=/bin/true',
        '--downscript=/bin/true',
      ],
      {},
      join(other.dir, 'ucarp-provoked.log'),
    )
    try {
      const log = join(other.dir, 'ucarp-provoked.log')
      await waitFor('ucarp master', 10_000, () => existsSync(log) && readFileSync(log, 'utf8').includes('Switching to state: MASTER'))
      await sleep(3500) // its delayed second announcement, two advertisements after the election
      const quiet = await watch(['--iface', 'eth0', '--ip', VIP, '--timeout', '2']).done
      assert.equal(quiet.code, 1, 'a master announces nothing unprovoked')
      // As down.sh does after a yield: this node's advertisement, less preferred than the master's (skew 200).
      const leave = [
        join(karpTlsDir(), 'karp-carp-leave'),
        '--srcip',
        watcher.ip,
        '--vhid',
        VHID,
        '--vip',
        VIP,
        '--passfile',
        password,
        '--advbase',
        '1',
        '--advskew',
        '200',
      ]
      const {code, out} = await watch(['--iface', 'eth0', '--ip', VIP, '--timeout', '3', '--', ...leave]).done
      assert.equal(code, 0, out)
      assert.equal(out.trim(), other.mac)
      assert.match(readFileSync(log, 'utf8'), /Non-preferred master advertising: reasserting control of VIP/)
    } finally {
      process.kill(ucarp.pid, 'SIGKILL')
      await ucarp.exited
    }
  })

  it("ignores its own node's announcements, other addresses and ordinary ARP requests, and times out with 1", async () => {
    await lab.net.exec(watcher.ns, ['ip', 'addr', 'replace', `${VIP}/32`, 'dev', 'eth0'])
    await lab.net.exec(other.ns, ['ip', 'addr', 'replace', `${OTHER_ADDRESS}/32`, 'dev', 'eth0'])
    try {
      const w = watch(['--iface', 'eth0', '--ip', VIP, '--timeout', '3'])
      await sleep(300)
      await busyboxArping(watcher, '-U', VIP) // its own MAC
      await busyboxArping(other, '-U', OTHER_ADDRESS) // another address
      // Who-has VIP from the other node: sender address is the other node's own, not the VIP.
      await lab.net.exec(other.ns, ['busybox', 'arping', '-c', '1', '-w', '1', '-I', 'eth0', VIP])
      const {code, out} = await w.done
      assert.equal(code, 1)
      assert.equal(out, '')
    } finally {
      await lab.net.exec(watcher.ns, ['ip', 'addr', 'del', `${VIP}/32`, 'dev', 'eth0'])
      await lab.net.exec(other.ns, ['ip', 'addr', 'del', `${OTHER_ADDRESS}/32`, 'dev', 'eth0'])
    }
  })

  for (const [args, message, exit] of [
    [['--iface', 'eth0', '--ip', '10.77.0.300', '--timeout', '1'], /--ip "10\.77\.0\.300" is not an IPv4 address/, 2],
    [['--iface', 'eth0', '--ip', VIP, '--timeout', '0'], /--timeout "0" is not a number of seconds above 0, at most 86400/, 2],
    [['--iface', 'eth0', '--ip', VIP, '--timeout', '1s'], /--timeout "1s" is not a number of seconds/, 2],
    [['--iface', 'eth0', '--ip', VIP], /usage: karp-arp-watch --iface NAME --ip ADDRESS --timeout SECONDS/, 2],
    [
      ['--iface', 'a-very-long-interface-name', '--ip', VIP, '--timeout', '1'],
      /--iface "a-very-long-interface-name" is not an interface name/,
      2,
    ],
    [['--iface', 'nosuch0', '--ip', VIP, '--timeout', '1'], /no interface named "nosuch0"/, 3],
    [['--iface', 'eth0', '--ip', VIP, '--timeout', '1', '--'], /usage: karp-arp-watch .* \[-- COMMAND \[ARGUMENT\.\.\.\]\]/, 2],
    [
      ['--iface', 'eth0', '--ip', VIP, '--timeout', '1', '--', '/nonexistent/provoke'],
      /cannot start "\/nonexistent\/provoke": No such file or directory/,
      3,
    ],
  ] as const) {
    it(`refuses ${args.join(' ')} with exit ${exit}`, async () => {
      const r = await lab.net.exec(watcher.ns, [join(karpTlsDir(), 'karp-arp-watch'), ...args])
      assert.equal(r.exitCode, exit)
      assert.match(r.stderr, message)
    })
  }
})
