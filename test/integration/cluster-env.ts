// The control plane test/global-setup.ts started, as integration suites see it:
//   const cluster = clusterOrSkip()
//   describe('…', {skip: cluster.skip}, () => { … cluster.kubeconfig … })
import {KubeConfig} from '@kubernetes/client-node'

export interface ClusterEnv {
  /** false, or why there is no control plane (the suite is then skipped with this message). */
  skip: string | false
  kubeconfig: string
  userKubeconfig: string
  userName: string
  server: string
  caFile: string
  caKeyFile: string
  binDir: string
}

export function clusterOrSkip(): ClusterEnv {
  const env = process.env
  const reason =
    env.KARP_TEST_CLUSTER_SKIP || (env.KARP_TEST_KUBECONFIG ? '' : 'no control plane: run through test/global-setup.ts (npm test)')
  if (reason && env.CI === 'true' && !env.KARP_TEST_CLUSTER_SKIP) throw new Error(reason)
  return {
    skip: reason ? `no Kubernetes control plane: ${reason}` : false,
    kubeconfig: env.KARP_TEST_KUBECONFIG ?? '',
    userKubeconfig: env.KARP_TEST_USER_KUBECONFIG ?? '',
    userName: env.KARP_TEST_USER ?? '',
    server: env.KARP_TEST_SERVER ?? '',
    caFile: env.KARP_TEST_CA_FILE ?? '',
    caKeyFile: env.KARP_TEST_CA_KEY_FILE ?? '',
    binDir: env.KARP_TEST_BIN_DIR ?? '',
  }
}

export function loadKubeConfig(path: string): KubeConfig {
  const kc = new KubeConfig()
  kc.loadFromFile(path)
  return kc
}

/** A namespace name no other test (or earlier run) uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`.slice(0, 63)
}
