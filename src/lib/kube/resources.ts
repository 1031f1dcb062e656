/** API group and plural resource of each kind karp installs: what RBAC checks and access reviews name. */
const RESOURCES: Record<string, {group: string; resource: string}> = {
  Namespace: {group: '', resource: 'namespaces'},
  ServiceAccount: {group: '', resource: 'serviceaccounts'},
  Role: {group: 'rbac.authorization.k8s.io', resource: 'roles'},
  RoleBinding: {group: 'rbac.authorization.k8s.io', resource: 'rolebindings'},
  ClusterRole: {group: 'rbac.authorization.k8s.io', resource: 'clusterroles'},
  ClusterRoleBinding: {group: 'rbac.authorization.k8s.io', resource: 'clusterrolebindings'},
  Secret: {group: '', resource: 'secrets'},
  DaemonSet: {group: 'apps', resource: 'daemonsets'},
  ValidatingAdmissionPolicy: {group: 'admissionregistration.k8s.io', resource: 'validatingadmissionpolicies'},
  ValidatingAdmissionPolicyBinding: {group: 'admissionregistration.k8s.io', resource: 'validatingadmissionpolicybindings'},
}

export function resourceOf(kind: string): {group: string; resource: string} {
  const r = RESOURCES[kind]
  if (!r) throw new Error(`no API resource known for kind ${kind}`)
  return r
}
