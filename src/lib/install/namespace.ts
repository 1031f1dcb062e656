import type {V1Namespace} from '@kubernetes/client-node'

import {DEFAULTS} from '../config/vip-config.js'
import {CREATED_BY_ANNOTATION, MANAGED_BY} from '../constants.js'
import type {Checked} from '../config/validate.js'

/*
 * What karp does with the namespace it is told to use. It creates one that does not exist (privileged Pod
 * Security level, marked with CREATED_BY_ANNOTATION) and never applies, relabels or deletes one it did not
 * create: a namespace that exists already may hold anything, and its labels are its owner's.
 */
/** Namespaces every cluster has and other things live in: an install there needs --allow-system-namespace. */
export const SYSTEM_NAMESPACES = ['kube-system', 'kube-public', 'kube-node-lease', 'default'] as const

export const ALLOW_SYSTEM_NAMESPACE_FLAG = 'allow-system-namespace'

const isSystem = (namespace: string) => (SYSTEM_NAMESPACES as readonly string[]).includes(namespace)

/** Refuses a system namespace unless the user said so with --allow-system-namespace. */
export function checkInstallNamespace(namespace: string, allowSystem: boolean): Checked<string> {
  if (!isSystem(namespace) || allowSystem) return {ok: true, value: namespace}
  return {
    ok: false,
    problem:
      `invalid --namespace ${JSON.stringify(namespace)}: a system namespace, shared with the cluster's own components; ` +
      `karp installs into a namespace of its own (default ${DEFAULTS.namespace}); pass --${ALLOW_SYSTEM_NAMESPACE_FLAG} to install there anyway`,
  }
}

/**
 * Whether `karp render` prints the Namespace object. Applying one to a namespace that exists would relabel it
 * (privileged Pod Security) and mark it for deletion by uninstall, and render cannot see the cluster, so only
 * karp's own default namespace gets one unless --create-namespace says otherwise; never a system namespace.
 */
export function checkRenderNamespace(namespace: string, createNamespace: boolean | undefined): Checked<boolean> {
  if (createNamespace && isSystem(namespace)) {
    return {
      ok: false,
      problem: `invalid --create-namespace with --namespace ${JSON.stringify(namespace)}: a system namespace exists in every cluster and is not karp's to create`,
    }
  }
  return {ok: true, value: createNamespace ?? namespace === DEFAULTS.namespace}
}

/** Whether karp created this namespace (and uninstall may delete it). */
export const isCreatedByKarp = (ns: V1Namespace | null): boolean => ns?.metadata?.annotations?.[CREATED_BY_ANNOTATION] === MANAGED_BY

const ENFORCE_LABEL = 'pod-security.kubernetes.io/enforce'

/**
 * The agent needs host networking and the NET_ADMIN and NET_RAW capabilities, which only the privileged
 * Pod Security level admits. An existing namespace that enforces a stricter level would reject every agent
 * pod (the DaemonSet itself is admitted, so the install would just never roll out). Without the label the
 * cluster's default level applies, which is privileged unless the cluster's admission configuration says
 * otherwise.
 */
export function podSecurityProblem(ns: V1Namespace): string | undefined {
  const name = ns.metadata?.name ?? ''
  const level = ns.metadata?.labels?.[ENFORCE_LABEL]
  if (level === undefined || level === 'privileged') return undefined
  return (
    `namespace ${name} enforces Pod Security level ${JSON.stringify(level)}, which rejects the agent (host network, NET_ADMIN and NET_RAW need "privileged"); ` +
    `allow it with: kubectl label namespace ${name} ${ENFORCE_LABEL}=privileged --overwrite`
  )
}
