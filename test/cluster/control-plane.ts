// Starts a real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and
// kwok when asked) from the binaries lab/k8s/build.sh builds, all state in one temp dir, and stops it again.
import {spawn, type ChildProcess} from 'node:child_process'
import {mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync, appendFileSync} from 'node:fs'
import {request} from 'node:https'
import {createServer, isIPv6} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {stringify} from 'yaml'
import {resolveBinDir} from '../../lab/binaries.js'
import {createCa, issueClientCert, issueServingCert, rsaKeyPem, type KeyPair} from '../../lab/pki.js'

export {resolveBinDir}

export type Component = 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler' | 'kwok'

export interface KwokOptions {
  /** kwok's configuration file (its Stages). */
  config: string
  /** key=value: kwok manages the Nodes carrying this annotation, and no others. */
  nodeAnnotation: string
}

export interface ControlPlaneOptions {
  /** Address the API server binds to and advertises; default 127.0.0.1. */
  bindAddress?: string
  /** Extra IPs and DNS names for the API server's serving certificate. */
  extraSans?: string[]
  /** Directory holding the binaries; default: whatever lab/k8s/build.sh prints. */
  binDir?: string
  /**
   * Runs etcd and kube-apiserver under this prefix, e.g. ['ip', 'netns', 'exec', ns]. etcd then listens on
   * 127.0.0.1 inside that namespace (its loopback must be up); the other components stay here and reach
   * the API server at bindAddress. The prefix must exec the command (keep its pid), as `ip netns exec` does.
   */
  commandPrefix?: string[]
  /** Give up when the control plane is not ready after this long; default 90 s. */
  timeoutMs?: number
  /**
   * Also runs kwok, which makes fake Nodes Ready and their pods Running (bench/kwok-nodes.ts). Default none:
   * fake nodes are for benchmarks where scale is the point; tests use plain or real nodes.
   */
  kwok?: KwokOptions
}

export interface ControlPlane {
  /** https://bindAddress:port */
  server: string
  caPem: string
  caFile: string
  caKeyFile: string
  /** Kubeconfig of an admin (group system:masters). */
  adminKubeconfig: string
  /** Kubeconfig of an unprivileged user (no groups beyond system:authenticated, no RBAC bindings). */
  userKubeconfig: string
  userName: string
  tempDir: string
  binDir: string
  /** Of the components started. */
  pids: Partial<Record<Component, number>>
  startupSeconds: number
  logFile(component: Component): string
  stop(): Promise<void>
}

export const UNPRIVILEGED_USER = 'karp-tester'
const SERVICE_CIDR = '10.96.0.0/12'
const SERVICE_IP = '10.96.0.1'

async function freePort(host: string, taken: Set<number>): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer()
      server.once('error', reject)
      server.listen({host, port: 0, exclusive: true}, () => {
        const address = server.address()
        server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
      })
    })
    if (!taken.has(port)) {
      taken.add(port)
      return port
    }
  }
}

function hostPort(host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`
}

function logTail(file: string, lines = 40): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log)'
  }
}

function kubeconfig(server: string, caPem: string, user: string, pair: KeyPair): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{name: 'karp-test', cluster: {server, 'certificate-authority-data': b64(caPem)}}],
    users: [{name: user, user: {'client-certificate-data': b64(pair.certPem), 'client-key-data': b64(pair.keyPem)}}],
    contexts: [{name: user, context: {cluster: 'karp-test', user}}],
    'current-context': user,
  })
}

function b64(text: string): string {
  return Buffer.from(text).toString('base64')
}

interface HttpsTarget {
  ca?: string
  cert?: string
  key?: string
  insecure?: boolean
}

function httpsGet(url: string, tls: HttpsTarget): Promise<{status: number; body: string}> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: !tls.insecure, agent: false, timeout: 2000},
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => (body += chunk))
        res.on('end', () => resolve({status: res.statusCode ?? 0, body}))
      },
    )
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end()
  })
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

// Kills the components' process groups and removes the temp dir if this process dies without stop()
// (test runner killed, Ctrl-C): nothing may outlive a run.
const REAPER = `
parent=$1 dir=$2
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
groups=$(cat "$dir/pgids" 2>/dev/null)
for g in $groups; do kill -TERM -- "-$g" 2>/dev/null; done
for _ in $(seq 50); do
  alive=
  for g in $groups; do kill -0 -- "-$g" 2>/dev/null && alive=1; done
  [ -z "$alive" ] && break
  sleep 0.1
done
for g in $groups; do kill -KILL -- "-$g" 2>/dev/null; done
rm -rf -- "$dir"
`

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const bindAddress = opts.bindAddress ?? '127.0.0.1'
  const prefix = opts.commandPrefix ?? []
  const timeoutMs = opts.timeoutMs ?? 90_000
  const binDir = opts.binDir ?? (await resolveBinDir())
  const started = performance.now()
  const tempDir = mkdtempSync(join(tmpdir(), 'karp-cluster-'))
  const path = (name: string) => join(tempDir, name)

  const children = new Map<Component, ChildProcess>()
  const exited = new Map<Component, string>()
  const reaper = spawn('bash', ['-c', REAPER, 'karp-cluster-reaper', String(process.pid), tempDir], {
    detached: true,
    stdio: 'ignore',
  })
  reaper.unref()

  let stopped = false
  let ready = false
  const stop = async () => {
    if (stopped) return
    stopped = true
    // A component that died while in use would otherwise take its story with the temp dir.
    if (ready) for (const [component, how] of exited) console.error(failure(component, `${how} while in use`).message)
    const groups = [...children.values()].flatMap((c) => (c.pid ? [c.pid] : []))
    for (const pgid of groups) signalGroup(pgid, 'SIGTERM')
    let deadline = Date.now() + 5000
    while (groups.some(groupAlive) && Date.now() < deadline) await sleep(100)
    for (const pgid of groups.filter(groupAlive)) signalGroup(pgid, 'SIGKILL')
    deadline = Date.now() + 5000
    while (groups.some(groupAlive) && Date.now() < deadline) await sleep(50)
    if (reaper.pid) signalGroup(reaper.pid, 'SIGKILL')
    rmSync(tempDir, {recursive: true, force: true})
  }

  const run = (component: Component, args: string[], withPrefix = false) => {
    const log = openSync(path(`${component}.log`), 'a')
    const argv = [...(withPrefix ? prefix : []), join(binDir, component), ...args]
    writeFileSync(path(`${component}.cmd`), argv.join(' ') + '\n')
    const child = spawn(argv[0]!, argv.slice(1), {detached: true, stdio: ['ignore', log, log]})
    closeSync(log)
    child.unref()
    if (child.pid) appendFileSync(path('pgids'), `${child.pid}\n`)
    child.on('error', (err) => exited.set(component, String(err)))
    child.on('exit', (code, signal) => exited.set(component, `exited with ${signal ?? code}`))
    children.set(component, child)
  }

  const failure = (component: Component, what: string) =>
    new Error(`control plane: ${component} ${what}; last lines of ${path(`${component}.log`)}:\n${logTail(path(`${component}.log`))}`)

  const waitFor = async (component: Component, what: string, check: () => Promise<boolean>) => {
    const deadline = started + timeoutMs
    for (;;) {
      const [dead] = exited
      if (dead) throw failure(...dead)
      if (await check().catch(() => false)) return
      if (performance.now() > deadline) throw failure(component, `not ${what} after ${timeoutMs / 1000} s`)
      await sleep(100)
    }
  }

  try {
    // PKI: one CA signs everything; the service-account key pair signs tokens.
    const ca = createCa()
    writeFileSync(path('ca.crt'), ca.certPem)
    writeFileSync(path('ca.key'), ca.keyPem, {mode: 0o600})
    const sans = [
      '127.0.0.1',
      bindAddress,
      SERVICE_IP,
      'localhost',
      'kubernetes',
      'kubernetes.default',
      'kubernetes.default.svc',
      'kubernetes.default.svc.cluster.local',
      ...(opts.extraSans ?? []),
    ]
    const serving = issueServingCert(ca, 'kube-apiserver', sans)
    writeFileSync(path('apiserver.crt'), serving.certPem)
    writeFileSync(path('apiserver.key'), serving.keyPem, {mode: 0o600})
    const sa = rsaKeyPem()
    writeFileSync(path('sa.key'), sa.privatePem, {mode: 0o600})
    writeFileSync(path('sa.pub'), sa.publicPem)
    const admin = issueClientCert(ca, 'kubernetes-admin', ['system:masters'])
    const user = issueClientCert(ca, UNPRIVILEGED_USER)
    const kcm = issueClientCert(ca, 'system:kube-controller-manager')
    const scheduler = issueClientCert(ca, 'system:kube-scheduler')
    // Front-proxy (aggregation) identity as kubeadm sets it up; without it every component logs errors about
    // the missing requestheader CA.
    const frontProxy = issueClientCert(ca, 'front-proxy-client')
    writeFileSync(path('front-proxy-client.crt'), frontProxy.certPem)
    writeFileSync(path('front-proxy-client.key'), frontProxy.keyPem, {mode: 0o600})

    const taken = new Set<number>()
    const localHost = prefix.length ? '127.0.0.1' : bindAddress
    // Inside a fresh network namespace every port is free; checking here only avoids our own collisions.
    const apiPort = await freePort(localHost, taken)
    const etcdPort = await freePort('127.0.0.1', taken)
    const peerPort = await freePort('127.0.0.1', taken)
    const kcmPort = await freePort('127.0.0.1', taken)
    const schedulerPort = await freePort('127.0.0.1', taken)
    const server = `https://${hostPort(bindAddress, apiPort)}`
    writeFileSync(path('admin.kubeconfig'), kubeconfig(server, ca.certPem, 'kubernetes-admin', admin), {mode: 0o600})
    writeFileSync(path('user.kubeconfig'), kubeconfig(server, ca.certPem, UNPRIVILEGED_USER, user), {mode: 0o600})
    writeFileSync(path('kcm.kubeconfig'), kubeconfig(server, ca.certPem, 'system:kube-controller-manager', kcm))
    writeFileSync(path('scheduler.kubeconfig'), kubeconfig(server, ca.certPem, 'system:kube-scheduler', scheduler))

    const etcdUrl = `http://127.0.0.1:${etcdPort}`
    const peerUrl = `http://127.0.0.1:${peerPort}`
    run(
      'etcd',
      [
        '--name=default',
        `--data-dir=${path('etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=default=${peerUrl}`,
        // Throwaway data: fsync only slows startup and every write.
        '--unsafe-no-fsync',
        '--log-level=warn',
      ],
      true,
    )
    const loopback = bindAddress.startsWith('127.') || bindAddress === '::1'
    run(
      'kube-apiserver',
      [
        `--etcd-servers=${etcdUrl}`,
        `--bind-address=${bindAddress}`,
        `--advertise-address=${bindAddress}`,
        `--secure-port=${apiPort}`,
        `--cert-dir=${path('apiserver-certs')}`,
        `--tls-cert-file=${path('apiserver.crt')}`,
        `--tls-private-key-file=${path('apiserver.key')}`,
        `--client-ca-file=${path('ca.crt')}`,
        `--requestheader-client-ca-file=${path('ca.crt')}`,
        '--requestheader-allowed-names=front-proxy-client',
        '--requestheader-username-headers=X-Remote-User',
        '--requestheader-group-headers=X-Remote-Group',
        '--requestheader-extra-headers-prefix=X-Remote-Extra-',
        `--proxy-client-cert-file=${path('front-proxy-client.crt')}`,
        `--proxy-client-key-file=${path('front-proxy-client.key')}`,
        '--authorization-mode=Node,RBAC',
        '--enable-admission-plugins=NodeRestriction',
        '--allow-privileged=true',
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${path('sa.pub')}`,
        `--service-account-signing-key-file=${path('sa.key')}`,
        // Endpoints may not hold loopback addresses: the reconciler would only log errors.
        `--endpoint-reconciler-type=${loopback ? 'none' : 'lease'}`,
        '--profiling=false',
      ],
      true,
    )
    const adminTls = {ca: ca.certPem, cert: admin.certPem, key: admin.keyPem}
    await waitFor('kube-apiserver', 'ready', async () => (await httpsGet(`${server}/readyz`, adminTls)).status === 200)

    const delegated = (file: string) => [
      `--kubeconfig=${file}`,
      `--authentication-kubeconfig=${file}`,
      `--authorization-kubeconfig=${file}`,
      '--bind-address=127.0.0.1',
      '--leader-elect=false',
    ]
    run('kube-controller-manager', [
      ...delegated(path('kcm.kubeconfig')),
      `--secure-port=${kcmPort}`,
      `--cert-dir=${path('kcm-certs')}`,
      '--controllers=*',
      '--use-service-account-credentials=true',
      `--service-account-private-key-file=${path('sa.key')}`,
      `--root-ca-file=${path('ca.crt')}`,
      `--cluster-signing-cert-file=${path('ca.crt')}`,
      `--cluster-signing-key-file=${path('ca.key')}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
    ])
    run('kube-scheduler', [
      ...delegated(path('scheduler.kubeconfig')),
      `--secure-port=${schedulerPort}`,
      `--cert-dir=${path('scheduler-certs')}`,
    ])
    if (opts.kwok) {
      run('kwok', [
        `--kubeconfig=${path('admin.kubeconfig')}`,
        `--config=${opts.kwok.config}`,
        '--manage-all-nodes=false',
        `--manage-nodes-with-annotation-selector=${opts.kwok.nodeAnnotation}`,
      ])
    }
    const healthy = (port: number) => async () => (await httpsGet(`https://127.0.0.1:${port}/healthz`, {insecure: true})).status === 200
    await waitFor('kube-controller-manager', 'healthy', healthy(kcmPort))
    await waitFor('kube-scheduler', 'healthy', healthy(schedulerPort))
    // Pods can be created in a namespace only once its ServiceAccount exists.
    await waitFor(
      'kube-controller-manager',
      'creating ServiceAccounts',
      async () => (await httpsGet(`${server}/api/v1/namespaces/default/serviceaccounts/default`, adminTls)).status === 200,
    )

    ready = true
    return {
      server,
      caPem: ca.certPem,
      caFile: path('ca.crt'),
      caKeyFile: path('ca.key'),
      adminKubeconfig: path('admin.kubeconfig'),
      userKubeconfig: path('user.kubeconfig'),
      userName: UNPRIVILEGED_USER,
      tempDir,
      binDir,
      pids: Object.fromEntries([...children].map(([component, child]) => [component, child.pid ?? 0])),
      startupSeconds: Math.round((performance.now() - started) / 100) / 10,
      logFile: (component) => path(`${component}.log`),
      stop,
    }
  } catch (err) {
    await stop()
    throw err
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal)
  } catch {
    // already gone
  }
}

/** Whether any process of this process group is still alive. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0)
    return true
  } catch {
    return false
  }
}
