// The Kubernetes binaries the lab and the tests run (kube-apiserver, kube-controller-manager, kube-scheduler,
// kubectl, kubelet, etcd, kwok, crictl), built from Go modules by lab/k8s/build.sh into a cache keyed by
// their versions.
import {existsSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {execa} from 'execa'

const buildScript = join(dirname(fileURLToPath(import.meta.url)), 'k8s', 'build.sh')

/** Builds the binaries when missing (cached by version) and returns their directory. */
export async function resolveBinDir(): Promise<string> {
  const fromEnv = process.env.KARP_TEST_BIN_DIR
  if (fromEnv && existsSync(join(fromEnv, 'kubelet'))) return fromEnv
  const result = await execa('bash', [buildScript], {stderr: ['pipe', 'inherit'], reject: false})
  if (result.exitCode !== 0) {
    const last = result.stderr.trim().split('\n').at(-1) ?? ''
    throw new Error(`lab/k8s/build.sh failed (exit ${result.exitCode}): ${last}`)
  }
  const dir = result.stdout.trim().split('\n').at(-1)
  if (!dir) throw new Error('lab/k8s/build.sh printed no binary directory')
  return dir
}
