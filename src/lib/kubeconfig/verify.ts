import {request, type RequestOptions} from 'node:https'

import type {KubeConfig} from '@kubernetes/client-node'

export type ApiAnswer = {ok: true; gitVersion: string} | {ok: false; message: string}

/**
 * Asks the API server for /version through the context's cluster URL with the context's credentials (client
 * certificate, token, exec plugin: whatever @kubernetes/client-node applies), verifying TLS as kubectl does.
 * Bounded by timeoutMs so an address nobody holds cannot hang the command.
 */
export async function apiAnswers(kc: KubeConfig, timeoutMs: number): Promise<ApiAnswer> {
  const server = kc.getCurrentCluster()?.server ?? ''
  const options: RequestOptions = {}
  try {
    await kc.applyToHTTPSOptions(options)
  } catch (error) {
    return {ok: false, message: `cannot apply the credentials of the context: ${(error as Error).message}`}
  }
  const url = new URL('version', server.endsWith('/') ? server : `${server}/`)
  return new Promise((resolve) => {
    const req = request(
      url,
      {...options, method: 'GET', timeout: timeoutMs, headers: {...options.headers, Accept: 'application/json'}},
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('error', (error) => resolve({ok: false, message: error.message}))
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8')
          if (res.statusCode !== 200) {
            let message = body.slice(0, 200)
            try {
              message = (JSON.parse(body) as {message?: string}).message ?? message
            } catch {
              // not a Status: show the start of the body
            }
            resolve({ok: false, message: `GET ${url.href} answered HTTP ${res.statusCode}: ${message}`})
            return
          }
          try {
            const version = JSON.parse(body) as {gitVersion?: unknown}
            if (typeof version.gitVersion === 'string') resolve({ok: true, gitVersion: version.gitVersion})
            else resolve({ok: false, message: `GET ${url.href} answered, but not like a Kubernetes API server (no gitVersion)`})
          } catch {
            resolve({ok: false, message: `GET ${url.href} answered, but not with JSON`})
          }
        })
      },
    )
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), {code: 'ETIMEDOUT'})))
    req.on('error', (error: NodeJS.ErrnoException) =>
      resolve({ok: false, message: `GET ${url.href}: ${error.code ? `${error.code}: ` : ''}${error.message}`}),
    )
    req.end()
  })
}
