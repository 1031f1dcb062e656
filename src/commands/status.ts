import {Flags} from '@oclif/core'

import {BaseCommand} from '../base-command.js'
import {clusterFlags, requestTimeoutFlag} from '../flags.js'
import {FlagChecks} from '../lib/config/flag-checks.js'
import {checkDnsLabel, checkDuration, checkRequestTimeout} from '../lib/config/validate.js'
import {escapeControl} from '../lib/echo.js'
import {Kube} from '../lib/kube/client.js'
import {formatStatus} from '../lib/status/display.js'
import {gatherStatus, type StatusOptions, type StatusResult, statusFromSnapshot} from '../lib/status/status.js'
import {WATCHING, watchSnapshot} from '../lib/status/watch.js'

export type {StatusResult} from '../lib/status/status.js'

export default class Status extends BaseCommand {
  static override summary = 'show which node holds the VIP and whether everything is healthy'
  static override description =
    'Reads every karp install in the cluster (a list call per kind, and of the nodes only those its DaemonSets may select), judges who holds each VIP (exactly one is healthy, none is an outage, more is a split brain), and probes each VIP from this machine: TCP connect, TLS handshake, and whether its certificate carries the VIP. Exit 0 when healthy, 4 when degraded, down or not installed, 3 when the cluster is unreachable.'

  static override examples = [
    '<%= config.bin %> status',
    '<%= config.bin %> status --json',
    '<%= config.bin %> status --watch -n karp-system',
  ]

  static override flags = {
    ...clusterFlags,
    ...requestTimeoutFlag,
    namespace: Flags.string({char: 'n', description: 'only the karp install(s) in this namespace (default: all)'}),
    name: Flags.string({description: 'only the karp install of this name (default: all)'}),
    probe: Flags.boolean({description: 'connect to each VIP from this machine', default: true, allowNo: true}),
    timeout: Flags.string({description: 'how long to wait for each VIP to answer', default: '3s'}),
    watch: Flags.boolean({
      char: 'w',
      description:
        'follow changes through the watch API until interrupted; a server silent for 30 s is reported, and watched again when it answers',
      default: false,
    }),
  }

  async run(): Promise<StatusResult | undefined> {
    const {flags} = await this.parse(Status)
    const checks = new FlagChecks()
    checks.optional(flags.namespace, (v) => checkDnsLabel('namespace', v))
    checks.optional(flags.name, (v) => checkDnsLabel('name', v))
    const timeoutMs = checks.take(checkDuration('timeout', flags.timeout))
    const requestTimeoutMs = checks.take(checkRequestTimeout(flags['request-timeout']))
    checks.done()
    const kube = Kube.fromOptions({...flags, requestTimeoutMs})
    const options: StatusOptions = {
      ...(flags.namespace ? {namespace: flags.namespace} : {}),
      ...(flags.name ? {name: flags.name} : {}),
      probe: flags.probe,
      timeoutMs,
      ...(flags.probe ? await caOf(kube) : {}),
    }
    if (flags.watch) {
      await this.watch(kube, options)
      return undefined
    }
    const result = await gatherStatus(kube, options)
    if (!this.jsonEnabled()) this.log(formatStatus(result, new Date()).join('\n'))
    return result
  }

  /** Redraws on every change (a JSON line each under --json) until Ctrl-C. */
  private async watch(kube: Kube, options: StatusOptions): Promise<void> {
    const abort = new AbortController()
    process.once('SIGINT', () => abort.abort())
    process.once('SIGTERM', () => abort.abort())
    const redraw = process.stdout.isTTY && !this.jsonEnabled()
    // Straight to stderr, under --json too (where oclif drops warnings): stdout stays one JSON result per line.
    const notice = (message: string) => process.stderr.write(`warning: ${message}\n`)
    let rendering = Promise.resolve()
    await watchSnapshot(
      kube,
      (snapshot) => {
        rendering = rendering.then(async () => {
          const now = new Date()
          const result = await statusFromSnapshot(snapshot, kube, options, now)
          if (this.jsonEnabled()) process.stdout.write(`${JSON.stringify(result)}\n`)
          else this.log(`${redraw ? '\x1b[2J\x1b[H' : '\n'}${now.toISOString()}\n${formatStatus(result, now).join('\n')}`)
        })
      },
      abort.signal,
      (error) => notice(`${error.message}; retrying until it answers`),
      () => notice(`${WATCHING}: ${escapeControl(kube.server)} answers again`),
    )
    await rendering
  }
}

async function caOf(kube: Kube): Promise<{caPem?: string}> {
  // Loaded on demand, like the probe itself: without --probe no certificate code is needed.
  const {caFromKubeConfig} = await import('../lib/cert/ca.js')
  try {
    const ca = caFromKubeConfig(kube.config)
    return ca.pem ? {caPem: ca.pem} : {}
  } catch {
    // Without the cluster's CA the probe still reports reachability and SANs, only not trust.
    return {}
  }
}
