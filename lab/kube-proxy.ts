// kube-proxy on a lab node, as kubeadm runs it (there as a DaemonSet, here as a process in the node's
// namespace): it routes the kubernetes Service (10.96.0.1:443) to the API servers' endpoints, which is how a
// hostNetwork pod such as the karp agent reaches the API (KUBERNETES_SERVICE_HOST). iptables mode, in the
// node's own network namespace only. Conntrack limits are global on this kind of machine, so kube-proxy is
// told to leave them alone; it runs without CAP_SYS_RESOURCE, so it keeps the OOM score it was started with.
import {mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {stringify} from 'yaml'
import type {Host, Network, Proc} from './network.js'
import {killGroup} from './process.js'

export interface KubeProxyOptions {
  net: Network
  host: Host
  binDir: string
  /** Everything of this instance (config, log). */
  dir: string
  /** Credentials of system:kube-proxy (bound to system:node-proxier by the API server's default RBAC). */
  kubeconfig: string
}

export class KubeProxy {
  private proc?: Proc
  readonly logFile: string
  private readonly config: string

  constructor(private readonly o: KubeProxyOptions) {
    mkdirSync(o.dir, {recursive: true})
    this.logFile = join(o.dir, 'kube-proxy.log')
    this.config = join(o.dir, 'kube-proxy.yaml')
    writeFileSync(
      this.config,
      stringify({
        apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
        kind: 'KubeProxyConfiguration',
        clientConnection: {kubeconfig: o.kubeconfig},
        mode: 'iptables',
        hostnameOverride: o.host.name,
        bindAddress: o.host.ip,
        healthzBindAddress: '127.0.0.1:10256',
        metricsBindAddress: '127.0.0.1:10249',
        nodePortAddresses: [`${o.host.ip}/32`],
        oomScoreAdj: 0,
        conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s'},
      }),
    )
  }

  get pid(): number | undefined {
    return this.proc?.running ? this.proc.pid : undefined
  }

  start(): void {
    if (this.proc?.running) return
    this.proc = this.o.net.spawnIn(this.o.host.ns, [join(this.o.binDir, 'kube-proxy'), `--config=${this.config}`, '--v=1'], {
      logFile: this.logFile,
    })
  }

  async kill(): Promise<void> {
    const proc = this.proc
    if (!proc) return
    killGroup(proc.pid, 'SIGKILL')
    await proc.exited
    this.proc = undefined
  }
}
