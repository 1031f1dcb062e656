import {Flags, ux} from '@oclif/core'

import {BaseCommand} from '../base-command.js'
import {clusterFlags, instanceFlags, requestTimeoutFlag, vipFlags, vipInputFromFlags} from '../flags.js'
import {FlagChecks} from '../lib/config/flag-checks.js'
import {checkDuration, checkRequestTimeout, checkSubnetPrefix, checkVip} from '../lib/config/validate.js'
import {validateVipInput} from '../lib/config/vip-config.js'
import {DEFAULT_SUBNET_PREFIX} from '../lib/constants.js'
import {passwordFromFile} from '../lib/config/password-file.js'
import {escapeControl} from '../lib/echo.js'
import {UsageError} from '../lib/errors.js'
import {Kube} from '../lib/kube/client.js'
import {
  choosePassword,
  describeSelection,
  dryRunApply,
  executeInstall,
  inspectCluster,
  type InstallResult,
  planInstall,
  selectedNodes,
} from '../lib/install/install.js'
import {checkHandover, handoverSteps} from '../lib/install/handover.js'
import {ALLOW_SYSTEM_NAMESPACE_FLAG, checkInstallNamespace} from '../lib/install/namespace.js'
import type {NodeFacts} from '../lib/install/preflight.js'

export type {InstallResult} from '../lib/install/install.js'

export default class Install extends BaseCommand {
  static override summary = 'install or upgrade the karp agent, giving the API server a floating VIP'
  static override description =
    'Validates every flag, checks the cluster (nodes, subnet, vhid, permissions) and only then applies, with server-side apply as field manager karp. Running it again with the same flags changes nothing; other flags upgrade in place. Prompts for what is missing only on a terminal.'

  static override examples = [
    '<%= config.bin %> install --vip 192.168.1.250',
    '<%= config.bin %> install --vip 192.168.1.250 --vhid 42 --yes --json',
    '<%= config.bin %> install --vip 10.0.0.50 --node-selector karp=enabled --context prod',
  ]

  static override flags = {
    ...clusterFlags,
    ...requestTimeoutFlag,
    ...instanceFlags,
    ...vipFlags,
    vhid: Flags.string({description: `${vipFlags.vhid.description?.replace(/\)$/, '')}; with karp bootstrap's static pods: theirs)`}),
    'subnet-prefix': Flags.string({
      description: 'prefix length of the subnet the nodes and the VIP share, for preflight checks',
      default: String(DEFAULT_SUBNET_PREFIX),
    }),
    wait: Flags.boolean({description: 'wait until the agent runs on every selected node', default: true, allowNo: true}),
    timeout: Flags.string({description: 'how long to wait for the rollout', default: '5m'}),
    yes: Flags.boolean({char: 'y', description: 'do not ask for confirmation', default: false}),
    [ALLOW_SYSTEM_NAMESPACE_FLAG]: Flags.boolean({
      description: 'allow --namespace to be kube-system, kube-public, kube-node-lease or default',
      default: false,
    }),
  }

  async run(): Promise<InstallResult> {
    const {flags} = await this.parse(Install)
    const interactive = this.canPrompt()
    const checks = new FlagChecks()
    const validated = checks.absorb(() => validateVipInput(vipInputFromFlags(flags)))
    const subnetPrefix = checks.take(checkSubnetPrefix(flags['subnet-prefix']))
    const timeoutMs = checks.take(checkDuration('timeout', flags.timeout))
    const requestTimeoutMs = checks.take(checkRequestTimeout(flags['request-timeout']))
    checks.take(checkInstallNamespace(flags.namespace, flags[ALLOW_SYSTEM_NAMESPACE_FLAG]))
    const filePassword = checks.take(await passwordFromFile(flags['password-file'], flags.password))
    checks.done()
    if (validated.vip === undefined && !interactive) {
      throw new UsageError(
        'missing required flag --vip',
        'give the virtual IPv4 address, e.g. --vip 192.168.1.250 (prompts only on a terminal without --json)',
      )
    }

    const {settings} = validated
    const kube = Kube.fromOptions({...flags, requestTimeoutMs})
    const facts = await inspectCluster(kube, settings)
    const givenPassword = validated.password ?? filePassword
    const {password, source} = choosePassword(givenPassword, facts)

    const vip = validated.vip ?? (await this.promptForVip(selectedNodes(settings, facts.nodes), describeSelection(settings)))
    const {vhid} = checkHandover({
      vip,
      vhid: settings.vhid,
      apiPort: settings.apiPort,
      vhidGiven: flags.vhid !== undefined,
      passwordGiven: givenPassword !== undefined,
      agents: facts.staticAgents,
    })

    const plan = planInstall({...settings, vip, vhid, password}, source, facts, subnetPrefix)
    const stored = await dryRunApply(kube, plan)
    for (const warning of plan.warnings) this.warn(warning)

    if (interactive && !flags.yes) {
      this.logToStderr(
        [
          `About to install karp ${settings.namespace}/${settings.name} on context ${kube.contextName} (${kube.server}):`,
          `  VIP ${vip} (vhid ${vhid}, port ${settings.apiPort}) on ${plan.selected.map((n) => n.name).join(', ')}`,
          `  password: ${source === 'cluster' ? 'kept from the installed Secret' : source === 'flag' ? `from ${flags['password-file'] === undefined ? '--password' : '--password-file'}` : 'newly generated'}`,
          `  objects: ${plan.objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`,
          ...(plan.handover ? [`  taking over from the static-pod agents on ${plan.handover.order.map((s) => s.node).join(', ')}`] : []),
        ].join('\n'),
      )
      // Loaded only to ask (imported alone it takes about 0.1 s; a run that does not ask need not load it).
      const {confirm} = await import('@inquirer/prompts')
      if (!(await confirm({message: 'Apply?', default: true}))) this.declined('nothing was applied')
    }

    ux.action.start(`Applying karp to ${kube.contextName}`, undefined, {stdout: false})
    const result = await executeInstall(kube, plan, stored, {
      wait: flags.wait,
      timeoutMs,
      onProgress: (s) => (ux.action.status = `${s.available}/${s.desired} agents available, ${s.updated} updated`),
    })
    ux.action.stop(result.rollout ? `${result.rollout.available}/${result.rollout.desired} agents available` : 'applied')
    if (!this.jsonEnabled()) {
      for (const o of result.objects) this.log(`${o.kind.toLowerCase()}/${o.name} ${o.action}`)
      // A cluster bootstrapped on the VIP has it in its certificates and kubeconfigs already.
      const next = plan.handover ? '' : ' Next: karp check-cert, then karp kubeconfig rewrite.'
      this.log(`VIP ${result.vip} will be held by one of: ${result.nodes.join(', ')}.${next}`)
      if (plan.handover) this.log(handoverSteps(plan.handover, facts.staticAgents, vip, flags.wait).map(escapeControl).join('\n'))
    }
    return result
  }

  /** Asks for the VIP after showing where it must live: the selected nodes and their addresses. */
  private async promptForVip(nodes: NodeFacts[], selection: string): Promise<string> {
    this.logToStderr(`Nodes that will run the agent (${selection}):`)
    for (const n of nodes) this.logToStderr(`  ${n.name}\t${n.internalIPv4.join(', ') || '(no IPv4 InternalIP)'}`)
    const {input} = await import('@inquirer/prompts')
    const answer = await input({
      message: "Virtual IP for the API server (a free address on the nodes' subnet):",
      validate: (value) => {
        const checked = checkVip(value.trim())
        return checked.ok || checked.problem
      },
    })
    return answer.trim()
  }
}
