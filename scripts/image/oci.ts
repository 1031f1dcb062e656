// A reproducible OCI image layout: one gzip'd tar layer per platform, its config, its manifest, and one
// image index over the platforms. Same root filesystem and epoch in, same digests out: GNU tar with sorted
// names, one mtime, uid/gid 0 and no atime/ctime/xattrs; gzip without a name or timestamp; JSON written in a
// fixed key order.
import {createHash} from 'node:crypto'
import {mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {execa} from 'execa'

export const MEDIA_TYPES = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const

export interface Descriptor {
  mediaType: string
  digest: string
  size: number
  platform?: Platform
  annotations?: Record<string, string>
}

export interface Platform {
  architecture: string
  os: string
  variant?: string
}

export interface ImageConfig {
  Entrypoint?: string[]
  Cmd?: string[]
  Env?: string[]
  User?: string
  WorkingDir?: string
  Labels?: Record<string, string>
}

export interface PlatformImage {
  platform: Platform
  rootfs: string
  config: ImageConfig
}

export interface PlatformResult {
  platform: Platform
  manifest: Descriptor
  config: Descriptor
  layer: Descriptor
  diffId: string
}

export interface LayoutResult {
  index: Descriptor
  platforms: PlatformResult[]
}

function digestOf(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`
}

class Blobs {
  constructor(private readonly dir: string) {
    mkdirSync(join(dir, 'blobs', 'sha256'), {recursive: true})
  }

  put(mediaType: string, data: Buffer, extra: Partial<Descriptor> = {}): Descriptor {
    const digest = digestOf(data)
    writeFileSync(join(this.dir, 'blobs', 'sha256', digest.slice('sha256:'.length)), data)
    return {mediaType, digest, size: data.length, ...extra}
  }

  json(mediaType: string, value: unknown, extra: Partial<Descriptor> = {}): Descriptor {
    return this.put(mediaType, Buffer.from(JSON.stringify(value)), extra)
  }
}

/** The layer tar of a directory tree, byte-for-byte the same for the same tree and epoch. */
export async function layerTar(rootfs: string, epoch: number): Promise<Buffer> {
  const top = readdirSync(rootfs).sort()
  const {stdout} = await execa(
    'tar',
    [
      '--create',
      '--file=-',
      `--directory=${rootfs}`,
      '--sort=name',
      '--format=gnu',
      `--mtime=@${epoch}`,
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '--no-acls',
      '--no-selinux',
      '--no-xattrs',
      '--',
      ...top,
    ],
    {encoding: 'buffer', maxBuffer: 1 << 30, env: {LC_ALL: 'C'}},
  )
  return Buffer.from(stdout)
}

export async function gzipDeterministic(data: Buffer): Promise<Buffer> {
  const {stdout} = await execa('gzip', ['-9', '--no-name'], {input: data, encoding: 'buffer', maxBuffer: 1 << 30})
  return Buffer.from(stdout)
}

/**
 * Writes `images` as one multi-platform image into the OCI layout `dir` (replaced whole), tagged `tag`:
 * index.json's single entry is the image index, so the index has a digest of its own to pin and push.
 */
export async function writeLayout(
  dir: string,
  images: PlatformImage[],
  tag: string,
  epoch: number,
  annotations: Record<string, string> = {},
): Promise<LayoutResult> {
  const staging = `${dir}.partial`
  rmSync(staging, {recursive: true, force: true})
  const blobs = new Blobs(staging)
  const created = new Date(epoch * 1000).toISOString().replace('.000Z', 'Z')
  const platforms: PlatformResult[] = []
  for (const image of images) {
    const tar = await layerTar(image.rootfs, epoch)
    const diffId = digestOf(tar)
    const layer = blobs.put(MEDIA_TYPES.layer, await gzipDeterministic(tar))
    const config = blobs.json(MEDIA_TYPES.config, {
      created,
      architecture: image.platform.architecture,
      ...(image.platform.variant ? {variant: image.platform.variant} : {}),
      os: image.platform.os,
      config: image.config,
      rootfs: {type: 'layers', diff_ids: [diffId]},
      history: [{created, created_by: 'karp: scripts/image/build.ts'}],
    })
    const manifest = blobs.json(
      MEDIA_TYPES.manifest,
      {
        schemaVersion: 2,
        mediaType: MEDIA_TYPES.manifest,
        config,
        layers: [layer],
        ...(Object.keys(annotations).length > 0 ? {annotations} : {}),
      },
      {platform: image.platform},
    )
    platforms.push({platform: image.platform, manifest, config, layer, diffId})
  }
  const index = blobs.json(MEDIA_TYPES.index, {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.index,
    manifests: platforms.map((p) => p.manifest),
    ...(Object.keys(annotations).length > 0 ? {annotations} : {}),
  })
  const entry: Descriptor = {...index, annotations: {'org.opencontainers.image.ref.name': tag}}
  writeFileSync(join(staging, 'oci-layout'), JSON.stringify({imageLayoutVersion: '1.0.0'}))
  writeFileSync(join(staging, 'index.json'), JSON.stringify({schemaVersion: 2, mediaType: MEDIA_TYPES.index, manifests: [entry]}))
  rmSync(dir, {recursive: true, force: true})
  renameSync(staging, dir)
  return {index, platforms}
}

/** Reads a blob of a layout by digest (for tests and reports). */
export function readBlob(dir: string, digest: string): Buffer {
  return readFileSync(join(dir, 'blobs', 'sha256', digest.replace(/^sha256:/, '')))
}
