import {UnreachableError} from '../errors.js'
import {type Kube, toKarpError} from './client.js'
import {NotKubernetesAnswerError} from './request-guard.js'

export interface PermissionNeed {
  verb: string
  group: string
  resource: string
  namespace?: string
}

export const describeNeed = (n: PermissionNeed) =>
  `${n.verb} ${n.group ? `${n.resource}.${n.group}` : n.resource}${n.namespace ? ` in namespace ${n.namespace}` : ' (cluster-wide)'}`

/**
 * Asks the API server which of these the current identity may not do (SelfSubjectAccessReview), so a
 * command can refuse before its first write instead of failing half-way.
 */
export async function missingPermissions(kube: Kube, needs: PermissionNeed[]): Promise<PermissionNeed[]> {
  const answers = await Promise.all(
    needs.map((need) =>
      kube.call(`checking permission to ${describeNeed(need)}`, () =>
        kube.authz.createSelfSubjectAccessReview({
          body: {spec: {resourceAttributes: {verb: need.verb, group: need.group, resource: need.resource, namespace: need.namespace}}},
        }),
      ),
    ),
  )
  // A review without a yes or no did not come from an authorizer: never read it as a refusal.
  const unanswered = answers.findIndex((a) => typeof a?.status?.allowed !== 'boolean')
  if (unanswered >= 0) {
    throw toKarpError(
      new NotKubernetesAnswerError('a SelfSubjectAccessReview without status.allowed'),
      `checking permission to ${describeNeed(needs[unanswered] as PermissionNeed)}`,
      kube.server,
    )
  }
  return needs.filter((_, i) => answers[i]?.status?.allowed !== true)
}

/**
 * Refuses, naming every permission the current identity lacks, before a command does any of it.
 * outcome: what the refusal leaves behind, e.g. "nothing was applied".
 */
export async function requirePermissions(kube: Kube, needs: PermissionNeed[], outcome: string, hint: string): Promise<void> {
  const missing = await missingPermissions(kube, needs)
  if (missing.length > 0) throw forbidden(kube, missing, outcome, hint)
}

/** The refusal naming every permission the current identity lacks; outcome and hint as requirePermissions'. */
export function forbidden(kube: Kube, missing: PermissionNeed[], outcome: string, hint: string): UnreachableError {
  const user = kube.config.getCurrentUser()?.name ?? 'the current user'
  return new UnreachableError(
    `forbidden: ${user} (context ${kube.contextName}) may not ${missing.map(describeNeed).join('; ')}; ${outcome}`,
    hint,
  )
}
