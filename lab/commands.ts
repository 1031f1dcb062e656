// What a person can do to a running lab (`npm run lab -- COMMAND`): the background process that holds the
// cluster serves these on a Unix socket in the lab directory, one request per connection: a JSON line
// {"command": ..., "args": [...]} in, text out, the connection closed when the command is done.
import {createConnection, createServer, type Server} from 'node:net'
import type {Cluster} from './cluster.js'

export const COMMANDS: Record<string, {args: string; does: string}> = {
  status: {args: '', does: 'nodes, who holds the VIP, memory'},
  'kill-node': {args: 'NODE', does: 'power loss: every process of NODE killed, its link cut'},
  'restore-node': {args: 'NODE', does: 'NODE comes back: link up, its processes started on their state'},
  'kill-apiserver': {args: 'NODE', does: 'SIGKILL to the kube-apiserver of NODE only'},
  'restore-apiserver': {args: 'NODE', does: 'start the kube-apiserver of NODE again'},
  'kill-holder': {args: '', does: 'kill-node of the node that holds the VIP'},
}

interface Request {
  command: string
  args: string[]
}

async function labStatus(cluster: Cluster): Promise<string> {
  const holders = await cluster.holders()
  const lines = cluster.allNodes.map((n) => {
    const state = n.down ? 'powered off' : `${(cluster.nodeRssKb(n.name) / 1024).toFixed(0)} MB`
    const role = cluster.isWorker(n.name) ? 'worker       ' : holders.includes(n.name) ? 'holds the VIP' : '             '
    return `  ${n.name.padEnd(7)} ${n.host.ip.padEnd(11)} ${role}  ${state}`
  })
  return `VIP ${cluster.vip}: ${holders.length === 0 ? 'held by nobody right now' : `on ${holders.join(', ')}`}\n${lines.join('\n')}`
}

/** The one node the command names; a control-plane node where the command needs one. */
function nodeArg(cluster: Cluster, args: string[], controlPlane = false): string {
  const names = (controlPlane ? cluster.nodes : cluster.allNodes).map((n) => n.name)
  const name = args[0]
  if (!name || args.length !== 1 || !names.includes(name)) {
    throw new Error(
      `name one ${controlPlane ? 'control-plane ' : ''}node${name ? `, not ${JSON.stringify(args.join(' '))}` : ''}: ${names.join(', ')}`,
    )
  }
  return name
}

/** Runs one command against the cluster; its output for the person who asked. */
export async function runCommand(cluster: Cluster, {command, args}: Request): Promise<string> {
  switch (command) {
    case 'status':
      return labStatus(cluster)
    case 'kill-node': {
      const name = nodeArg(cluster, args)
      if (cluster.node(name).down) throw new Error(`${name} is powered off already; restore-node ${name} brings it back`)
      await cluster.powerOff(name)
      if (cluster.isWorker(name))
        return `${name} lost power: kubelet, containerd, kube-proxy killed, link cut. It runs no agent: the VIP stays where it is.`
      return `${name} lost power: etcd member, API server, controller-manager, scheduler, kubelet, containerd, agent, kube-proxy killed, link cut.\nAnother node takes the VIP over in about 3 s; the VIP's lease on the dead node runs out within 4 s.`
    }
    case 'restore-node': {
      const name = nodeArg(cluster, args)
      if (!cluster.node(name).down) throw new Error(`${name} is running; kill-node ${name} first`)
      await cluster.powerOn(name)
      await cluster.node(name).kube.waitReady(60_000)
      if (cluster.isWorker(name)) return `${name} is back and Ready.`
      return `${name} is back and Ready; its kubelet restarts the agent, which joins as backup.`
    }
    case 'kill-apiserver': {
      const name = nodeArg(cluster, args, true)
      await cluster.killApiServer(name)
      return `killed the kube-apiserver of ${name}; its agent's health gate hands the VIP over if it held it.`
    }
    case 'restore-apiserver': {
      const name = nodeArg(cluster, args, true)
      await cluster.startApiServer(name)
      return `the kube-apiserver of ${name} is ready again; its agent becomes eligible after two good checks.`
    }
    case 'kill-holder': {
      const holders = await cluster.holders()
      const live = holders.filter((h) => !cluster.node(h).down)
      if (live.length === 0) throw new Error('no running node holds the VIP right now; try again in a few seconds')
      for (const name of live) await cluster.powerOff(name)
      return `${live.join(', ')} lost power (held the VIP). restore-node ${live[0]} brings it back.`
    }
    default:
      throw new Error(`unknown command ${JSON.stringify(command)}; commands: ${Object.keys(COMMANDS).join(', ')}`)
  }
}

/** Serves commands on `socket`; one at a time, as they change the lab. */
export function serveCommands(cluster: Cluster, socket: string, log: (line: string) => void): Server {
  let queue: Promise<unknown> = Promise.resolve()
  const server = createServer((conn) => {
    let input = ''
    conn.on('data', (chunk) => {
      input += chunk.toString()
      if (!input.includes('\n')) return
      const line = input.slice(0, input.indexOf('\n'))
      queue = queue.then(async () => {
        let reply: string
        try {
          const request = JSON.parse(line) as Request
          log(`command: ${request.command} ${request.args.join(' ')}`)
          reply = `ok ${await runCommand(cluster, request)}`
        } catch (err) {
          reply = `error ${(err as Error).message}`
        }
        conn.end(`${reply}\n`)
      })
    })
    conn.on('error', () => {})
  })
  server.listen(socket)
  return server
}

/** Sends one command to the lab's socket; resolves with its reply (rejects with the lab's error). */
export function sendCommand(socket: string, command: string, args: string[], timeoutMs = 180_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const conn = createConnection(socket)
    let output = ''
    const timer = setTimeout(() => {
      conn.destroy()
      reject(new Error(`no answer from the lab within ${timeoutMs / 1000} s`))
    }, timeoutMs)
    conn.on('connect', () => conn.write(`${JSON.stringify({command, args})}\n`))
    conn.on('data', (chunk) => (output += chunk.toString()))
    conn.on('error', (err) => {
      clearTimeout(timer)
      reject(new Error(`cannot reach the lab at ${socket}: ${err.message}`))
    })
    conn.on('end', () => {
      clearTimeout(timer)
      const text = output.trimEnd()
      if (text.startsWith('ok ')) resolve(text.slice(3))
      else reject(new Error(text.replace(/^error /, '') || 'the lab closed the connection without an answer'))
    })
  })
}
