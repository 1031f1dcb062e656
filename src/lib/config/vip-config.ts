import {randomBytes} from 'node:crypto'

import {FlagChecks} from './flag-checks.js'
import {AGENT_IMAGE} from './agent-image.js'
import {DEFAULT_API_PORT} from '../constants.js'
import {
  checkAdvbase,
  checkDnsLabel,
  checkImage,
  checkInterface,
  checkNodeSelector,
  checkPassword,
  checkPort,
  checkVhid,
  checkVip,
  MAX_PASSWORD_BYTES,
  type NodeSelector,
} from './validate.js'

export type {NodeSelector} from './validate.js'

/** Everything that decides what karp puts into a cluster, validated. */
export interface VipConfig {
  name: string
  namespace: string
  vip: string
  vhid: number
  password: string
  advbase: number
  preempt: boolean
  healthCheck: boolean
  apiPort: number
  /** Unset: the agent finds the interface with `ip route get VIP` on each node. */
  interface?: string
  /** Unset: control-plane nodes (any of the role labels distributions use). */
  nodeSelector?: NodeSelector
  image: string
}

export {AGENT_IMAGE}

export const DEFAULTS = {
  name: 'karp',
  namespace: 'karp-system',
  vhid: 10,
  advbase: 1,
  preempt: false,
  healthCheck: true,
  image: AGENT_IMAGE,
} as const

/** Raw flag text as typed; undefined where the user gave nothing. */
export interface VipConfigInput {
  name?: string
  namespace?: string
  vip?: string
  vhid?: string
  password?: string
  advbase?: string
  preempt?: boolean
  healthCheck?: boolean
  apiPort?: string
  interface?: string
  nodeSelector?: string
  image?: string
}

/** Everything but the two values that may be decided later: the VIP (prompted) and the password (reused). */
export type VipSettings = Omit<VipConfig, 'vip' | 'password'>

export interface ValidatedInput {
  settings: VipSettings
  vip?: string
  password?: string
}

/** Validates every given field at once and reports every problem together. */
export function validateVipInput(input: VipConfigInput): ValidatedInput {
  const checks = new FlagChecks()
  const vip = checks.optional(input.vip, checkVip)
  const password = checks.optional(input.password, checkPassword)
  const settings: VipSettings = {
    name: checks.optional(input.name, (v) => checkDnsLabel('name', v)) ?? DEFAULTS.name,
    namespace: checks.optional(input.namespace, (v) => checkDnsLabel('namespace', v)) ?? DEFAULTS.namespace,
    vhid: checks.optional(input.vhid, checkVhid) ?? DEFAULTS.vhid,
    advbase: checks.optional(input.advbase, checkAdvbase) ?? DEFAULTS.advbase,
    preempt: input.preempt ?? DEFAULTS.preempt,
    healthCheck: input.healthCheck ?? DEFAULTS.healthCheck,
    apiPort: checks.optional(input.apiPort, (v) => checkPort(v, 'api-port')) ?? DEFAULT_API_PORT,
    interface: checks.optional(input.interface, checkInterface),
    nodeSelector: checks.optional(input.nodeSelector, checkNodeSelector),
    image: checks.optional(input.image, checkImage) ?? DEFAULTS.image,
  }
  checks.done()
  return {settings, ...(vip === undefined ? {} : {vip}), ...(password === undefined ? {} : {password})}
}

/** A random CARP password of the most bytes ucarp accepts, from a URL-safe alphabet. */
export function generatePassword(): string {
  return randomBytes(MAX_PASSWORD_BYTES).toString('base64url').slice(0, MAX_PASSWORD_BYTES)
}
