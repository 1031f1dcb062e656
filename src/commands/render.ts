import {Flags} from '@oclif/core'
import {stringify} from 'yaml'

import {BaseCommand} from '../base-command.js'
import {instanceFlags, vipFlags, vipInputFromFlags} from '../flags.js'
import {FlagChecks} from '../lib/config/flag-checks.js'
import {passwordFromFile} from '../lib/config/password-file.js'
import {generatePassword, validateVipInput} from '../lib/config/vip-config.js'
import {type CommandResult, ExitCode, UsageError} from '../lib/errors.js'
import {ALLOW_SYSTEM_NAMESPACE_FLAG, checkInstallNamespace, checkRenderNamespace} from '../lib/install/namespace.js'
import {type ManifestObject, renderManifests} from '../lib/manifests/render.js'

export type ManifestList = {apiVersion: 'v1'; kind: 'List'; items: ManifestObject[]}
/** What `karp render --json` prints: the List of `-o json`, with the exit code every result carries. */
export type RenderResult = ManifestList & CommandResult

export default class Render extends BaseCommand {
  static override summary = 'print the Kubernetes objects of a karp install, for GitOps or review'
  static override description =
    "Never contacts a cluster. The same flags give the same output; without --password or --password-file a random one is generated each time. The Namespace object is printed for karp-system, karp's own namespace, and for another namespace only with --create-namespace: applied to a namespace that exists, it would relabel it."
  static override examples = [
    '<%= config.bin %> render --vip 192.168.1.250 --password s3cret > karp.yaml',
    '<%= config.bin %> render --vip 192.168.1.250 --vhid 42 --output json',
  ]

  static override flags = {
    ...instanceFlags,
    ...vipFlags,
    output: Flags.string({char: 'o', description: 'output format', options: ['yaml', 'json'], default: 'yaml'}),
    'create-namespace': Flags.boolean({description: 'print the Namespace object (default: only for karp-system)', allowNo: true}),
    [ALLOW_SYSTEM_NAMESPACE_FLAG]: Flags.boolean({
      description: 'allow --namespace to be kube-system, kube-public, kube-node-lease or default',
      default: false,
    }),
  }

  async run(): Promise<RenderResult> {
    const {flags} = await this.parse(Render)
    const checks = new FlagChecks()
    const validated = checks.absorb(() => validateVipInput(vipInputFromFlags(flags)))
    checks.take(checkInstallNamespace(flags.namespace, flags[ALLOW_SYSTEM_NAMESPACE_FLAG]))
    const withNamespace = checks.take(checkRenderNamespace(flags.namespace, flags['create-namespace']))
    const filePassword = checks.take(await passwordFromFile(flags['password-file'], flags.password))
    checks.done()
    const {settings, vip} = validated
    const password = validated.password ?? filePassword
    if (vip === undefined) throw new UsageError('missing required flag --vip', 'give the virtual IPv4 address, e.g. --vip 192.168.1.250')
    if (password === undefined)
      this.warn('no --password given: a random CARP password was generated; pass --password or --password-file for reproducible output')
    const items = renderManifests({...settings, vip, password: password ?? generatePassword()}).filter(
      (o) => o.kind !== 'Namespace' || withNamespace,
    )
    const list: ManifestList = {apiVersion: 'v1', kind: 'List', items}
    if (!this.jsonEnabled()) {
      this.log(
        flags.output === 'json'
          ? JSON.stringify(list, null, 2)
          : items
              .map((o) => stringify(o, {lineWidth: 0}))
              .join('---\n')
              .trimEnd(),
      )
    }
    return {...list, exitCode: ExitCode.ok}
  }
}
