import {Flags} from '@oclif/core'

import {BaseCommand} from '../base-command.js'
import {vipFlags} from '../flags.js'
import {
  applyBootstrap,
  type BootstrapOutcome,
  DEFAULT_PASSWORD_FILE,
  manifestYaml,
  outcomeLines,
  planBootstrap,
} from '../lib/bootstrap/bootstrap.js'
import {DEFAULT_DISTRIBUTION, DISTRIBUTIONS} from '../lib/bootstrap/distribution.js'
import {DEFAULTS} from '../lib/config/vip-config.js'
import {type CommandResult, ExitCode} from '../lib/errors.js'

/** What `karp bootstrap --json` prints. */
export type BootstrapResult = BootstrapOutcome & CommandResult

const defaultDirs = Object.entries(DISTRIBUTIONS)
  .map(([id, d]) => `${id} ${d.manifestDir}`)
  .join(', ')

export default class Bootstrap extends BaseCommand {
  static override summary = 'run the agent as a static pod on a new control-plane node, so the cluster is born on the VIP'
  static override description = `Never contacts a cluster. Run it on each control-plane node before kubeadm init or join (or before k3s or RKE2 starts), with the same flags and the same password file: it creates the password file when it does not exist (mode 0600, a random password) and reads it when it does, and writes or prints the static pod manifest of the agent. Once the cluster runs, karp install --password-file <a copy of the file> hands the VIP over to the DaemonSet. Without --manifest-dir the manifest goes to stdout and what to do next to stderr.`
  static override examples = [
    '<%= config.bin %> bootstrap --vip 192.168.1.250 --manifest-dir /etc/kubernetes/manifests',
    '<%= config.bin %> bootstrap --vip 192.168.1.250 --vhid 42 --distribution k3s > karp.yaml',
  ]

  static override flags = {
    vip: vipFlags.vip,
    vhid: vipFlags.vhid,
    distribution: Flags.string({
      description: `kubeadm, k3s or rke2: where the kubelet reads static pods and the cluster CA lies (default: ${DEFAULT_DISTRIBUTION})`,
    }),
    'password-file': Flags.string({
      description: `CARP password file on this node, mounted into the pod: read when it exists (no access for group or others: chmod 600), else created with a random password (default: ${DEFAULT_PASSWORD_FILE})`,
    }),
    'ca-file': Flags.string({
      description: `absolute path of the cluster CA on the node (default: the distribution's, e.g. ${DISTRIBUTIONS.kubeadm.caFile})`,
    }),
    'manifest-dir': Flags.string({
      description: `write the manifest into this directory as <name>.yaml (mode 0600) instead of printing it; the kubelet's: ${defaultDirs}`,
    }),
    interface: vipFlags.interface,
    advbase: vipFlags.advbase,
    preempt: vipFlags.preempt,
    'api-port': vipFlags['api-port'],
    image: vipFlags.image,
    name: Flags.string({description: 'name of the static pod and of its manifest file', default: DEFAULTS.name}),
    output: Flags.string({char: 'o', description: 'format of the manifest printed on stdout', options: ['yaml', 'json'], default: 'yaml'}),
  }

  async run(): Promise<BootstrapResult> {
    const {flags} = await this.parse(Bootstrap)
    const plan = await planBootstrap({
      name: flags.name,
      vip: flags.vip,
      vhid: flags.vhid,
      interface: flags.interface,
      advbase: flags.advbase,
      preempt: flags.preempt,
      apiPort: flags['api-port'],
      image: flags.image,
      distribution: flags.distribution,
      passwordFile: flags['password-file'],
      caFile: flags['ca-file'],
      manifestDir: flags['manifest-dir'],
    })
    const outcome = await applyBootstrap(plan)
    if (!this.jsonEnabled()) {
      const text = [...outcomeLines(outcome), ...outcome.guidance]
      if (outcome.manifestFile === null) {
        this.log(flags.output === 'json' ? JSON.stringify(outcome.manifest, null, 2) : manifestYaml(outcome.manifest).trimEnd())
        for (const line of text) this.logToStderr(line)
      } else {
        for (const line of text) this.log(line)
      }
    }
    return {exitCode: ExitCode.ok, ...outcome}
  }
}
