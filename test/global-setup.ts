// Node's --test-global-setup: one real control plane per test run (test/cluster/control-plane.ts).
// What it hands the test files, through the environment (read them with test/integration/cluster-env.ts):
//   KARP_TEST_KUBECONFIG       admin kubeconfig (group system:masters)
//   KARP_TEST_USER_KUBECONFIG  kubeconfig of an unprivileged user (no RBAC bindings)
//   KARP_TEST_USER             that user's name
//   KARP_TEST_SERVER           https://address:port of the API server
//   KARP_TEST_CA_FILE          the cluster CA certificate (PEM); KARP_TEST_CA_KEY_FILE its key, to sign more
//   KARP_TEST_BIN_DIR          kube-apiserver, kubectl, etcd, ... of the pinned version
//   KARP_TEST_CLUSTER_SKIP     set instead when there is no control plane: why integration suites skip
// Already set KARP_TEST_KUBECONFIG (with the others, e.g. from `test/cluster/cluster.ts up`) means: use that
// cluster, start none. Under CI=true a missing Go toolchain or failed build fails the run instead of skipping.
import {tsImport} from 'tsx/esm/api'
import type {ControlPlane} from './cluster/control-plane.js'

// Node loads this file before `--import tsx` takes effect (only its own type stripping applies, which does not
// map './x.js' to x.ts), so the TypeScript modules behind it come in through tsx explicitly.
const {resolveBinDir, startControlPlane} = (await tsImport(
  './cluster/control-plane.ts',
  import.meta.url,
)) as typeof import('./cluster/control-plane.js')

let controlPlane: ControlPlane | undefined

export async function globalSetup(): Promise<void> {
  if (process.env.KARP_TEST_CLUSTER_SKIP) {
    console.error(`integration tests skipped: KARP_TEST_CLUSTER_SKIP=${process.env.KARP_TEST_CLUSTER_SKIP}`)
    return
  }
  if (process.env.KARP_TEST_KUBECONFIG) {
    console.error(`using the running control plane of KARP_TEST_KUBECONFIG=${process.env.KARP_TEST_KUBECONFIG}`)
    return
  }
  let binDir: string
  try {
    binDir = await resolveBinDir()
  } catch (err) {
    const reason = (err as Error).message
    if (process.env.CI === 'true') throw new Error(`cannot build the test control plane (CI=true, so no skipping): ${reason}`, {cause: err})
    process.env.KARP_TEST_CLUSTER_SKIP = reason
    console.error(`integration tests will be skipped, no control plane: ${reason}`)
    return
  }
  controlPlane = await startControlPlane({binDir})
  Object.assign(process.env, {
    KARP_TEST_KUBECONFIG: controlPlane.adminKubeconfig,
    KARP_TEST_USER_KUBECONFIG: controlPlane.userKubeconfig,
    KARP_TEST_USER: controlPlane.userName,
    KARP_TEST_SERVER: controlPlane.server,
    KARP_TEST_CA_FILE: controlPlane.caFile,
    KARP_TEST_CA_KEY_FILE: controlPlane.caKeyFile,
    KARP_TEST_BIN_DIR: controlPlane.binDir,
  })
  console.error(`control plane ready in ${controlPlane.startupSeconds} s (${controlPlane.server}, logs in ${controlPlane.tempDir})`)
}

export async function globalTeardown(): Promise<void> {
  await controlPlane?.stop()
}
