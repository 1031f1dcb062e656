import {InvalidInputError} from '../errors.js'
import {STATIC_MANIFEST_ANNOTATION, STATIC_POD_NAMESPACE, VHID_ANNOTATION, VIP_ANNOTATION} from '../constants.js'
import type {StaticAgent} from '../kube/static-agents.js'

/*
 * The handover from static-pod agents (karp bootstrap) to the DaemonSet. The DaemonSet's agent on a node
 * waits, out of CARP, while that node's static-pod agent runs; removing the manifests one node at a time
 * lets each DaemonSet agent join CARP (same VIP, vhid and password) before the next static agent leaves, so
 * some agent holds the VIP throughout. The holder's static agent goes last: its leaving moves the VIP.
 */

const nodesOf = (agents: StaticAgent[]) => [...new Set(agents.map((a) => a.node))].join(', ')

/** The one VIP and vhid the static-pod agents share; every disagreement or missing annotation as a problem otherwise. */
export function staticAgentsVip(agents: StaticAgent[]): {vip: string; vhid: number} | {problems: string[]} {
  const problems: string[] = []
  for (const a of agents) {
    const missing = [a.vip === undefined && VIP_ANNOTATION, a.vhid === undefined && VHID_ANNOTATION].filter(Boolean)
    if (missing.length > 0)
      problems.push(`static-pod agent ${STATIC_POD_NAMESPACE}/${a.pod} on ${a.node} has no valid ${missing.join(' or ')} annotation`)
  }
  const groups = new Map<string, StaticAgent[]>()
  for (const a of agents.filter((a) => a.vip !== undefined && a.vhid !== undefined)) {
    const key = `VIP ${a.vip} (vhid ${a.vhid})`
    groups.set(key, [...(groups.get(key) ?? []), a])
  }
  if (groups.size > 1) {
    problems.push(
      `the static-pod agents disagree: ${[...groups].map(([key, group]) => `${key} on ${nodesOf(group)}`).join('; ')}; ` +
        'karp install takes over from one VIP: fix or remove the manifests that differ',
    )
  }
  const first = agents[0]
  if (problems.length > 0 || first?.vip === undefined || first.vhid === undefined) return {problems}
  return {vip: first.vip, vhid: first.vhid}
}

export interface HandoverInput {
  vip: string
  vhid: number
  /** The API server port the DaemonSet's agents check and status probes: the static agents' must be the same. */
  apiPort: number
  /** --vhid was given (else the static agents' vhid is taken). */
  vhidGiven: boolean
  /** --password or --password-file was given. */
  passwordGiven: boolean
  agents: StaticAgent[]
}

/**
 * Refuses an install that cannot take over from the static-pod agents, with every reason at once: their VIP
 * and vhid must be the DaemonSet's (else two CARP groups fight over the VIP, or one holds it that the other
 * never hears), and so must their password, which only their nodes hold. Returns the vhid to install.
 */
export function checkHandover(input: HandoverInput): {vhid: number} {
  if (input.agents.length === 0) return {vhid: input.vhid}
  const theirs = staticAgentsVip(input.agents)
  if ('problems' in theirs) throw new InvalidInputError(theirs.problems)
  const where = `the static-pod agents on ${nodesOf(input.agents)}`
  const problems: string[] = []
  if (input.vip !== theirs.vip) {
    problems.push(
      `--vip ${input.vip} differs from VIP ${theirs.vip} of ${where}: the DaemonSet takes over their VIP; give --vip ${theirs.vip}`,
    )
  }
  if (input.vhidGiven && input.vhid !== theirs.vhid) {
    problems.push(
      `--vhid ${input.vhid} differs from vhid ${theirs.vhid} of ${where}: give --vhid ${theirs.vhid}, or leave it out to take theirs`,
    )
  }
  const ports = [...new Set(input.agents.flatMap((a) => (a.apiPort === undefined ? [] : [a.apiPort])))]
  if (ports.length > 0 && !ports.includes(input.apiPort)) {
    problems.push(`--api-port ${input.apiPort} differs from port ${ports.join(', ')} of ${where}: give --api-port ${ports[0]}`)
  }
  if (!input.passwordGiven) {
    const files = [...new Set(input.agents.map((a) => a.passwordFile ?? '(the password file karp bootstrap wrote)'))].join(', ')
    problems.push(
      `${where} run VIP ${theirs.vip}, and the DaemonSet must use their CARP password, which is not in the API: it is in ${files} on those nodes; ` +
        `copy it from one and give it with --password-file, e.g. --password-file ./password (or --password-file - to read it from stdin)`,
    )
  }
  if (problems.length > 0) throw new InvalidInputError(problems)
  return {vhid: theirs.vhid}
}

export interface HandoverStep {
  node: string
  /** Host path of the manifest to remove; undefined when the agent's pod does not say. */
  manifest?: string
  /** Whether the DaemonSet runs an agent on this node, to take over there. */
  selected: boolean
}

export interface HandoverPlan {
  /** One node at a time, in this order. */
  order: HandoverStep[]
  /** The node known to hold the VIP (it reports the VIP among its addresses), removed last; undefined when unknown. */
  holder?: string
}

/**
 * The order to remove the static pod manifests in: by node name, the node known to hold the VIP last.
 * Static agents report no role, so the holder is known only when its node lists the VIP among its addresses.
 */
export function handoverPlan(
  agents: StaticAgent[],
  vip: string,
  nodes: Array<{name: string; addresses: string[]}>,
  selected: Set<string>,
): HandoverPlan {
  const holders = nodes.filter((n) => n.addresses.includes(vip) && agents.some((a) => a.node === n.name)).map((n) => n.name)
  const holder = holders.length === 1 ? holders[0] : undefined
  const order = [...agents]
    .sort((a, b) => Number(a.node === holder) - Number(b.node === holder) || a.node.localeCompare(b.node))
    .map((a) => ({node: a.node, ...(a.manifest ? {manifest: a.manifest} : {}), selected: selected.has(a.node)}))
  return {order, ...(holder ? {holder} : {})}
}

const removal = (step: HandoverStep, pod?: string) =>
  step.manifest
    ? `rm ${step.manifest}`
    : `remove the karp static pod manifest${pod ? ` of pod ${pod}` : ''} from the kubelet's manifest directory (its ${STATIC_MANIFEST_ANNOTATION} annotation is missing)`

/** What to do after the install, as numbered lines: each node's removal, how to find the holder, the password files. */
export function handoverSteps(plan: HandoverPlan, agents: StaticAgent[], vip: string, rolledOut: boolean): string[] {
  const podOn = (node: string) => agents.find((a) => a.node === node)?.pod
  const lines = [
    `Handover: static-pod agents (karp bootstrap) hold VIP ${vip} on ${nodesOf(agents)}; the DaemonSet's agents wait behind them, out of CARP.`,
  ]
  if (!rolledOut) lines.push('First wait for the rollout (--no-wait did not): karp status shows every DaemonSet agent ready.')
  lines.push(
    'Remove the static pod manifests one node at a time, the node that holds the VIP last; after each, wait until karp status shows the DaemonSet agent on that node as backup (or master) before the next:',
    ...plan.order.map(
      (step, i) =>
        `  ${i + 1}. on ${step.node}: ${removal(step, podOn(step.node))}` +
        (step.selected ? '' : ` (the DaemonSet does not select ${step.node}: no agent of its takes over there)`) +
        (step.node === plan.holder ? ` (it holds the VIP: it lists ${vip} among its addresses)` : ''),
    ),
  )
  if (!plan.holder) {
    lines.push(
      `Static-pod agents report no role: \`ip -brief address show to ${vip}/32\` on a node shows whether it holds the VIP; leave that node for last.`,
    )
  }
  const byFile = new Map<string, string[]>()
  for (const a of agents) if (a.passwordFile) byFile.set(a.passwordFile, [...(byFile.get(a.passwordFile) ?? []), a.node])
  if (byFile.size > 0) {
    lines.push(
      `Then, if you like, delete the password file copies (the DaemonSet keeps the password in its Secret): ${[...byFile].map(([file, nodes]) => `rm ${file} on ${nodes.join(', ')}`).join('; ')}.`,
    )
  }
  return lines
}

/** The manifests still to remove, for status: one line naming each, in the order to remove them. */
export function handoverInProgress(plan: HandoverPlan, agents: StaticAgent[], vip: string): string {
  return (
    `handover in progress: static-pod agents still run on ${nodesOf(agents)}; remove their manifests one node at a time, ` +
    `each once the DaemonSet agent of the node before is backup, the node holding VIP ${vip} last: ` +
    plan.order.map((step) => `${removal(step, agents.find((a) => a.node === step.node)?.pod)} on ${step.node}`).join('; ')
  )
}
