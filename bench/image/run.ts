// Agent image benchmark: the compressed and unpacked size of each architecture and its biggest files, then
// the memory of all agent processes of one node under the health gate (checks every 0.5 s through karp-tls).
//
//   node --import tsx bench/image/run.ts [--seconds 20] [--interval-ms 5]
//
// Memory is sampled every few ms over the agent's process tree (entrypoint shell, ucarp, its scripts, each
// check's karp-tls): the sum of RSS (shared pages counted once per process: an upper bound) and the sum of
// PSS (shared pages split among the processes that map them: what the node really spends). Median and peak
// of each. The agent runs in the network-namespace lab (test/e2e/lab.ts) with busybox ash, the same ucarp
// package and the same karp-tls bytes as the image's amd64 root. Needs root.
import {parseArgs} from 'node:util'
import {Lab, labSkipReason, sleep} from '../../lab/agent-lab.js'
import {memoryKb} from '../../lab/process.js'
import {agentImage} from '../../lab/image.js'

const {values} = parseArgs({options: {seconds: {type: 'string', default: '20'}, 'interval-ms': {type: 'string', default: '5'}}})
const seconds = Number(values.seconds)
const intervalMs = Number(values['interval-ms'])

const mb = (kb: number) => `${(kb / 1024).toFixed(2)} MB`

async function sizes(): Promise<void> {
  const summary = await agentImage()
  console.log(`image ${summary.reference}`)
  for (const [arch, p] of Object.entries(summary.platforms)) {
    const files = p.files.filter((f) => f.type === 'file')
    const unpacked = files.reduce((sum, f) => sum + f.size, 0)
    console.log(
      `${arch.padEnd(6)} compressed ${(p.layerSize / 1e6).toFixed(2)} MB, unpacked ${(unpacked / 1e6).toFixed(2)} MB, ${files.length} files, ${p.files.length} entries`,
    )
    const biggest = [...files].sort((a, b) => b.size - a.size).slice(0, 6)
    console.log(`       biggest: ${biggest.map((f) => `${f.path} ${(f.size / 1e3).toFixed(0)} kB`).join(', ')}`)
  }
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return {median: s[Math.floor(s.length / 2)] ?? 0, max: s.at(-1) ?? 0}
}

async function agentMemory(): Promise<void> {
  const skip = labSkipReason()
  if (skip) {
    console.log(`agent memory: skipped (${skip})`)
    return
  }
  const lab = await Lab.create(1)
  try {
    const node = lab.nodes[0]
    if (!node) throw new Error('lab has no node')
    lab.startService(node)
    const agent = lab.startAgent(node, {toolset: 'busybox'})
    await lab.waitForOneHolder(30_000)
    const rss: number[] = []
    const pss: number[] = []
    let most = 0
    const end = Date.now() + seconds * 1000
    while (Date.now() < end) {
      const m = memoryKb(Lab.processTree(agent.pid))
      rss.push(m.rss)
      pss.push(m.pss)
      most = Math.max(most, m.processes)
      await sleep(intervalMs)
    }
    const r = stats(rss)
    const p = stats(pss)
    console.log(
      `agent memory, one node holding the VIP, health check every 0.5 s (${rss.length} samples over ${seconds} s, up to ${most} processes at once)`,
    )
    console.log(`  sum of RSS: median ${mb(r.median)}, peak ${mb(r.max)}`)
    console.log(`  sum of PSS: median ${mb(p.median)}, peak ${mb(p.max)}   (target: <= 8 MB, peaks included)`)
  } finally {
    await lab.destroy()
  }
}

await sizes()
await agentMemory()
