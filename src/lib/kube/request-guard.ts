import {type Middleware, type RequestContext, ResponseContext, SelfDecodingBody} from '@kubernetes/client-node'

import {echo} from '../echo.js'

/**
 * Two guards on every Kubernetes API request, installed as the client library's middleware (its supported
 * hook between building a request and decoding its answer):
 *  - a deadline: an AbortSignal on the request, which undici's fetch honours while connecting, waiting for
 *    headers and reading the body, so a server that completes TLS and never answers cannot hang karp;
 *  - an answer check: the body is read here (bounded) and must be what a Kubernetes API server sends, a JSON
 *    object with a kind (a Status for errors), before the generated client decodes it into typed objects.
 */

/** The request's deadline passed; `limit` says whether its own (--request-timeout) or the command's. */
export class RequestDeadlineError extends Error {
  constructor(
    readonly ms: number,
    readonly limit: 'request' | 'command',
  ) {
    super(`no answer within ${formatSeconds(ms)}`)
    this.name = 'RequestDeadlineError'
  }
}

/** The server answered, but not as a Kubernetes API server does. */
export class NotKubernetesAnswerError extends Error {
  constructor(readonly what: string) {
    super(what)
    this.name = 'NotKubernetesAnswerError'
  }
}

/** The command's own deadline (Kube.until) cut this request short: its --timeout, not the server, is to blame. */
export function cutByCommandDeadline(error: unknown): boolean {
  for (
    let e = error as {cause?: unknown} | undefined, depth = 0;
    e && typeof e === 'object' && depth < 6;
    e = e.cause as typeof e, depth++
  ) {
    if (e instanceof RequestDeadlineError) return e.limit === 'command'
  }
  return false
}

export const formatSeconds = (ms: number) => `${Number((ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1))} s`

/** The most karp reads of one answer; a list of thousands of nodes is tens of MiB. */
export const MAX_ANSWER_BYTES = 256 * 1024 * 1024

export interface GuardOptions {
  /** Each request's own limit; 0: none (kubectl's --request-timeout=0). */
  requestTimeoutMs: number
  /** An absolute time (ms since the epoch) every request must also end by: a command's --timeout. */
  deadlineAt?: number
}

function deadlineSignal(options: GuardOptions): AbortSignal | undefined {
  const left = options.deadlineAt === undefined ? Infinity : Math.max(0, options.deadlineAt - Date.now())
  const own = options.requestTimeoutMs > 0 ? options.requestTimeoutMs : Infinity
  if (left === Infinity && own === Infinity) return undefined
  const controller = new AbortController()
  const reason = own <= left ? new RequestDeadlineError(own, 'request') : new RequestDeadlineError(left, 'command')
  // Unref'd: a request that finished early leaves a timer that must not keep the process alive.
  setTimeout(() => controller.abort(reason), Math.min(own, left)).unref()
  return controller.signal
}

async function readBounded(stream: ReadableStream<Uint8Array> | null): Promise<Buffer> {
  if (!stream) return Buffer.alloc(0)
  const chunks: Uint8Array[] = []
  let total = 0
  for await (const chunk of stream) {
    total += chunk.byteLength
    if (total > MAX_ANSWER_BYTES) {
      throw new NotKubernetesAnswerError(`an answer of more than ${MAX_ANSWER_BYTES / 1024 / 1024} MiB`)
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

const mediaTypeOf = (contentType: string | undefined) => (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? ''

/**
 * Why this answer is not one a Kubernetes API server gives to a JSON request, or undefined when it is.
 * The sentence names the status, the media type and the start of the body, escaped and capped.
 */
export function describeNonKubernetesAnswer(status: number, contentType: string | undefined, body: string): string | undefined {
  const mediaType = mediaTypeOf(contentType)
  const excerpt = body.trim() === '' ? 'an empty body' : `a body starting ${echo(body.trim(), 40)}`
  const answer = `HTTP ${status}`
  if (mediaType !== 'application/json' && !mediaType.endsWith('+json')) {
    return `${answer} with ${mediaType ? `content type ${echo(mediaType, 40)}` : 'no content type'} and ${excerpt}, not JSON`
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch {
    return `${answer} with ${excerpt}, which is not valid JSON`
  }
  const object =
    typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as {kind?: unknown; items?: unknown}) : undefined
  if (!object || typeof object.kind !== 'string') return `${answer} with JSON that is no Kubernetes object (it has no kind): ${excerpt}`
  const success = status >= 200 && status < 300
  if (!success && object.kind !== 'Status') return `${answer} with a ${echo(object.kind, 40)} where an error Status belongs`
  // Every list of objects (PodList, NodeList...) has items; discovery's APIResourceList and APIGroupList do not.
  const objectList = object.kind.endsWith('List') && !/^API(Resource|Group)List$/.test(object.kind)
  if (success && objectList && !Array.isArray(object.items)) return `${answer} with a ${echo(object.kind, 40)} without items`
  return undefined
}

/** The middleware, for createConfiguration's promiseMiddleware. */
export function requestGuard(options: GuardOptions): Middleware {
  return {
    pre: (request: RequestContext) => {
      const deadline = deadlineSignal(options)
      if (deadline) {
        const given = request.getSignal()
        request.setSignal(given ? AbortSignal.any([given, deadline]) : deadline)
      }
      return Promise.resolve(request)
    },
    post: async (response: ResponseContext) => {
      const bytes = await readBounded(response.body.stream())
      const problem = describeNonKubernetesAnswer(response.httpStatusCode, response.headers['content-type'], bytes.toString('utf8'))
      if (problem) throw new NotKubernetesAnswerError(problem)
      return new ResponseContext(response.httpStatusCode, response.headers, new SelfDecodingBody(Promise.resolve(bytes)))
    },
  }
}
