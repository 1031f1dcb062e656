// The agent image every test runs: the one `npm run image` builds (cached; built here when missing or stale).
import {join} from 'node:path'
import {buildImage, DEFAULT_OUT, type ImageSummary} from '../scripts/image/build.js'

export const IMAGE_DIR = DEFAULT_OUT
export const IMAGE_LAYOUT = join(DEFAULT_OUT, 'oci')

export function imageRootfs(arch = 'amd64'): string {
  return join(DEFAULT_OUT, 'rootfs', arch)
}

let built: Promise<ImageSummary> | undefined

export function agentImage(): Promise<ImageSummary> {
  built ??= buildImage({log: () => {}})
  return built
}
