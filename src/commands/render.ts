import {Flags} from '@oclif/core'
import {stringify} from 'yaml'

import {BaseCommand} from '../base-command.js'
import {instanceFlags, vipFlags, vipInputFromFlags} from '../flags.js'
import {generatePassword, validateVipInput} from '../lib/config/vip-config.js'
import {UsageError} from '../lib/errors.js'
import {type ManifestObject, renderManifests} from '../lib/manifests/render.js'

export type RenderResult = {apiVersion: 'v1'; kind: 'List'; items: ManifestObject[]}

export default class Render extends BaseCommand {
  static override summary = 'print the Kubernetes objects of a karp install, for GitOps or review'
  static override description = 'Never contacts a cluster. The same flags give the same output; without --password a random one is generated each time.'
  static override examples = [
    '<%= config.bin %> render --vip 192.168.1.250 --password s3cret > karp.yaml',
    '<%= config.bin %> render --vip 192.168.1.250 --vhid 42 --output json',
  ]

  static override flags = {
    ...instanceFlags,
    ...vipFlags,
    output: Flags.string({char: 'o', description: 'output format', options: ['yaml', 'json'], default: 'yaml'}),
  }

  async run(): Promise<RenderResult> {
    const {flags} = await this.parse(Render)
    const {settings, vip, password} = validateVipInput(vipInputFromFlags(flags))
    if (vip === undefined) throw new UsageError('missing required flag --vip', 'give the virtual IPv4 address, e.g. --vip 192.168.1.250')
    if (password === undefined) this.warn('no --password given: a random CARP password was generated; pass --password for reproducible output')
    const items = renderManifests({...settings, vip, password: password ?? generatePassword()})
    const result: RenderResult = {apiVersion: 'v1', kind: 'List', items}
    if (!this.jsonEnabled()) {
      this.log(flags.output === 'json' ? JSON.stringify(result, null, 2) : items.map((o) => stringify(o, {lineWidth: 0})).join('---\n').trimEnd())
    }
    return result
  }
}
