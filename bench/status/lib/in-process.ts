// The in-process part of `karp status`, run by bench/status/run.ts in a process of its own: the time from the
// first request to the verdict, and how far gathering raised the process's peak memory above what loading took.
// Loaded from the sources (the timing starts after loading). Prints one JSON line:
//   node --import tsx bench/status/lib/in-process.ts KUBECONFIG
import {Kube} from '../../../src/lib/kube/client.js'
import {gatherStatus} from '../../../src/lib/status/status.js'

const kubeconfig = process.argv[2]
if (!kubeconfig) throw new Error("give the kubeconfig of the benchmark's control plane")
const kube = Kube.fromOptions({kubeconfig})
const rssBefore = process.memoryUsage().rss
const start = performance.now()
const result = await gatherStatus(kube, {probe: false, timeoutMs: 1000})
const ms = performance.now() - start
console.log(JSON.stringify({ms, verdict: result.verdict, grewMiB: (process.resourceUsage().maxRSS * 1024 - rssBefore) / 1048576}))
