import {dirname} from 'node:path'

import {KubeConfig} from '@kubernetes/client-node'

import {escapeControl} from '../echo.js'
import {UsageError} from '../errors.js'
import {fromJsYamlError, parseErrorMessage} from './parse-error.js'
import {readKubeconfigBytes} from './read-file.js'
import {chooseContext, firstDefinitions} from './select.js'
import {refuseAliasBomb} from './yaml-limits.js'

/**
 * One kubeconfig file as @kubernetes/client-node reads it (what loadFromFile does), but read through the
 * bounded reader and failing with one line that quotes nothing of the file.
 */
export function loadClientConfig(path: string): KubeConfig {
  const text = readKubeconfigBytes(path).toString('utf8')
  refuseAliasBomb(path, text)
  const config = new KubeConfig()
  try {
    config.loadFromString(text)
  } catch (error) {
    const yaml = fromJsYamlError(error)
    if (yaml) throw new UsageError(parseErrorMessage(path, yaml))
    // An empty file or a scalar at the top: the library reads fields of undefined.
    if (error instanceof TypeError)
      throw new UsageError(
        `kubeconfig ${escapeControl(path)} is not a kubeconfig: expected a mapping with clusters, contexts and users at the top`,
      )
    // The library's own shape checks ("clusters[0].name is missing") name fields, never values.
    const first = ((error as Error).message ?? String(error)).split('\n')[0]
    throw new UsageError(`kubeconfig ${escapeControl(path)} is not valid: ${first}`)
  }
  // Relative certificate and key paths are relative to the file, as kubectl reads them.
  config.makePathsAbsolute(dirname(path))
  return config
}

/**
 * The client of one context from these files (precedence order), merged with kubectl's rule: the first file
 * to define a name, or a current-context, wins. The context is `wanted`, else the current-context; it and
 * its cluster must exist (chooseContext says which do otherwise).
 */
export function loadContextConfig(files: string[], wanted?: string): KubeConfig {
  const configs = files.map((file) => loadClientConfig(file))
  const choice = chooseContext(
    configs.map((config, i) => ({
      path: files[i] ?? '',
      currentContext: config.currentContext,
      contexts: config.contexts,
      clusters: config.clusters,
    })),
    wanted,
  )
  const merged = new KubeConfig()
  merged.loadFromOptions({
    clusters: firstDefinitions(configs.map((c) => c.clusters)).map((d) => d.item),
    users: firstDefinitions(configs.map((c) => c.users)).map((d) => d.item),
    contexts: firstDefinitions(configs.map((c) => c.contexts)).map((d) => d.item),
    currentContext: choice.contextName,
  })
  return merged
}
