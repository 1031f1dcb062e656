/**
 * The names karp writes into a cluster and reads back, and the defaults several commands share. Every
 * other module, test, lab and benchmark imports them from here. The templates (templates/*.yaml) spell the
 * keys out as YAML; test/unit/render.test.ts fails when a rendered object uses a key that is not one of
 * these, or lacks one karp reads back.
 */

/** The recommended Kubernetes labels on every object karp renders. */
export const NAME_LABEL = 'app.kubernetes.io/name'
export const INSTANCE_LABEL = 'app.kubernetes.io/instance'
export const COMPONENT_LABEL = 'app.kubernetes.io/component'
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by'
export const VERSION_LABEL = 'app.kubernetes.io/version'

/** The value of NAME_LABEL on every karp object. */
export const APP_NAME = 'karp'
/** The value of MANAGED_BY_LABEL, and of CREATED_BY_ANNOTATION on a namespace karp created. */
export const MANAGED_BY = 'karp'
/** The value of COMPONENT_LABEL on the DaemonSet and its agent pods. */
export const AGENT_COMPONENT = 'agent'

/** The label selector of every karp object: one list call with it finds every install in the cluster. */
export const KARP_SELECTOR = `${NAME_LABEL}=${APP_NAME}`

/** The label selector of one install's objects; the DaemonSet's pod selector, as text. */
export const instanceSelector = (name: string) => `${KARP_SELECTOR},${INSTANCE_LABEL}=${name}`

/** The DaemonSet annotations karp status, check-cert and kubeconfig rewrite find an install's VIP by. */
export const VIP_ANNOTATION = 'karp.io/vip'
export const VHID_ANNOTATION = 'karp.io/vhid'
export const API_PORT_ANNOTATION = 'karp.io/api-port'

/**
 * The pod-template annotation that rolls the agents when the CARP password changes; its value is a salted
 * digest (src/lib/manifests/password-fingerprint.ts).
 */
export const PASSWORD_FINGERPRINT_ANNOTATION = 'karp.io/password-hash'

/** Marks a namespace karp created (value MANAGED_BY); uninstall deletes no namespace without it. */
export const CREATED_BY_ANNOTATION = 'karp.io/created-by'

/**
 * The pod condition the agent reports its role in (agent/lib.sh): status True, reason Master or Backup,
 * lastTransitionTime when the role last changed. The kubelet keeps conditions it does not own.
 */
export const ROLE_CONDITION = 'karp.io/role'
/** The pod condition the agent reports whether it may take the VIP in; the agents rank themselves by it. */
export const ELIGIBLE_CONDITION = 'karp.io/eligible'
/** What the agents report Events as (agent/lib.sh). */
export const AGENT_REPORTING_COMPONENT = 'karp.io/agent'

/** The port the API server listens on unless --api-port (or --port) says otherwise. */
export const DEFAULT_API_PORT = 6443

/** The prefix length of the subnet the nodes and the VIP share, unless install's --subnet-prefix says otherwise. */
export const DEFAULT_SUBNET_PREFIX = 24

/**
 * A static-pod agent (`karp bootstrap`): the label its manifest and its mirror pod carry (value "true"),
 * and the namespace the manifest names, where the kubelet creates the mirror pods that status and install
 * read. Static pods live outside any install's namespace: they run before the cluster, and its
 * namespaces, exist.
 */
export const STATIC_POD_LABEL = 'karp.io/static-pod'
export const STATIC_POD_NAMESPACE = 'kube-system'
/** On a static-pod agent: the host path of its manifest, so install can say which file to remove. */
export const STATIC_MANIFEST_ANNOTATION = 'karp.io/static-manifest'
/** On a static-pod agent: the host path of the password file it mounts (the password itself is never in the API). */
export const STATIC_PASSWORD_FILE_ANNOTATION = 'karp.io/password-file'
