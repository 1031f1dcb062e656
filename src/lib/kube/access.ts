import type {Kube} from './client.js'

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
  return needs.filter((_, i) => !answers[i]?.status?.allowed)
}
