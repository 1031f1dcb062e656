import {
  ApiException,
  AppsV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  RbacAuthorizationV1Api,
} from '@kubernetes/client-node'

import {KarpError, UnreachableError, UsageError} from '../errors.js'
import {loadClientConfig} from '../kubeconfig/client-config.js'
import {locateKubeconfig} from '../kubeconfig/locate.js'

export interface ClusterOptions {
  kubeconfig?: string
  context?: string
}

/** Merges kubeconfig files with kubectl's rule: the first file to define a name, or a current-context, wins. */
export function loadMerged(files: string[]): KubeConfig {
  const merged = {clusters: [] as KubeConfig['clusters'], users: [] as KubeConfig['users'], contexts: [] as KubeConfig['contexts'], currentContext: ''}
  for (const file of files) {
    // Bounded and type-checked; a parse error quotes nothing of the file (it holds credentials).
    const one = loadClientConfig(file)
    const addNew = <T extends {name: string}>(into: T[], from: T[]) => {
      for (const item of from) if (!into.some((i) => i.name === item.name)) into.push(item)
    }
    addNew(merged.clusters, one.clusters)
    addNew(merged.users, one.users)
    addNew(merged.contexts, one.contexts)
    merged.currentContext ||= one.currentContext
  }
  const kc = new KubeConfig()
  kc.loadFromOptions(merged)
  return kc
}

/** Loads the kubeconfig and picks the context, failing with what exists instead of silently defaulting. */
export function loadKubeConfig(options: ClusterOptions): KubeConfig {
  const source = locateKubeconfig(options.kubeconfig)
  if (source.files.length === 0) {
    throw new UsageError(
      source.origin === 'KUBECONFIG'
        ? `none of the files in KUBECONFIG exists (${process.env.KUBECONFIG})`
        : 'no kubeconfig found at ~/.kube/config',
      'pass --kubeconfig PATH or set KUBECONFIG',
    )
  }
  const kc = loadMerged(source.files)
  const names = kc.contexts.map((c) => c.name)
  const wanted = options.context ?? kc.currentContext
  if (!wanted) {
    throw new UsageError(`kubeconfig ${source.files.join(', ')} has no current context`, `pass --context, one of: ${names.join(', ') || '(none defined)'}`)
  }
  const context = kc.getContextObject(wanted)
  if (!context) {
    const flag = options.context ? '--context' : 'current-context'
    throw new UsageError(`invalid ${flag} ${JSON.stringify(wanted)}: no such context in ${source.files.join(', ')}; contexts: ${names.join(', ') || '(none defined)'}`)
  }
  kc.setCurrentContext(wanted)
  if (!kc.getCluster(context.cluster)) {
    throw new UsageError(`context ${JSON.stringify(wanted)} names cluster ${JSON.stringify(context.cluster)}, which the kubeconfig does not define`)
  }
  return kc
}

type Status = {message?: string; reason?: string; code?: number}

function statusOf(error: ApiException<unknown>): Status {
  const body = error.body
  if (typeof body === 'string') {
    try {
      return JSON.parse(body) as Status
    } catch {
      return {message: body}
    }
  }
  return (body ?? {}) as Status
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET'])

function networkCause(error: unknown): string | undefined {
  for (let e = error as {code?: string; message?: string; cause?: unknown} | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e.code && (NETWORK_CODES.has(e.code) || e.code.startsWith('ERR_TLS') || e.code.includes('CERT'))) return `${e.code}${e.message ? ` (${e.message})` : ''}`
  }
  return undefined
}

/**
 * The one place Kubernetes API failures become messages: the API's own Status message is passed through,
 * with what was being done. 401/403 and network failures exit 3; the rest are unexpected (exit 1).
 */
export function toKarpError(error: unknown, doing: string, server?: string): Error {
  if (error instanceof KarpError) return error
  if (error instanceof ApiException) {
    const status = statusOf(error)
    const message = status.message ?? error.message
    if (error.code === 401) return new UnreachableError(`${doing}: authentication refused by ${server ?? 'the API server'}: ${message}`, 'check the credentials of the kubeconfig context')
    if (error.code === 403) return new UnreachableError(`${doing}: ${message}`, 'ask a cluster admin for these permissions, or use a context that has them')
    return new KarpError(`${doing}: ${message} (HTTP ${error.code})`, 1)
  }
  const cause = networkCause(error)
  if (cause) return new UnreachableError(`${doing}: cannot reach the API server ${server ?? ''}: ${cause}`.replace('  ', ' '), 'check the kubeconfig server address and that the cluster is up')
  return error instanceof Error ? error : new Error(String(error))
}

/** One owner of the Kubernetes clients for one kubeconfig context. */
export class Kube {
  readonly core: CoreV1Api
  readonly apps: AppsV1Api
  readonly rbac: RbacAuthorizationV1Api
  readonly authz: AuthorizationV1Api
  readonly objects: KubernetesObjectApi
  readonly server: string
  readonly contextName: string

  constructor(readonly config: KubeConfig) {
    this.core = config.makeApiClient(CoreV1Api)
    this.apps = config.makeApiClient(AppsV1Api)
    this.rbac = config.makeApiClient(RbacAuthorizationV1Api)
    this.authz = config.makeApiClient(AuthorizationV1Api)
    this.objects = KubernetesObjectApi.makeApiClient(config)
    this.server = config.getCurrentCluster()?.server ?? ''
    this.contextName = config.getCurrentContext()
  }

  static fromOptions(options: ClusterOptions): Kube {
    return new Kube(loadKubeConfig(options))
  }

  /** Runs one API call, turning its failure into a message that says what was being done. */
  async call<T>(doing: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (error) {
      throw toKarpError(error, doing, this.server)
    }
  }

  /** Like call, but a 404 is an answer: null. */
  async nullIfNotFound<T>(doing: string, fn: () => Promise<T>): Promise<T | null> {
    try {
      return await fn()
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return null
      throw toKarpError(error, doing, this.server)
    }
  }
}
