import {isIP} from 'node:net'

import {UsageError} from '../errors.js'

export interface ServerAddress {
  /** Host without brackets: a name, an IPv4 or an IPv6 address. */
  host: string
  port: number
}

/**
 * The host and port a kubeconfig server URL points at, as client-go reads it: https unless told otherwise,
 * port 443 (http: 80) when none is written. A URL with a path goes through a proxy (Rancher's
 * /k8s/clusters/..., a gateway): the VIP serves the API server itself, so such a server is refused.
 */
export function parseServer(server: string, where: string): ServerAddress {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(server) ? server : `https://${server}`
  let url: URL
  try {
    url = new URL(withScheme)
  } catch {
    throw new UsageError(`${where} has server ${JSON.stringify(server)}, which is not a URL such as https://10.0.0.11:6443`)
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new UsageError(`${where} has server ${JSON.stringify(server)}: expected an https:// URL`)
  }
  if (url.pathname !== '/' && url.pathname !== '') {
    throw new UsageError(
      `${where} has server ${JSON.stringify(server)} with path ${url.pathname}: it reaches the API server through a proxy, which the VIP does not replace`,
      'pass --context for a context that talks to the API server directly, or edit this one by hand',
    )
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1')
  const port = url.port === '' ? (url.protocol === 'http:' ? 80 : 443) : Number(url.port)
  return {host, port}
}

/** The server URL for the VIP: always https, always with the port written out. */
export function vipServer(vip: string, port: number): string {
  return isIP(vip) === 6 ? `https://[${vip}]:${port}` : `https://${vip}:${port}`
}

/** Whether a server URL already points at host:port over https (so there is nothing to do). */
export function pointsAt(server: string, address: ServerAddress): boolean {
  try {
    const parsed = parseServer(server, 'server')
    return !/^http:\/\//i.test(server) && parsed.host.toLowerCase() === address.host.toLowerCase() && parsed.port === address.port
  } catch {
    return false
  }
}
