// The sandbox ("pause") image containerd needs for every pod: registry.k8s.io cannot be reached here, so the
// tests build their own from pause.c (gcc -static) and pack it with the agent image's OCI writer. Test
// infrastructure only, never shipped. Built for this machine's architecture only.
import {mkdirSync, rmSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {execa} from 'execa'
import {writeLayout} from '../scripts/image/oci.js'

const here = dirname(fileURLToPath(import.meta.url))
export const PAUSE_SOURCE = join(here, 'pause.c')
/** Fully qualified, as containerd's sandbox_image must be. */
export const PAUSE_IMAGE = 'localhost/karp-test/pause:1'

export function nativeArchitecture(): string {
  const arch = {x64: 'amd64', arm64: 'arm64'}[process.arch as string]
  if (!arch) throw new Error(`no OCI architecture name for Node's ${process.arch}`)
  return arch
}

/** Builds the pause image into `dir` (replaced whole) and returns its OCI layout directory. */
export async function buildPauseImage(dir: string): Promise<string> {
  rmSync(dir, {recursive: true, force: true})
  const rootfs = join(dir, 'rootfs')
  mkdirSync(rootfs, {recursive: true})
  await execa('gcc', ['-static', '-Os', '-s', '-Wall', '-Wextra', '-Werror', '-o', join(rootfs, 'pause'), PAUSE_SOURCE])
  const layout = join(dir, 'oci')
  // ref.name is the full name: `ctr images import` then names the image exactly that.
  await writeLayout(
    layout,
    [{platform: {architecture: nativeArchitecture(), os: 'linux'}, rootfs, config: {Entrypoint: ['/pause']}}],
    PAUSE_IMAGE,
    0,
  )
  return layout
}
