import {Flags, ux} from '@oclif/core'

import {BaseCommand} from '../base-command.js'
import {clusterFlags, instanceFlags, requestTimeoutFlag} from '../flags.js'
import {FlagChecks} from '../lib/config/flag-checks.js'
import {checkDnsLabel, checkDuration, checkRequestTimeout} from '../lib/config/validate.js'
import {Kube} from '../lib/kube/client.js'
import {uninstall, type UninstallResult} from '../lib/install/uninstall.js'

export type {UninstallResult} from '../lib/install/uninstall.js'

export default class Uninstall extends BaseCommand {
  static override summary = 'remove a karp install and wait until its agents are gone'
  static override description =
    'Deletes the DaemonSet, Secret, RBAC objects, admission policy and ServiceAccount karp created for --name, and the namespace only if karp created it (never one that existed before the install) and no other karp install lives there. The VIP leaves with the last agent.'

  static override examples = ['<%= config.bin %> uninstall', '<%= config.bin %> uninstall --name karp --namespace karp-system --yes --json']

  static override flags = {
    ...clusterFlags,
    ...requestTimeoutFlag,
    ...instanceFlags,
    wait: Flags.boolean({description: 'wait until the agent pods are gone', default: true, allowNo: true}),
    timeout: Flags.string({description: 'how long to wait for the pods to go', default: '2m'}),
    yes: Flags.boolean({char: 'y', description: 'do not ask for confirmation', default: false}),
  }

  async run(): Promise<UninstallResult> {
    const {flags} = await this.parse(Uninstall)
    const checks = new FlagChecks()
    const settings = {
      namespace: checks.take(checkDnsLabel('namespace', flags.namespace)),
      name: checks.take(checkDnsLabel('name', flags.name)),
    }
    const timeoutMs = checks.take(checkDuration('timeout', flags.timeout))
    const requestTimeoutMs = checks.take(checkRequestTimeout(flags['request-timeout']))
    checks.done()
    const kube = Kube.fromOptions({...flags, requestTimeoutMs})
    if (this.canPrompt() && !flags.yes) {
      const {confirm} = await import('@inquirer/prompts')
      const sure = await confirm({
        message: `Remove karp ${settings.namespace}/${settings.name} from ${kube.contextName}? The VIP will stop answering.`,
        default: false,
      })
      if (!sure) this.declined('nothing was deleted')
    }
    ux.action.start(`Removing karp ${settings.namespace}/${settings.name}`, undefined, {stdout: false})
    const result = await uninstall(kube, settings, {
      wait: flags.wait,
      timeoutMs,
      onProgress: (remaining) => (ux.action.status = `${remaining} agent pod${remaining === 1 ? '' : 's'} left`),
    })
    ux.action.stop(result.podsRemaining === 0 ? 'done' : `${result.podsRemaining} pods still terminating`)
    if (result.via) {
      this.warn(
        `${kube.server} is the VIP of this install, so karp worked through ${result.via}. Your kubeconfig still points at the VIP, which no longer answers: restore the copy karp kubeconfig rewrite kept (<kubeconfig>.karp-backup-<time>) or set the server to a control-plane node`,
      )
    }
    if (!this.jsonEnabled()) {
      for (const o of result.objects) this.log(`${o.kind.toLowerCase()}/${o.name} ${o.action === 'absent' ? 'not found' : o.action}`)
      if (result.objects.every((o) => o.action !== 'deleted'))
        this.log(`nothing to remove: no karp install ${settings.namespace}/${settings.name}`)
    }
    return result
  }
}
