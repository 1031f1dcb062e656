import type {V1NodeSelectorRequirement, V1PodSpec} from '@kubernetes/client-node'

import type {VipSettings} from '../config/vip-config.js'

function requirementHolds(req: V1NodeSelectorRequirement, labels: Record<string, string>): boolean {
  const has = Object.hasOwn(labels, req.key)
  const value = labels[req.key]
  switch (req.operator) {
    case 'Exists':
      return has
    case 'DoesNotExist':
      return !has
    case 'In':
      return has && (req.values ?? []).includes(value as string)
    case 'NotIn':
      return !has || !(req.values ?? []).includes(value as string)
    case 'Gt':
    case 'Lt': {
      const [bound] = (req.values ?? []).map(Number)
      const n = Number(value)
      if (!has || !Number.isInteger(n) || bound === undefined) return false
      return req.operator === 'Gt' ? n > bound : n < bound
    }
    default:
      return false
  }
}

/**
 * Whether the scheduler may place this pod spec on a node with these labels, judged by its nodeSelector
 * and required node affinity (terms ORed, expressions ANDed). karp status judges an installed DaemonSet's
 * own spec with it.
 */
export function podSpecSelectsNode(spec: Pick<V1PodSpec, 'nodeSelector' | 'affinity'>, labels: Record<string, string>): boolean {
  for (const [key, value] of Object.entries(spec.nodeSelector ?? {})) if (labels[key] !== value) return false
  const terms = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms
  if (!terms) return true
  return terms.some((term) => (term.matchExpressions ?? []).every((req) => requirementHolds(req, labels)))
}

/** How the default DaemonSet affinity (templates/daemonset.yaml) picks nodes, for messages. */
export const CONTROL_PLANE_SELECTION =
  'label node-role.kubernetes.io/control-plane, node-role.kubernetes.io/master or node-role.kubernetes.io/controlplane=true'

/**
 * The labels kubeadm (control-plane, formerly master), k3s, RKE2 and RKE (controlplane=true) put on API
 * server nodes: the same rule as the default affinity in templates/daemonset.yaml (a unit test holds them equal).
 */
export function isControlPlaneLabels(labels: Record<string, string>): boolean {
  return (
    'node-role.kubernetes.io/control-plane' in labels ||
    'node-role.kubernetes.io/master' in labels ||
    labels['node-role.kubernetes.io/controlplane'] === 'true'
  )
}

/**
 * Whether the DaemonSet rendered for these settings runs the agent on a node with these labels: the
 * --node-selector label when given, else the control-plane default. Install's preflight asks this without
 * rendering; test/unit/node-selection.test.ts holds it equal to podSpecSelectsNode on the rendered DaemonSet.
 */
export function agentSelectsNode(settings: Pick<VipSettings, 'nodeSelector'>, labels: Record<string, string>): boolean {
  const selector = settings.nodeSelector
  return selector ? labels[selector.key] === selector.value : isControlPlaneLabels(labels)
}

/** A label key or value as the API validates them: nothing the label-selector syntax could misread. */
const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/

function requirementSelector(req: V1NodeSelectorRequirement): string | undefined {
  if (!LABEL_KEY.test(req.key)) return undefined
  const values = req.values ?? []
  const set = () => (values.length > 0 && values.every((v) => LABEL_VALUE.test(v)) ? `(${values.join(',')})` : undefined)
  switch (req.operator) {
    case 'Exists':
      return req.key
    case 'DoesNotExist':
      return `!${req.key}`
    case 'In': {
      const s = set()
      return s && `${req.key} in ${s}`
    }
    case 'NotIn': {
      const s = set()
      return s && `${req.key} notin ${s}`
    }
    default:
      return undefined
  }
}

/**
 * Label selectors whose lists together hold every node podSpecSelectsNode accepts for this spec: one per
 * node-affinity term (terms are ORed, a selector can only AND). A requirement a selector cannot say (Gt,
 * Lt, anything malformed) is left out, which only widens the list; podSpecSelectsNode stays the judge.
 * [''] means every node.
 */
export function nodeLabelSelectors(spec: Pick<V1PodSpec, 'nodeSelector' | 'affinity'>): string[] {
  const base = Object.entries(spec.nodeSelector ?? {}).flatMap(([key, value]) =>
    LABEL_KEY.test(key) && LABEL_VALUE.test(value) ? [`${key}=${value}`] : [],
  )
  const terms = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms
  if (!terms) return [base.join(',')]
  const selectors = terms.map((term) =>
    [...base, ...(term.matchExpressions ?? []).flatMap((req) => requirementSelector(req) ?? [])].join(','),
  )
  return selectors.includes('') ? [''] : [...new Set(selectors)]
}
