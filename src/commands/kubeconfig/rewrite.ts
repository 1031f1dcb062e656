import {Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {clusterFlags} from '../../flags.js'
import {FlagChecks} from '../../lib/config/flag-checks.js'
import {checkDuration, checkPort, checkVip} from '../../lib/config/validate.js'
import {type KubeconfigRewriteResult, rewriteKubeconfig} from '../../lib/kubeconfig/rewrite.js'

export type {KubeconfigRewriteResult} from '../../lib/kubeconfig/rewrite.js'

export default class KubeconfigRewrite extends BaseCommand {
  static override summary = 'point a kubeconfig context at the VIP, changing nothing else in the file'

  static override description =
    "Finds the file the way kubectl does (--kubeconfig, else every file in KUBECONFIG, else ~/.kube/config) and rewrites the server of the context's cluster to https://VIP:PORT in the file that defines it, keeping comments, quoting, order and every other byte. First checks that the certificate served on the VIP carries it as an IP SAN (--force skips), keeps a backup beside the file, writes atomically, and afterwards asks the API server for /version through the new URL, restoring the file if it does not answer. Already pointing at the VIP: nothing to do, exit 0."

  static override examples = [
    '<%= config.bin %> kubeconfig rewrite --vip 192.168.1.250',
    '<%= config.bin %> kubeconfig rewrite --context prod --dry-run',
    '<%= config.bin %> kubeconfig rewrite --kubeconfig /etc/rancher/k3s/k3s.yaml --vip 192.168.1.250 --port 6443',
    '<%= config.bin %> kubeconfig rewrite --vip 192.168.1.250 --new-context prod-vip',
  ]

  static override flags = {
    ...clusterFlags,
    vip: Flags.string({description: 'the VIP to point at (default: the VIP of the karp install found through the context)'}),
    port: Flags.string({
      description: "API server port on the VIP (default: the install's api port with its VIP, else the port the server has now)",
    }),
    'new-context': Flags.string({
      description: 'add a context and a cluster of this name for the VIP instead of changing the existing cluster',
    }),
    force: Flags.boolean({description: "skip the certificate check (the VIP may be missing from the certificate's SANs)", default: false}),
    'dry-run': Flags.boolean({description: 'print the change as a unified diff and write nothing', default: false}),
    backup: Flags.boolean({
      description: 'keep a copy of the original beside the file (<file>.karp-backup-<UTC time>)',
      default: true,
      allowNo: true,
    }),
    verify: Flags.boolean({
      description: 'after writing, check that the API server answers through the new URL, and restore the file if not',
      default: true,
      allowNo: true,
    }),
    timeout: Flags.string({description: 'how long to wait for each network step (certificate check, verify)', default: '10s'}),
  }

  async run(): Promise<KubeconfigRewriteResult> {
    const {flags} = await this.parse(KubeconfigRewrite)
    const checks = new FlagChecks()
    const vip = checks.optional(flags.vip, checkVip)
    const port = checks.optional(flags.port, checkPort)
    const timeoutMs = checks.take(checkDuration('timeout', flags.timeout))
    checks.done()

    const result = await rewriteKubeconfig({
      kubeconfig: flags.kubeconfig,
      context: flags.context,
      vip,
      port,
      newContext: flags['new-context'],
      force: flags.force,
      dryRun: flags['dry-run'],
      backup: flags.backup,
      verify: flags.verify,
      timeoutMs,
      progress: (message) => this.logToStderr(message),
    })
    for (const warning of result.warnings) this.warn(warning)
    if (!this.jsonEnabled()) this.display(result)
    return result
  }

  /** Words for people on stderr; stdout carries only the diff, so `--dry-run > change.patch` works. */
  private display(result: KubeconfigRewriteResult): void {
    if (!result.changed) {
      this.logToStderr(`context ${result.context} already points at ${result.oldServer}; ${result.file} is unchanged`)
      return
    }
    const what = result.basedOn
      ? `add context ${result.context} and cluster ${result.cluster} (${result.newServer}), copied from context ${result.basedOn.context}`
      : `change the server of cluster ${result.cluster} (context ${result.context}) from ${result.oldServer} to ${result.newServer}`
    if (result.dryRun) {
      this.log(result.diff ?? '')
      this.logToStderr(`dry run: would ${what} in ${result.target}; nothing was written`)
      return
    }
    this.logToStderr(`${result.target}: ${what.replace(/^add/, 'added').replace(/^change/, 'changed')}`)
    if (result.verified) this.logToStderr(`the API server answers through ${result.newServer}`)
    else this.logToStderr('not verified (--no-verify)')
    if (result.backup) this.logToStderr(`to undo: cp ${result.backup} ${result.target}`)
    if (result.basedOn) this.logToStderr(`use it: kubectl config use-context ${result.context}`)
  }
}
