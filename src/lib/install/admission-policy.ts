import {AdmissionregistrationV1Api} from '@kubernetes/client-node'

import type {Kube} from '../kube/client.js'

/** The kinds of the policy that keeps the agent to its own pod (templates/admission-policy.yaml). */
export const ADMISSION_POLICY_GROUP = 'admissionregistration.k8s.io'
export const ADMISSION_POLICY_API = `${ADMISSION_POLICY_GROUP}/v1`
export const ADMISSION_POLICY_KINDS: readonly string[] = ['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']

export const isAdmissionPolicyKind = (kind: string) => ADMISSION_POLICY_KINDS.includes(kind)

/** Whether the API server serves ValidatingAdmissionPolicy (GA in Kubernetes 1.30). Discovery only. */
export async function supportsAdmissionPolicies(kube: Kube): Promise<boolean> {
  const api = kube.config.makeApiClient(AdmissionregistrationV1Api)
  const found = await kube.nullIfNotFound(`discovering ${ADMISSION_POLICY_API}`, () => api.getAPIResources())
  return found?.resources.some((r) => r.kind === 'ValidatingAdmissionPolicy') ?? false
}

export const noAdmissionPolicyWarning = (namespace: string) =>
  `this cluster serves no ValidatingAdmissionPolicy (Kubernetes before 1.30): the agent's token still cannot change any pod's spec or read anything, ` +
  `but it can patch the status, labels and annotations of any pod in namespace ${namespace}, not only its own; upgrade to 1.30 or newer to confine it to its own pod`
