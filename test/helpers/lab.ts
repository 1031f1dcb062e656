// Suites that need real nodes (kubelets running the agent image) start a lab of their own (lab/cluster.ts)
// and reach it only from its client namespace, as a user on the lab's network would: these run the CLI and
// kubectl there.
import assert from 'node:assert/strict'
import {it} from 'node:test'

import {type Cluster} from '../../lab/cluster.js'
import {karp, karpOnTerminal, type KarpOptions, type KarpRun} from './karp.js'
import {DEFAULT_API_PORT} from '../../src/lib/constants.js'

/** The CLI in the lab's client namespace, with the client's kubeconfig and home (KarpOptions.env adds to them). */
export function labKarp(cluster: Cluster, args: string[], options: Omit<KarpOptions, 'netns'> = {}): Promise<KarpRun> {
  return karp(args, {...options, netns: cluster.clientNs, env: {...cluster.clientEnv(), ...options.env}})
}

/** karpOnTerminal in the lab's client namespace. */
export function labKarpOnTerminal(cluster: Cluster, args: string[], answers: Array<[RegExp, string]>, timeoutMs = 120_000) {
  return karpOnTerminal(args, answers, timeoutMs, {netns: cluster.clientNs, env: cluster.clientEnv()})
}

/** kubectl ... -o json in the client namespace, parsed; throws with kubectl's message when it fails. */
/** kubectl in the client namespace, which must succeed: the assertion names the command and its stderr. */
export async function labKubectl(cluster: Cluster, args: string[]): Promise<void> {
  const run = await cluster.kubectl(args)
  assert.equal(run.exitCode, 0, `kubectl ${args.join(' ')}: ${run.stderr}`)
}

export async function kubectlJson<T = unknown>(cluster: Cluster, args: string[]): Promise<T> {
  const run = await cluster.kubectl([...args, '-o', 'json'])
  if (run.exitCode !== 0) throw new Error(`kubectl ${args.join(' ')}: ${run.stderr.trim()}`)
  return JSON.parse(run.stdout) as T
}

/** Whether kubectl get finds the object (false on NotFound; throws on any other failure). */
export async function labObjectExists(cluster: Cluster, args: string[]): Promise<boolean> {
  const run = await cluster.kubectl(['get', ...args, '-o', 'name'])
  if (run.exitCode === 0) return true
  if (/NotFound|not found/.test(run.stderr)) return false
  throw new Error(`kubectl get ${args.join(' ')}: ${run.stderr.trim()}`)
}

/** A kubeconfig (server: node1's API server) for `user` in `groups`, which RBAC grants nothing unless bound. */
export function labUserKubeconfig(cluster: Cluster, user: string, groups: string[] = []): string {
  const first = cluster.nodes[0]
  if (!first) throw new Error('the lab has no control-plane node')
  return cluster.controlPlane.clientKubeconfig(user, groups, `https://${first.host.ip}:${DEFAULT_API_PORT}`)
}

/**
 * The steps of a lab scenario (`it`s that each build on the one before): after a failure the rest are
 * skipped, since they would only fail for the same reason, and what the pods printed during the failed
 * step is logged (it explains a failed holder assertion; the old pods of a roll-out are gone by then).
 */
export function labSteps(cluster: () => Cluster, log: (line: string) => void): (name: string, fn: () => Promise<void>) => void {
  let failedStep: string | undefined
  return (name, fn) => {
    it(name, async (t) => {
      if (failedStep) return t.skip(`step "${failedStep}" failed`)
      const began = Date.now()
      try {
        await fn()
      } catch (err) {
        failedStep = name
        log(`what the pods printed during the failed step:\n${cluster().podLogsSince(began)}`)
        throw err
      }
    })
  }
}
