import {
  type ApiConstructor,
  ApiException,
  type ApiType,
  AppsV1Api,
  AuthorizationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  createConfiguration,
  KubeConfig,
  type KubernetesObjectApi,
  RbacAuthorizationV1Api,
  type RequestContext,
  ServerConfiguration,
  setHeaderMiddleware,
} from '@kubernetes/client-node'
import type https from 'node:https'

import {echo, escapeControl} from '../echo.js'
import {KarpError, UnreachableError, UsageError} from '../errors.js'
import {loadContextConfig} from '../kubeconfig/client-config.js'
import {locateKubeconfig} from '../kubeconfig/select.js'
import {KARP_VERSION} from '../version.js'
import {formatSeconds, type GuardOptions, NotKubernetesAnswerError, RequestDeadlineError, requestGuard} from './request-guard.js'
import {KnownKindsObjectApi} from './resources.js'

export interface ClusterOptions {
  kubeconfig?: string
  context?: string
  /** Each request's limit (--request-timeout); 0: none. Default DEFAULT_REQUEST_TIMEOUT_MS. */
  requestTimeoutMs?: number
}

/** Loads the kubeconfig and picks the context, failing with what exists instead of silently defaulting. */
export function loadKubeConfig(options: ClusterOptions): KubeConfig {
  const files = locateKubeconfig(options.kubeconfig)
  const kc = loadContextConfig(files, options.context)
  const cluster = kc.getCurrentCluster()
  if (cluster) checkServerUrl(cluster, files)
  return kc
}

/**
 * The client library refuses plain http unless TLS verification is off, and fails later with an error of its
 * own (exit 1); say up front what is wrong with the cluster's server instead.
 */
function checkServerUrl(cluster: {name: string; server: string; skipTLSVerify: boolean}, files: string[]): void {
  const where = `cluster ${echo(cluster.name)} in ${files.join(', ')}`
  let url: URL
  try {
    url = new URL(cluster.server)
  } catch {
    throw new UsageError(`${where} has server ${echo(cluster.server)}, which is not a URL; expected https://HOST:PORT`)
  }
  if (url.protocol === 'https:' || (url.protocol === 'http:' && cluster.skipTLSVerify)) return
  throw new UsageError(
    `${where} has server ${echo(cluster.server)}: karp talks to the API server over https only; expected https://HOST:PORT`,
    url.protocol === 'http:' ? "point the cluster at the API server's https port" : undefined,
  )
}

type Status = {kind?: string; message?: string; reason?: string; code?: number}

function statusOf(error: ApiException<unknown>): Status {
  const body = error.body
  if (typeof body === 'string') {
    try {
      return JSON.parse(body) as Status
    } catch {
      return {message: body}
    }
  }
  return body ?? {}
}

/** A 404 that a Kubernetes API server sent about an object: a Status, not some other server's page. */
function isNotFound(error: unknown): boolean {
  return error instanceof ApiException && error.code === 404 && statusOf(error).kind === 'Status'
}

type Cause = {code?: string; name?: string; message?: string; reason?: string; cause?: unknown}

function* causes(error: unknown): Generator<Cause> {
  for (let e = error as Cause | undefined, depth = 0; e && typeof e === 'object' && depth < 6; e = e.cause as Cause | undefined, depth++)
    yield e
}

const CONNECT_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'the connection was reset',
  EPIPE: 'the connection was closed',
  EHOSTUNREACH: 'no route to the host',
  ENETUNREACH: 'the network is unreachable',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name could not be resolved now',
  ETIMEDOUT: 'the connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'the connection timed out',
  UND_ERR_HEADERS_TIMEOUT: 'no answer in time',
  UND_ERR_BODY_TIMEOUT: 'the answer stopped half-way',
  UND_ERR_SOCKET: 'the server closed the connection without an answer',
  UND_ERR_CLOSED: 'the connection was closed',
}

type TransportFailure = {stage: 'connect' | 'tls' | 'certificate' | 'http'; words: string}

/** What went wrong on the way to an answer (connection, TLS, HTTP framing); undefined if nothing did. */
function describeTransportFailure(error: unknown): TransportFailure | undefined {
  for (const e of causes(error)) {
    const code = e.code ?? ''
    const detail = escapeControl(e.reason ?? e.message ?? code)
    if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || code === 'ERR_SSL_HTTP_REQUEST') {
      return {stage: 'tls', words: `the server does not speak TLS on this port (plain HTTP?) (${code})`}
    }
    if (/PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|NO_PROTOCOLS_AVAILABLE/.test(code)) {
      return {stage: 'tls', words: `no TLS version in common; karp speaks TLS 1.2 and 1.3 (${code})`}
    }
    if (code.startsWith('ERR_SSL_')) return {stage: 'tls', words: `${detail} (${code})`}
    if (code.startsWith('ERR_TLS') || code.includes('CERT') || code.includes('SIGNATURE'))
      return {stage: 'certificate', words: `${detail} (${code})`}
    if (code.startsWith('HPE_') || e.name === 'HTTPParserError')
      return {stage: 'http', words: `its answer is not HTTP${code ? ` (${code})` : ''}`}
    const words = CONNECT_CODES[code]
    if (words) return {stage: 'connect', words: `${words} (${code})`}
  }
  // undici's fetch rejects with this TypeError for every network failure, whatever the cause.
  if (error instanceof TypeError && error.message === 'fetch failed') {
    const last = [...causes(error)].at(-1)
    return {
      stage: 'connect',
      words: `the request failed${last && last !== error ? `: ${escapeControl(last.message ?? last.code ?? last.name ?? 'no details')}` : ''}`,
    }
  }
  return undefined
}

const ADDRESS_HINT = 'check the server address and port of the kubeconfig context, and that the cluster is up'

/**
 * The one place Kubernetes API failures become messages: the API's own Status message is passed through,
 * with what was being done. No answer in time, an answer that is not Kubernetes', 401/403, a failing
 * server (5xx, 429) and network or TLS failures exit 3; any other refusal is unexpected (exit 1).
 */
export function toKarpError(error: unknown, doing: string, server?: string): Error {
  if (error instanceof KarpError) return error
  const where = escapeControl(server || 'the API server')
  for (const e of causes(error)) {
    if (e instanceof RequestDeadlineError) {
      return new UnreachableError(
        `${doing}: no answer from ${where} within ${formatSeconds(e.ms)}`,
        e.limit === 'request' ? `${ADDRESS_HINT}; a slow server may need a longer --request-timeout` : undefined,
        {cause: error},
      )
    }
    if (e instanceof NotKubernetesAnswerError) {
      return new UnreachableError(`${doing}: ${where} does not answer like a Kubernetes API server: ${e.what}`, ADDRESS_HINT, {
        cause: error,
      })
    }
  }
  if (error instanceof ApiException) {
    const status = statusOf(error)
    const message = escapeControl(status.message ?? error.message)
    if (error.code === 401)
      return new UnreachableError(
        `${doing}: authentication refused by ${where}: ${message}`,
        'check the credentials of the kubeconfig context',
      )
    if (error.code === 403)
      return new UnreachableError(`${doing}: ${message}`, 'ask a cluster admin for these permissions, or use a context that has them')
    if (error.code >= 500 || error.code === 429) {
      return new UnreachableError(
        `${doing}: the API server ${where} failed: ${message} (HTTP ${error.code})`,
        "try again; if it persists, check the API server (kubectl get --raw '/readyz?verbose')",
      )
    }
    return new KarpError(`${doing}: ${message} (HTTP ${error.code})`, 1)
  }
  const failure = describeTransportFailure(error)
  if (failure) {
    const what = {
      connect: `cannot reach the API server ${where}`,
      tls: `the TLS handshake with ${where} failed`,
      certificate: `the certificate of ${where} was refused`,
      http: `${where} does not answer like a Kubernetes API server`,
    }[failure.stage]
    return new UnreachableError(`${doing}: ${what}: ${failure.words}`, ADDRESS_HINT, {cause: error})
  }
  return error instanceof Error ? error : new Error(String(error))
}

/**
 * How long each request may take when the command says nothing: 30 s, the most Kubernetes lets one
 * admission webhook take (its timeoutSeconds is at most 30). A healthy API server answers karp's reads,
 * access reviews and applies in well under a second, so this fires only on a server that will not answer,
 * and keeps a person at a terminal waiting half a minute at most for one step.
 */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000

export interface KubeOptions {
  /** Each request's limit; 0: none. Default DEFAULT_REQUEST_TIMEOUT_MS. */
  requestTimeoutMs?: number
  /** An absolute time (ms since the epoch) every request must also end by: a command's --timeout. */
  deadlineAt?: number
}

type Dispatcher = NonNullable<ReturnType<RequestContext['getDispatcher']>>

/**
 * A KubeConfig whose API clients all carry the request guard (deadline, answer check): those Kube makes
 * and any that other code makes from kube.config.
 */
class GuardedKubeConfig extends KubeConfig {
  constructor(
    from: KubeConfig,
    private readonly guard: GuardOptions,
    /** Connection pools by TLS identity, shared with the Kubes made from this one (until). */
    readonly dispatchers: Map<string, Dispatcher> = new Map(),
  ) {
    super()
    this.loadFromOptions({clusters: from.clusters, users: from.users, contexts: from.contexts, currentContext: from.currentContext})
  }

  /**
   * The library gives every request a connection pool of its own, so each request paid a TCP and TLS
   * handshake; one pool per server and TLS identity lets requests reuse connections (and multiplex over
   * HTTP/2 where the API server offers it, as kubectl does). A new client certificate (an exec plugin's,
   * renewed) gets a new pool.
   */
  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context)
    const fresh = context.getDispatcher()
    if (!fresh) return
    const tls: https.RequestOptions = {}
    await this.applyToHTTPSOptions(tls)
    const cluster = this.getCurrentCluster()
    const key = JSON.stringify([
      cluster?.server,
      cluster?.proxyUrl,
      tls.ca,
      tls.cert,
      tls.key,
      tls.pfx,
      tls.passphrase,
      tls.servername,
      tls.rejectUnauthorized,
    ])
    const shared = this.dispatchers.get(key)
    if (shared) context.setDispatcher(shared)
    else this.dispatchers.set(key, fresh)
  }

  override makeApiClient<T extends ApiType>(apiClientType: ApiConstructor<T>): T {
    const cluster = this.getCurrentCluster()
    if (!cluster) throw new Error('No active cluster!')
    return new apiClientType(
      createConfiguration({
        baseServer: new ServerConfiguration(cluster.server, {}),
        authMethods: {default: this},
        middleware: [setHeaderMiddleware('User-Agent', `karp/${KARP_VERSION}`)],
        promiseMiddleware: [requestGuard(this.guard)],
      }),
    )
  }
}

/** One owner of the Kubernetes clients for one kubeconfig context. */
export class Kube {
  readonly config: KubeConfig
  readonly core: CoreV1Api
  readonly apps: AppsV1Api
  readonly coordination: CoordinationV1Api
  readonly rbac: RbacAuthorizationV1Api
  readonly authz: AuthorizationV1Api
  readonly objects: KubernetesObjectApi
  readonly server: string
  readonly contextName: string
  /** Each request's limit; 0: none. */
  readonly requestTimeoutMs: number

  constructor(config: KubeConfig, options: KubeOptions = {}) {
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
    this.config = new GuardedKubeConfig(
      config,
      {requestTimeoutMs: this.requestTimeoutMs, deadlineAt: options.deadlineAt},
      config instanceof GuardedKubeConfig ? config.dispatchers : undefined,
    )
    this.core = this.config.makeApiClient(CoreV1Api)
    this.apps = this.config.makeApiClient(AppsV1Api)
    this.coordination = this.config.makeApiClient(CoordinationV1Api)
    this.rbac = this.config.makeApiClient(RbacAuthorizationV1Api)
    this.authz = this.config.makeApiClient(AuthorizationV1Api)
    this.objects = KnownKindsObjectApi.forConfig(this.config)
    this.server = this.config.getCurrentCluster()?.server ?? ''
    this.contextName = this.config.getCurrentContext()
  }

  static fromOptions(options: ClusterOptions): Kube {
    return new Kube(loadKubeConfig(options), {requestTimeoutMs: options.requestTimeoutMs})
  }

  /** The same credentials and CA against another address of the same API server (e.g. a node's own). */
  withServer(server: string): Kube {
    const current = this.config.getCurrentCluster()
    const config = new KubeConfig()
    config.loadFromOptions({
      clusters: this.config.clusters.map((c) => (c.name === current?.name ? {...c, server} : c)),
      users: this.config.users,
      contexts: this.config.contexts,
      currentContext: this.config.currentContext,
    })
    return new Kube(config, {requestTimeoutMs: this.requestTimeoutMs})
  }

  /** The same clients, whose every request must also end by deadlineAt (ms since the epoch). */
  until(deadlineAt: number): Kube {
    return new Kube(this.config, {requestTimeoutMs: this.requestTimeoutMs, deadlineAt})
  }

  /** Runs one API call, turning its failure into a message that says what was being done. */
  async call<T>(doing: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (error) {
      throw toKarpError(error, doing, this.server)
    }
  }

  /** Like call, but the API server saying the object does not exist (a 404 Status) is an answer: null. */
  async nullIfNotFound<T>(doing: string, fn: () => Promise<T>): Promise<T | null> {
    try {
      return await fn()
    } catch (error) {
      if (isNotFound(error)) return null
      throw toKarpError(error, doing, this.server)
    }
  }
}
