import {dirname, join} from 'node:path'

import {stringify} from 'yaml'

import {FlagChecks} from '../config/flag-checks.js'
import {generatePassword, validateVipInput} from '../config/vip-config.js'
import {echo} from '../echo.js'
import {
  checkHostPath,
  createPasswordFile,
  inspectManifestFile,
  inspectPasswordFile,
  type ManifestState,
  writeManifestFile,
} from './host-files.js'
import {checkDistribution, DEFAULT_DISTRIBUTION, DISTRIBUTIONS, type Distribution} from './distribution.js'
import {bootstrapGuidance} from './guidance.js'
import {renderStaticPod, type StaticPodConfig, type StaticPodManifest} from './static-pod.js'

/** The password file a static-pod agent mounts unless --password-file says otherwise. */
export const DEFAULT_PASSWORD_FILE = '/etc/karp/password'

/** The flags of `karp bootstrap`, as text; undefined where the user gave nothing. */
export interface BootstrapInput {
  name?: string
  vip?: string
  vhid?: string
  interface?: string
  advbase?: string
  preempt?: boolean
  apiPort?: string
  image?: string
  distribution?: string
  passwordFile?: string
  caFile?: string
  manifestDir?: string
}

/** Everything validated and checked on the host, before anything is written. */
export interface BootstrapPlan {
  distribution: Distribution
  config: StaticPodConfig
  manifest: StaticPodManifest
  /** The manifest as its file holds it (and as it is printed). */
  manifestYaml: string
  /** The password the file holds already; undefined: bootstrap creates the file. */
  existingPassword?: string
  /** Where --manifest-dir has the manifest written, and what that does; undefined: it is printed. */
  manifestTarget?: {file: string; state: ManifestState}
}

export const manifestYaml = (manifest: StaticPodManifest) => stringify(manifest, {lineWidth: 0})

/**
 * Validates every flag and checks the host files they name, reporting every problem at once
 * (InvalidInputError): the password file (private and valid when it exists, creatable when not), the CA
 * path (absolute), the manifest (writable, and never over a file that is not karp's). Writes nothing.
 */
export async function planBootstrap(input: BootstrapInput, cwd = process.cwd()): Promise<BootstrapPlan> {
  const checks = new FlagChecks()
  const {vip, settings} = checks.absorb(() =>
    validateVipInput({
      name: input.name,
      vip: input.vip,
      vhid: input.vhid,
      interface: input.interface,
      advbase: input.advbase,
      preempt: input.preempt,
      apiPort: input.apiPort,
      image: input.image,
    }),
  ) ?? {vip: undefined, settings: undefined}
  if (input.vip === undefined)
    checks.take({ok: false, problem: 'missing required flag --vip: give the virtual IPv4 address, e.g. --vip 192.168.1.250'})
  const distribution = checks.take(checkDistribution(input.distribution ?? DEFAULT_DISTRIBUTION))
  const defaults = DISTRIBUTIONS[distribution ?? DEFAULT_DISTRIBUTION]
  const passwordFileFlag = input.passwordFile ?? DEFAULT_PASSWORD_FILE
  const passwordFile =
    passwordFileFlag === '-'
      ? checks.take<string>({
          ok: false,
          problem: `invalid --password-file "-": the static pod mounts the password from a file on the node; give its path (default ${DEFAULT_PASSWORD_FILE})`,
        })
      : checks.take(checkHostPath('password-file', passwordFileFlag, cwd))
  const caFile = checks.take(checkHostPath('ca-file', input.caFile ?? defaults.caFile))
  const manifestDir =
    input.manifestDir === undefined ? defaults.manifestDir : checks.take(checkHostPath('manifest-dir', input.manifestDir, cwd))
  const name = settings?.name

  if (passwordFile !== undefined && manifestDir !== undefined && dirname(passwordFile) === manifestDir) {
    checks.take({
      ok: false,
      problem: `invalid --password-file ${echo(passwordFile)}: it is in the static pod directory ${manifestDir}, where the kubelet reads every file as a pod; keep it elsewhere (default ${DEFAULT_PASSWORD_FILE})`,
    })
  }
  const config: StaticPodConfig | undefined =
    settings && vip !== undefined && passwordFile !== undefined && caFile !== undefined && manifestDir !== undefined
      ? {...settings, vip, passwordFile, caFile, manifestFile: join(manifestDir, `${name}.yaml`)}
      : undefined
  const manifest = config && renderStaticPod(config)
  const yaml = manifest && manifestYaml(manifest)
  const existingPassword = passwordFile === undefined ? undefined : checks.take(await inspectPasswordFile(passwordFile))
  const manifestFile = input.manifestDir !== undefined && manifestDir !== undefined && name ? join(manifestDir, `${name}.yaml`) : undefined
  const manifestState =
    manifestFile === undefined
      ? undefined
      : checks.take(await inspectManifestFile(manifestFile, yaml === undefined ? undefined : Buffer.from(yaml)))
  checks.done()

  return {
    distribution,
    config: config as StaticPodConfig,
    manifest: manifest as StaticPodManifest,
    manifestYaml: yaml as string,
    ...(existingPassword === undefined ? {} : {existingPassword}),
    ...(manifestFile === undefined ? {} : {manifestTarget: {file: manifestFile, state: manifestState as ManifestState}}),
  }
}

/** What bootstrap did: the JSON result, less the exit code. The password is never part of it. */
export interface BootstrapOutcome {
  distribution: Distribution
  manifest: StaticPodManifest
  /** The file the manifest was written to; null when it was printed. */
  manifestFile: string | null
  /** What happened to that file; null when the manifest was printed. */
  manifestChange: 'created' | 'replaced' | 'unchanged' | null
  passwordFile: string
  passwordCreated: boolean
  guidance: string[]
}

const CHANGE: Record<ManifestState, BootstrapOutcome['manifestChange']> = {new: 'created', replaced: 'replaced', unchanged: 'unchanged'}

/**
 * Writes the password file (when it does not exist) and then the manifest (with --manifest-dir): a manifest
 * that cannot be written takes the password file this run created back with it, so a failure leaves the host
 * as it was.
 */
export async function applyBootstrap(plan: BootstrapPlan): Promise<BootstrapOutcome> {
  const {config, manifestTarget} = plan
  const createdPassword =
    plan.existingPassword === undefined ? await createPasswordFile(config.passwordFile, generatePassword()) : undefined
  if (manifestTarget && manifestTarget.state !== 'unchanged') {
    try {
      await writeManifestFile(manifestTarget.file, Buffer.from(plan.manifestYaml))
    } catch (error) {
      createdPassword?.undo()
      throw error
    }
  }
  const save = manifestTarget ? [] : [`Save the manifest printed on stdout as ${config.manifestFile} (mode 0600) on this node.`]
  return {
    distribution: plan.distribution,
    manifest: plan.manifest,
    manifestFile: manifestTarget?.file ?? null,
    manifestChange: manifestTarget ? CHANGE[manifestTarget.state] : null,
    passwordFile: config.passwordFile,
    passwordCreated: createdPassword !== undefined,
    guidance: [...save, ...bootstrapGuidance({distribution: plan.distribution, config})],
  }
}

/** What was done, one line each, before the guidance in the text output. */
export function outcomeLines(outcome: BootstrapOutcome): string[] {
  const password = outcome.passwordCreated
    ? `created the CARP password file ${outcome.passwordFile} (mode 0600, a new random password)`
    : `using the CARP password in ${outcome.passwordFile}`
  const manifest =
    outcome.manifestFile === null
      ? []
      : [
          {
            created: `wrote the static pod manifest ${outcome.manifestFile} (mode 0600)`,
            replaced: `replaced the static pod manifest ${outcome.manifestFile} (mode 0600)`,
            unchanged: `the static pod manifest ${outcome.manifestFile} is up to date`,
          }[outcome.manifestChange ?? 'created'],
        ]
  return [password, ...manifest]
}
