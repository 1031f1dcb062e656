// The host side of a pod's volumes, laid out as the kubelet lays them out (pod-to-cri.ts plans them): secret
// and projected service-account volumes on a tmpfs of their own, written the way the kubelet's atomic writer
// does (the files live in a timestamped directory, `..data` points at it, each name is a symlink through
// `..data`), a Memory emptyDir as a tmpfs of its size limit, and the plain files the kubelet mounts.
// Everything is mounted under the pod's directory; unmountUnder() (containerd.ts) takes it down again.
import {copyFileSync, mkdirSync, symlinkSync, writeFileSync, chmodSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {execa} from 'execa'
import type {VolumePlan} from './pod-to-cri.js'

export interface VolumeSources {
  /** Secret name -> key -> value. */
  secrets: Record<string, Record<string, Buffer>>
  /** What the kubelet projects into the service-account volume. */
  serviceAccount: {token: string; caCrt: string}
}

async function mountTmpfs(dir: string, options: string[]): Promise<void> {
  mkdirSync(dir, {recursive: true})
  await execa('mount', ['-t', 'tmpfs', '-o', ['nosuid', 'nodev', ...options].join(','), 'tmpfs', dir])
}

/** The kubelet's atomic writer: new content appears all at once, through the `..data` symlink. */
function writeAtomically(dir: string, files: Array<{path: string; data: Buffer | string; mode: number}>): void {
  const generation = `..${new Date().toISOString().replace(/[-:T]/g, '_').replace('Z', '')}`
  mkdirSync(join(dir, generation), {mode: 0o755})
  for (const file of files) {
    const target = join(dir, generation, file.path)
    mkdirSync(dirname(target), {recursive: true})
    writeFileSync(target, file.data)
    chmodSync(target, file.mode)
  }
  symlinkSync(generation, join(dir, '..data'))
  for (const top of new Set(files.map((f) => f.path.split('/')[0] as string))) symlinkSync(join('..data', top), join(dir, top))
}

export async function prepareVolumes(plans: VolumePlan[], sources: VolumeSources): Promise<void> {
  for (const plan of plans) {
    switch (plan.kind) {
      case 'secret': {
        const secret = sources.secrets[plan.secretName]
        if (!secret) throw new Error(`volume ${plan.name}: no data for secret ${plan.secretName}`)
        await mountTmpfs(plan.hostPath, [])
        writeAtomically(
          plan.hostPath,
          plan.items.map((item) => {
            const data = secret[item.key]
            if (data === undefined) throw new Error(`volume ${plan.name}: secret ${plan.secretName} has no key ${item.key}`)
            return {path: item.path, data, mode: item.mode}
          }),
        )
        break
      }
      case 'serviceAccount':
        await mountTmpfs(plan.hostPath, [])
        writeAtomically(plan.hostPath, [
          {path: 'token', data: sources.serviceAccount.token, mode: plan.mode},
          {path: 'ca.crt', data: sources.serviceAccount.caCrt, mode: plan.mode},
          {path: 'namespace', data: plan.namespace, mode: plan.mode},
        ])
        break
      case 'emptyDir':
        if (plan.medium === 'Memory')
          await mountTmpfs(plan.hostPath, plan.sizeLimitBytes === undefined ? [] : [`size=${plan.sizeLimitBytes}`])
        else mkdirSync(plan.hostPath, {recursive: true})
        chmodSync(plan.hostPath, 0o777)
        break
      case 'file':
        mkdirSync(dirname(plan.hostPath), {recursive: true})
        if (plan.copyOf) copyFileSync(plan.copyOf, plan.hostPath)
        else writeFileSync(plan.hostPath, '')
        chmodSync(plan.hostPath, plan.mode)
        break
    }
  }
}
