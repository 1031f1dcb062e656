/** What an install consists of, in the order karp renders, applies and reports it. */
export const INSTALL_KINDS = [
  'Namespace',
  'ServiceAccount',
  'ValidatingAdmissionPolicy',
  'ValidatingAdmissionPolicyBinding',
  'Role',
  'RoleBinding',
  'ClusterRole',
  'ClusterRoleBinding',
  'Secret',
  'DaemonSet',
]
