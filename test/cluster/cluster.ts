// npx tsx test/cluster/cluster.ts up [--bind ADDR] [--san NAME_OR_IP]... [--netns NS]
// Starts the test control plane, prints how to use it, and tears it down on Ctrl-C or SIGTERM.
// --netns runs etcd and kube-apiserver inside that network namespace (see ControlPlaneOptions.commandPrefix).
import {parseArgs} from 'node:util'
import {startControlPlane} from './control-plane.js'

const usage = 'usage: npx tsx test/cluster/cluster.ts up [--bind ADDR] [--san NAME_OR_IP]... [--netns NS]'
const {positionals, values} = parseArgs({
  allowPositionals: true,
  options: {
    bind: {type: 'string'},
    san: {type: 'string', multiple: true},
    netns: {type: 'string'},
    help: {type: 'boolean', short: 'h'},
  },
})
if (values.help || positionals.length !== 1 || positionals[0] !== 'up') {
  console.error(usage)
  process.exit(values.help ? 0 : 2)
}

const cp = await startControlPlane({
  bindAddress: values.bind,
  extraSans: values.san,
  commandPrefix: values.netns ? ['ip', 'netns', 'exec', values.netns] : undefined,
})
console.error(`control plane ready in ${cp.startupSeconds} s at ${cp.server}; logs in ${cp.tempDir}`)
console.error(`kubectl: ${cp.binDir}/kubectl --kubeconfig ${cp.adminKubeconfig} get nodes`)
console.error('tests reuse it when these are exported (Ctrl-C stops it):')
console.log(`export KARP_TEST_KUBECONFIG=${cp.adminKubeconfig}`)
console.log(`export KARP_TEST_USER_KUBECONFIG=${cp.userKubeconfig}`)
console.log(`export KARP_TEST_USER=${cp.userName}`)
console.log(`export KARP_TEST_SERVER=${cp.server}`)
console.log(`export KARP_TEST_CA_FILE=${cp.caFile}`)
console.log(`export KARP_TEST_CA_KEY_FILE=${cp.caKeyFile}`)
console.log(`export KARP_TEST_BIN_DIR=${cp.binDir}`)

const keepAlive = setInterval(() => {}, 1 << 30)
const shutdown = async (signal: string) => {
  console.error(`${signal}: stopping the control plane`)
  clearInterval(keepAlive)
  await cp.stop()
  process.exit(0)
}
process.once('SIGINT', () => void shutdown('SIGINT'))
process.once('SIGTERM', () => void shutdown('SIGTERM'))
