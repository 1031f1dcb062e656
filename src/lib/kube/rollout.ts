import type {V1DaemonSet} from '@kubernetes/client-node'

import {INSTANCE_LABEL} from '../constants.js'
import {CheckFailedError, UnreachableError} from '../errors.js'
import {type Kube, toKarpError} from './client.js'
import {cutByCommandDeadline} from './request-guard.js'

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
 * Every read also ends by the deadline, so a server that stops answering cannot stretch the wait past
 * timeoutMs. expectAgents: nodes preflight saw selected; a controller that has not caught up with them
 * yet reports zero desired, which must not pass for a finished rollout.
 */
export async function waitForRollout(
  kube: Kube,
  target: {namespace: string; name: string},
  timeoutMs: number,
  onProgress: (status: RolloutStatus) => void,
  expectAgents = 0,
): Promise<RolloutStatus> {
  const deadline = Date.now() + timeoutMs
  const bounded = kube.until(deadline)
  const doing = `reading DaemonSet ${target.namespace}/${target.name}`
  const notRolledOut = (status: RolloutStatus | undefined, unanswered: boolean) =>
    new CheckFailedError(
      `DaemonSet ${target.namespace}/${target.name} not rolled out after ${Math.round(timeoutMs / 1000)} s: ` +
        (status ? `${status.available}/${status.desired} available, ${status.updated} updated` : 'its status was never read') +
        (unanswered ? `; the API server did not answer the last read before the --timeout` : ''),
      `see: kubectl -n ${target.namespace} describe daemonset ${target.name}; kubectl -n ${target.namespace} get pods -l ${INSTANCE_LABEL}=${target.name}`,
    )
  // A request can hang on a connection the VIP's move left without an answer; its deadline timer is
  // unref'd, so without this handle the process could run out of work and exit mid-wait (code 13).
  const keepAlive = setInterval(() => {}, 1000)
  try {
    return await pollRollout()
  } finally {
    clearInterval(keepAlive)
  }

  async function pollRollout(): Promise<RolloutStatus> {
    let last: RolloutStatus | undefined
    for (;;) {
      let ds: V1DaemonSet
      try {
        ds = await bounded.apps.readNamespacedDaemonSet(target)
      } catch (error) {
        if (cutByCommandDeadline(error)) throw notRolledOut(last, true)
        const failure = toKarpError(error, doing, kube.server)
        // Through the VIP, a read can meet the moment the rollout moves the VIP to another node: once the
        // DaemonSet was read, a server that does not answer is asked again until the --timeout.
        if (!(failure instanceof UnreachableError) || last === undefined) throw failure
        if (Date.now() + 1000 >= deadline) throw notRolledOut(last, true)
        await sleep(1000)
        continue
      }
      const status = rolloutStatus(ds)
      last = status
      onProgress(status)
      if (status.done && (status.desired > 0 || expectAgents === 0)) return status
      const left = deadline - Date.now()
      if (left <= 0) throw notRolledOut(status, false)
      await sleep(Math.min(1000, left))
      if (Date.now() >= deadline) throw notRolledOut(status, false)
    }
  }
}
