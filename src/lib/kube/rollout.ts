import type {V1DaemonSet} from '@kubernetes/client-node'

import {CheckFailedError} from '../errors.js'
import type {Kube} from './client.js'

export interface RolloutStatus {
  desired: number
  updated: number
  ready: number
  available: number
  done: boolean
}

export function rolloutStatus(ds: V1DaemonSet): RolloutStatus {
  const s = ds.status
  const desired = s?.desiredNumberScheduled ?? 0
  const updated = s?.updatedNumberScheduled ?? 0
  const ready = s?.numberReady ?? 0
  const available = s?.numberAvailable ?? 0
  // The controller must have seen the latest spec before its counts mean anything (as kubectl rollout status).
  const observed = (s?.observedGeneration ?? 0) >= (ds.metadata?.generation ?? 1)
  return {desired, updated, ready, available, done: observed && updated === desired && available === desired}
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Polls the DaemonSet until every selected node runs an updated, available agent, or the time runs out.
 * expectAgents: nodes preflight saw selected; a controller that has not caught up with them yet reports
 * zero desired, which must not pass for a finished rollout.
 */
export async function waitForRollout(
  kube: Kube,
  target: {namespace: string; name: string},
  timeoutMs: number,
  onProgress: (status: RolloutStatus) => void,
  expectAgents = 0,
): Promise<RolloutStatus> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ds = await kube.call(`reading DaemonSet ${target.namespace}/${target.name}`, () => kube.apps.readNamespacedDaemonSet(target))
    const status = rolloutStatus(ds)
    onProgress(status)
    if (status.done && (status.desired > 0 || expectAgents === 0)) return status
    if (Date.now() >= deadline) {
      throw new CheckFailedError(
        `DaemonSet ${target.namespace}/${target.name} not rolled out after ${Math.round(timeoutMs / 1000)} s: ${status.available}/${status.desired} available, ${status.updated} updated`,
        `see: kubectl -n ${target.namespace} describe daemonset ${target.name}; kubectl -n ${target.namespace} get pods -l app.kubernetes.io/instance=${target.name}`,
      )
    }
    await sleep(1000)
  }
}
