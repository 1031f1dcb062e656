import {readFileSync} from 'node:fs'

import type {KubeConfig} from '@kubernetes/client-node'

import {echo, escapeControl} from '../echo.js'
import {UsageError} from '../errors.js'
import {pemCertificates} from './parse.js'

/** The CA certificate(s) a served chain is verified against, and where they came from. */
export interface CaCertificate {
  source: 'kubeconfig' | 'file' | 'none'
  /** For people: which file or kubeconfig cluster, or why there is none. */
  description: string
  pem?: string
}

function holdsCertificates(pem: string): string | undefined {
  try {
    return pemCertificates(pem).length > 0 ? undefined : 'no PEM certificate in it'
  } catch (error) {
    return (error as Error).message
  }
}

function readPem(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (error) {
    throw new Error((error as NodeJS.ErrnoException).code ?? (error as Error).message, {cause: error})
  }
}

/** A CA bundle given on the command line; any problem is the user's, named with the flag. */
export function caFromFile(path: string, flag = 'ca-file'): CaCertificate {
  let pem: string
  try {
    pem = readPem(path)
  } catch (error) {
    throw new UsageError(
      `invalid --${flag} ${echo(path)}: cannot read it (${(error as NodeJS.ErrnoException).code ?? escapeControl((error as Error).message)})`,
    )
  }
  const problem = holdsCertificates(pem)
  if (problem) throw new UsageError(`invalid --${flag} ${echo(path)}: ${problem}; expected PEM CA certificates`)
  return {source: 'file', description: path, pem}
}

/**
 * The CA of the kubeconfig's current cluster (certificate-authority-data, else the certificate-authority
 * file): what kubectl will verify the API server against once the kubeconfig points at the VIP.
 */
export function caFromKubeConfig(kc: KubeConfig): CaCertificate {
  const cluster = kc.getCurrentCluster()
  const name = JSON.stringify(cluster?.name ?? '')
  if (cluster?.caData) {
    const pem = Buffer.from(cluster.caData, 'base64').toString('utf8')
    const problem = holdsCertificates(pem)
    if (problem) throw new UsageError(`certificate-authority-data of kubeconfig cluster ${name} is not valid: ${problem}`)
    return {source: 'kubeconfig', description: `certificate-authority-data of kubeconfig cluster ${name}`, pem}
  }
  if (cluster?.caFile) {
    let pem: string
    try {
      pem = readPem(cluster.caFile)
    } catch (error) {
      throw new UsageError(`cannot read certificate-authority ${cluster.caFile} of kubeconfig cluster ${name}: ${(error as Error).message}`)
    }
    const problem = holdsCertificates(pem)
    if (problem) throw new UsageError(`certificate-authority ${cluster.caFile} of kubeconfig cluster ${name} is not valid: ${problem}`)
    return {source: 'kubeconfig', description: `certificate-authority ${cluster.caFile} of kubeconfig cluster ${name}`, pem}
  }
  const insecure = cluster?.skipTLSVerify ? ' (it sets insecure-skip-tls-verify)' : ''
  return {source: 'none', description: `kubeconfig cluster ${name} names no certificate-authority${insecure}`}
}
