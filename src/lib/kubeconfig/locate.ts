import {existsSync} from 'node:fs'
import {homedir} from 'node:os'
import {delimiter, join} from 'node:path'

export interface KubeconfigSource {
  /** Files in kubectl's precedence order: for each name, the first file that defines it wins. */
  files: string[]
  /** Where the list came from, for messages. */
  origin: '--kubeconfig' | 'KUBECONFIG' | 'default'
}

/**
 * Finds the kubeconfig files the way kubectl does: the --kubeconfig flag alone; else every existing file
 * in $KUBECONFIG; else ~/.kube/config. An empty list means there is nothing to load.
 */
export function locateKubeconfig(flag?: string, env: NodeJS.ProcessEnv = process.env): KubeconfigSource {
  if (flag) return {files: [flag], origin: '--kubeconfig'}
  if (env.KUBECONFIG) {
    const files = [...new Set(env.KUBECONFIG.split(delimiter).filter((f) => f.length > 0))]
    // kubectl skips KUBECONFIG entries that do not exist.
    return {files: files.filter((f) => existsSync(f)), origin: 'KUBECONFIG'}
  }
  const file = join(env.HOME || homedir(), '.kube', 'config')
  return {files: existsSync(file) ? [file] : [], origin: 'default'}
}
