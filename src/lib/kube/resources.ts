import {type Configuration, type KubeConfig, KubernetesObjectApi, type V1APIResource} from '@kubernetes/client-node'

/** API group, plural resource and scope of each kind karp installs: what RBAC checks, access reviews and URLs name. */
const RESOURCES: Record<string, {group: string; resource: string; namespaced: boolean}> = {
  Namespace: {group: '', resource: 'namespaces', namespaced: false},
  ServiceAccount: {group: '', resource: 'serviceaccounts', namespaced: true},
  Role: {group: 'rbac.authorization.k8s.io', resource: 'roles', namespaced: true},
  RoleBinding: {group: 'rbac.authorization.k8s.io', resource: 'rolebindings', namespaced: true},
  ClusterRole: {group: 'rbac.authorization.k8s.io', resource: 'clusterroles', namespaced: false},
  ClusterRoleBinding: {group: 'rbac.authorization.k8s.io', resource: 'clusterrolebindings', namespaced: false},
  Secret: {group: '', resource: 'secrets', namespaced: true},
  DaemonSet: {group: 'apps', resource: 'daemonsets', namespaced: true},
  ValidatingAdmissionPolicy: {group: 'admissionregistration.k8s.io', resource: 'validatingadmissionpolicies', namespaced: false},
  ValidatingAdmissionPolicyBinding: {
    group: 'admissionregistration.k8s.io',
    resource: 'validatingadmissionpolicybindings',
    namespaced: false,
  },
}

export function resourceOf(kind: string): {group: string; resource: string} {
  const r = RESOURCES[kind]
  if (!r) throw new Error(`no API resource known for kind ${kind}`)
  return {group: r.group, resource: r.resource}
}

/**
 * KubernetesObjectApi that builds the URL of a kind karp knows without asking the API server: the library
 * otherwise reads the discovery document of each API group first, once per object when they go together.
 * Names and scopes of these kinds are fixed by their API versions; any other kind is still discovered.
 */
export class KnownKindsObjectApi extends KubernetesObjectApi {
  /** As KubernetesObjectApi.makeApiClient, which would make the base class. */
  static forConfig(kc: KubeConfig): KnownKindsObjectApi {
    const client = kc.makeApiClient(KnownKindsObjectApi)
    client.setDefaultNamespace(kc)
    return client
  }

  protected override async resource(apiVersion: string, kind: string, options?: Configuration): Promise<V1APIResource | undefined> {
    const known = RESOURCES[kind]
    const group = apiVersion.includes('/') ? apiVersion.split('/')[0] : ''
    if (known && known.group === group) return {kind, name: known.resource, namespaced: known.namespaced, singularName: '', verbs: []}
    return super.resource(apiVersion, kind, options)
  }
}
