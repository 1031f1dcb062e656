import {Lab, sleep} from './lab.js'
const lab = await Lab.create(3)
try {
  for (const n of lab.nodes) lab.startService(n)
  for (const n of lab.nodes) await lab.waitForService(n)
  for (const n of lab.nodes) lab.startAgent(n)
  const h = await lab.waitForOneHolder(20000)
  console.log('holder', h, await lab.probe(), await lab.clientArpNode())
  for (const n of lab.nodes) console.log('rss', n.name, Lab.treeRssKb(n.agent!.pid))
  const holder = lab.node(h)
  const t0 = Date.now()
  await lab.stopAgent(holder)
  console.log('stopped in', Date.now() - t0)
  console.log('holders', await lab.holders(), await lab.probe(), await lab.clientArpNode())
  await sleep(3000)
  console.log('holders', await lab.holders())
} finally {
  for (const n of lab.nodes) console.log(`--- ${n.name}\n${lab.agentLog(n)}`)
  await lab.destroy()
}
