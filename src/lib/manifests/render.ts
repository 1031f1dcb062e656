import {readFileSync} from 'node:fs'
import {join} from 'node:path'

import type {KubernetesObject} from '@kubernetes/client-node'
import {parseAllDocuments} from 'yaml'

import type {VipConfig} from '../config/vip-config.js'
import {instanceSelector} from '../constants.js'
import {PACKAGE_ROOT} from '../package-root.js'
import {KARP_VERSION} from '../version.js'
import {passwordFingerprint} from './password-fingerprint.js'

const TEMPLATES_DIR = join(PACKAGE_ROOT, 'templates')

/** Templates in the order their objects must be applied: each one's dependencies come before it. */
const TEMPLATE_FILES = ['namespace.yaml', 'serviceaccount.yaml', 'admission-policy.yaml', 'rbac.yaml', 'secret.yaml', 'daemonset.yaml']

/** A rendered object: plain JSON data, as the Kubernetes API takes it. */
export type ManifestObject = KubernetesObject & {apiVersion: string; kind: string; metadata: {name: string; namespace?: string}}

const PLACEHOLDER = /^\$\(karp\.([A-Za-z0-9]+)\)$/

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/

/**
 * The placeholders that name an install's objects. Namespace and name are DNS labels (validated), so they
 * contain no dot and no quote: the names of the cluster-scoped objects (policy, ClusterRole) are unique per
 * install, and the CEL string literal cannot be broken out of.
 */
function identityValues(install: {namespace: string; name: string}): Record<string, string> {
  for (const value of [install.namespace, install.name]) {
    if (!DNS_LABEL.test(value)) throw new Error(`not a DNS label: ${JSON.stringify(value)}`)
  }
  return {
    name: install.name,
    namespace: install.namespace,
    agentPolicyName: `karp-agent.${install.namespace}.${install.name}`,
    agentClusterRoleName: `karp-agent.${install.namespace}.${install.name}`,
    agentUserMatch: `request.userInfo.username == 'system:serviceaccount:${install.namespace}:${install.name}'`,
    // The DaemonSet's selector as a label selector string: the agents list their peers with it.
    agentPeerSelector: instanceSelector(install.name),
  }
}

/** The placeholders every setting but the password fills in. */
function settingValues(config: Omit<VipConfig, 'password'>): Record<string, string | undefined> {
  return {
    ...identityValues(config),
    version: KARP_VERSION,
    vip: config.vip,
    vhid: String(config.vhid),
    advbase: String(config.advbase),
    preempt: String(config.preempt),
    apiPort: String(config.apiPort),
    interface: config.interface,
    healthUrl: config.healthCheck ? `https://127.0.0.1:${config.apiPort}/readyz` : undefined,
    image: config.image,
  }
}

/** The value of each placeholder; undefined marks an optional setting the user left unset. */
export function placeholderValues(config: VipConfig): Record<string, string | undefined> {
  return {
    ...settingValues(config),
    passwordBase64: Buffer.from(config.password).toString('base64'),
    passwordHash: passwordFingerprint(config.password, config),
  }
}

/**
 * Replaces each scalar that is exactly a placeholder with its value, on the parsed tree: whatever a value
 * contains, it stays one string and can never add keys, documents or YAML syntax.
 */
function substitute(node: unknown, values: Record<string, string | undefined>, where: string): unknown {
  if (typeof node === 'string') {
    const match = PLACEHOLDER.exec(node)
    if (!match) {
      if (node.includes('$(karp.')) throw new Error(`template ${where}: placeholder must be a whole value: ${node}`)
      return node
    }
    const key = match[1] as string
    if (!(key in values)) throw new Error(`template ${where}: unknown placeholder ${node}`)
    return values[key] ?? null
  }
  if (Array.isArray(node)) return node.map((item) => substitute(item, values, where))
  if (node !== null && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, substitute(v, values, where)]))
  }
  return node
}

function loadTemplates(files = TEMPLATE_FILES): Array<{file: string; object: unknown}> {
  return files.flatMap((file) => {
    const text = readFileSync(join(TEMPLATES_DIR, file), 'utf8')
    return parseAllDocuments(text).map((doc) => {
      if (doc.errors.length > 0) throw new Error(`template ${file}: ${doc.errors[0]?.message}`)
      return {file, object: doc.toJS() as unknown}
    })
  })
}

type Container = {env?: Array<{name: string; value?: string | null}>}

/** The agent's DaemonSet as rendered: the pod spec a static-pod agent (src/lib/bootstrap) is made from. */
export type AgentDaemonSet = ManifestObject & {
  metadata: {labels: Record<string, string>; annotations: Record<string, string>}
  spec: {template: {metadata: Record<string, unknown>; spec: Record<string, unknown> & {containers: Container[]}}}
}

function isDaemonSet(object: ManifestObject): object is AgentDaemonSet {
  return object.kind === 'DaemonSet'
}

function finishDaemonSet(daemonSet: AgentDaemonSet, config: Omit<VipConfig, 'password'>): void {
  const podSpec = daemonSet.spec.template.spec
  for (const container of podSpec.containers) {
    // An optional setting left unset leaves its variable out, so the agent's own default applies.
    container.env = container.env?.filter((e) => !('value' in e) || e.value !== null)
  }
  if (config.nodeSelector) {
    delete podSpec.affinity
    podSpec.nodeSelector = {[config.nodeSelector.key]: config.nodeSelector.value}
  }
}

/** Renders the objects of one karp install, in apply order. Same config in, same objects out. */
export function renderManifests(config: VipConfig): ManifestObject[] {
  const values = placeholderValues(config)
  return loadTemplates().map(({file, object}) => {
    const rendered = substitute(object, values, file) as ManifestObject
    if (isDaemonSet(rendered)) finishDaemonSet(rendered, config)
    return rendered
  })
}

/**
 * The DaemonSet alone, rendered without a password: the placeholders that derive from it (the Secret's
 * data, the pod template's password digest) are left null. A static-pod agent reads its password from a
 * host file and carries no digest of it.
 */
export function renderAgentDaemonSet(config: Omit<VipConfig, 'password'>): AgentDaemonSet {
  const values = {...settingValues(config), passwordBase64: undefined, passwordHash: undefined}
  const [template] = loadTemplates(['daemonset.yaml'])
  const rendered = substitute(template?.object, values, 'daemonset.yaml') as ManifestObject
  if (!isDaemonSet(rendered)) throw new Error('template daemonset.yaml: not a DaemonSet')
  finishDaemonSet(rendered, config)
  return rendered
}

/** The kinds an install consists of, in apply order, read from the templates themselves. */
export function manifestKinds(): Array<{apiVersion: string; kind: string; namespaced: boolean}> {
  return loadTemplates().map(({object}) => {
    const o = object as {apiVersion: string; kind: string; metadata: {namespace?: string}}
    return {apiVersion: o.apiVersion, kind: o.kind, namespaced: o.metadata.namespace !== undefined}
  })
}

export type ObjectHeader = {apiVersion: string; kind: string; metadata: {name: string; namespace?: string}}

/** What identifies each object of an install (kind, name, namespace), in apply order, without rendering it. */
export function manifestHeaders(install: {namespace: string; name: string}): ObjectHeader[] {
  const values = identityValues(install)
  return loadTemplates().map(({file, object}) => {
    const o = object as {apiVersion: string; kind: string; metadata: {name: string; namespace?: string}}
    const metadata = substitute(
      {name: o.metadata.name, ...(o.metadata.namespace === undefined ? {} : {namespace: o.metadata.namespace})},
      values,
      file,
    )
    return {apiVersion: o.apiVersion, kind: o.kind, metadata: metadata as ObjectHeader['metadata']}
  })
}
