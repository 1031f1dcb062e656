import {Flags} from '@oclif/core'

import {BaseCommand} from '../base-command.js'
import {clusterFlags, requestTimeoutFlag} from '../flags.js'
import {caFromFile} from '../lib/cert/ca.js'
import {type CheckCertResult, planClusterCheck, planServerCheck, runCertCheck} from '../lib/cert/check-cert.js'
import {formatCertReport} from '../lib/cert/display.js'
import {DISTRIBUTIONS, type DistributionId} from '../lib/cert/distribution.js'
import {parseServerAddress} from '../lib/cert/targets.js'
import {DEFAULT_API_PORT} from '../lib/constants.js'
import {FlagChecks} from '../lib/config/flag-checks.js'
import {checkDnsLabel, checkDuration, checkPort, checkRequestTimeout, checkVip} from '../lib/config/validate.js'
import {UsageError} from '../lib/errors.js'
import {Kube} from '../lib/kube/client.js'

export type {CheckCertResult} from '../lib/cert/check-cert.js'

export default class CheckCert extends BaseCommand {
  static override summary = 'check that every API server certificate carries the VIP as an IP SAN'
  static override description =
    "Reads the certificate served on the VIP and on every control-plane node (any of them can come to hold the VIP) without trusting it or sending credentials, and checks that the VIP is an IP SAN, that the certificate is valid, and that its chain verifies against the kubeconfig's CA. When the VIP is missing, says how to add it for the detected distribution. With --server, checks the given endpoints without asking the cluster. Exits 0 when every endpoint is fine, 4 when a check failed or an endpoint was unreachable, 3 when none was reachable."

  static override examples = [
    '<%= config.bin %> check-cert',
    '<%= config.bin %> check-cert --vip 192.168.1.250 --context prod',
    '<%= config.bin %> check-cert --server 10.0.0.11:6443 --server [fd00::12]:6443 --vip 192.168.1.250 --ca-file ca.crt',
  ]

  static override flags = {
    ...clusterFlags,
    ...requestTimeoutFlag,
    namespace: Flags.string({
      char: 'n',
      description: 'namespace of the karp install whose VIP to check (default: the only install in the cluster)',
    }),
    name: Flags.string({description: 'name of the karp install whose VIP to check (default: the only install in the cluster)'}),
    vip: Flags.string({description: "the VIP the certificates must carry (default: the karp install's)"}),
    port: Flags.string({
      description: `API server port on the VIP, the nodes and a --server without one (default: the install's api port, else ${DEFAULT_API_PORT})`,
    }),
    server: Flags.string({
      description:
        "check this endpoint, host[:port] with IPv6 in brackets, instead of the cluster's (repeatable; needs --vip, no cluster access)",
      multiple: true,
      exclusive: ['kubeconfig', 'context', 'namespace', 'name'],
    }),
    'ca-file': Flags.string({description: "PEM CA certificate(s) the chains must verify against (default: the kubeconfig cluster's CA)"}),
    timeout: Flags.string({description: "how long to wait for each endpoint's TLS handshake", default: '5s'}),
    distribution: Flags.string({
      description: 'give the fix for this distribution instead of detecting it from the nodes',
      options: [...DISTRIBUTIONS],
    }),
  }

  async run(): Promise<CheckCertResult> {
    const {flags} = await this.parse(CheckCert)
    const checks = new FlagChecks()
    const vip = checks.optional(flags.vip, checkVip)
    const port = checks.optional(flags.port, checkPort)
    const timeoutMs = checks.take(checkDuration('timeout', flags.timeout))
    const requestTimeoutMs = checks.take(checkRequestTimeout(flags['request-timeout']))
    checks.optional(flags.namespace, (v) => checkDnsLabel('namespace', v))
    checks.optional(flags.name, (v) => checkDnsLabel('name', v))
    const servers = (flags.server ?? []).map((text) => checks.take(parseServerAddress(text, port ?? DEFAULT_API_PORT)))
    checks.done()
    const ca = flags['ca-file'] === undefined ? undefined : caFromFile(flags['ca-file'])
    const distribution = flags.distribution as DistributionId | undefined

    let plan
    if (servers.length > 0) {
      if (vip === undefined) {
        throw new UsageError(
          '--server needs --vip: without cluster access there is no karp install to read the VIP from',
          'e.g. --server 10.0.0.11:6443 --vip 192.168.1.250',
        )
      }
      plan = planServerCheck({vip, servers: servers.filter((s) => s !== undefined), ca, distribution})
    } else {
      plan = await planClusterCheck(Kube.fromOptions({...flags, requestTimeoutMs}), {
        vip,
        namespace: flags.namespace,
        name: flags.name,
        port,
        ca,
        distribution,
      })
    }
    for (const warning of plan.warnings) this.warn(warning)

    const result = await runCertCheck(plan, {timeoutMs})
    if (!this.jsonEnabled()) for (const line of formatCertReport(result)) this.log(line)
    // Returned, not thrown: the report is the output under --json too, and its exitCode says how it went.
    return result
  }
}
