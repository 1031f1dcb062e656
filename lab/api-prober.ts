// The lab's kubectl stand-in for outage figures: every INTERVAL ms, a real `GET /readyz` on SERVER with the
// credentials of KUBECONFIG's current context (client certificate or token, the cluster's CA), each on a
// new connection, as a fresh kubectl command would open. Runs in the client namespace until SIGTERM; one
// line per request on stdout, "<start, ms since epoch> <HTTP status or ->". Requests overlap when one hangs
// (no ARP answer for the VIP), so each keeps its own start time.
import {readFileSync} from 'node:fs'
import {request} from 'node:https'
import {parse} from 'yaml'

interface NamedCluster {
  name: string
  cluster: {'certificate-authority-data'?: string; 'certificate-authority'?: string}
}
interface NamedUser {
  name: string
  user: {
    'client-certificate-data'?: string
    'client-certificate'?: string
    'client-key-data'?: string
    'client-key'?: string
    token?: string
  }
}
interface Kubeconfig {
  'current-context'?: string
  contexts?: {name: string; context: {cluster: string; user: string}}[]
  clusters?: NamedCluster[]
  users?: NamedUser[]
}

const [kubeconfigFile, server, intervalArg, timeoutArg] = process.argv.slice(2)
if (!kubeconfigFile || !server) {
  console.error('usage: api-prober.ts KUBECONFIG SERVER_URL [INTERVAL_MS] [TIMEOUT_MS]')
  process.exit(2)
}
const interval = Number(intervalArg ?? 50)
const timeout = Number(timeoutArg ?? 1000)

function material(data: string | undefined, file: string | undefined): string | undefined {
  if (data) return Buffer.from(data, 'base64').toString()
  return file ? readFileSync(file, 'utf8') : undefined
}

const config = parse(readFileSync(kubeconfigFile, 'utf8')) as Kubeconfig
const context = config.contexts?.find((c) => c.name === config['current-context'])?.context
const cluster = config.clusters?.find((c) => c.name === context?.cluster)?.cluster
const user = config.users?.find((u) => u.name === context?.user)?.user
if (!cluster || !user) {
  console.error(`api-prober: ${kubeconfigFile} has no current context with a cluster and a user`)
  process.exit(2)
}
const tls = {
  ca: material(cluster['certificate-authority-data'], cluster['certificate-authority']),
  cert: material(user['client-certificate-data'], user['client-certificate']),
  key: material(user['client-key-data'], user['client-key']),
}
const headers: Record<string, string> = user.token ? {authorization: `Bearer ${user.token}`} : {}
const url = new URL('/readyz', server)

function probe(): void {
  const start = Date.now()
  let done = false
  const finish = (result: string): void => {
    if (done) return
    done = true
    process.stdout.write(`${start} ${result}\n`)
  }
  const req = request(url, {...tls, headers, agent: false, timeout}, (res) => {
    res.resume()
    res.on('end', () => finish(String(res.statusCode)))
    res.on('error', () => finish('-'))
  })
  req.on('timeout', () => req.destroy(new Error('timeout')))
  req.on('error', () => finish('-'))
  req.end()
}

const timer = setInterval(probe, interval)
probe()
process.on('SIGTERM', () => {
  clearInterval(timer)
  // In-flight requests end within the timeout; then the process exits on its own.
  setTimeout(() => process.exit(0), timeout + 100).unref()
})
