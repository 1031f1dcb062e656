// The image's root filesystem for one architecture, assembled from unpacked .debs: the files the definition
// names, the shared libraries they need (ELF DT_NEEDED and the program interpreter, followed transitively and
// found only among the locked packages), symlinks kept as symlinks, each package's copyright and a dpkg status
// entry (what vulnerability scanners read in distroless images). Files are read, never executed.
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import {join, posix} from 'node:path'
import {execa} from 'execa'
import {type LockedPackage, parseStanzas} from './debian.js'
import {type ImageDefinition, triplet} from './definition.js'

export interface UnpackedPackage {
  pkg: LockedPackage
  dir: string
  control: Record<string, string>
}

export async function unpackDeb(pkg: LockedPackage, deb: string, dir: string): Promise<UnpackedPackage> {
  mkdirSync(dir, {recursive: true})
  await execa('dpkg-deb', ['-x', deb, dir])
  const {stdout} = await execa('dpkg-deb', ['-f', deb])
  return {pkg, dir, control: parseStanzas(stdout)[0] ?? {}}
}

/** What an ELF file asks the loader for: its interpreter and its DT_NEEDED names. Empty for non-ELF files. */
export async function elfNeeds(file: string): Promise<{interpreter?: string; needed: string[]}> {
  const magic = readFileSync(file).subarray(0, 4)
  if (magic.toString('latin1') !== '\x7fELF') return {needed: []}
  const {stdout} = await execa('readelf', ['-d', '-l', '-W', file])
  const needed = [...stdout.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1] as string)
  const interpreter = /\[Requesting program interpreter: ([^\]]+)\]/.exec(stdout)?.[1]
  return {interpreter, needed}
}

/** Resolves a path inside one package's tree, following symlinks there; every hop is returned, in order. */
function pathChain(root: string, path: string): string[] {
  const chain: string[] = []
  let current = path
  for (let hops = 0; hops < 16; hops++) {
    const full = join(root, current)
    if (!existsSync(full) && !isSymlink(full)) return []
    chain.push(current)
    if (!isSymlink(full)) return chain
    const target = readlinkSync(full)
    current = target.startsWith('/') ? target : posix.join(posix.dirname(current), target)
  }
  throw new Error(`${path}: too many symlinks`)
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink()
  } catch {
    return false
  }
}

export interface Selection {
  /** Image path -> the package tree it comes from. */
  files: Map<string, UnpackedPackage>
}

/**
 * The files the definition names plus the closure of what their ELF headers need. A needed library that no
 * locked package provides fails the build: an image whose binaries cannot load is never written.
 */
export async function selectFiles(
  definition: ImageDefinition,
  arch: string,
  packages: UnpackedPackage[],
  extraElves: string[],
): Promise<Selection> {
  const files = new Map<string, UnpackedPackage>()
  const byName = new Map(packages.map((p) => [p.pkg.name, p]))
  const libDirs = [`/lib/${triplet(arch)}`, `/usr/lib/${triplet(arch)}`, '/lib', '/usr/lib']
  const pending: {path: string; from: UnpackedPackage}[] = []

  const add = (path: string, from: UnpackedPackage): boolean => {
    const chain = pathChain(from.dir, path)
    if (chain.length === 0) return false
    for (const hop of chain) {
      if (files.has(hop)) continue
      files.set(hop, from)
      if (!isSymlink(join(from.dir, hop))) pending.push({path: hop, from})
    }
    return true
  }
  const locate = (path: string, why: string): void => {
    for (const p of packages) if (add(path, p)) return
    throw new Error(`${arch}: ${why} needs ${path}, which none of the locked packages provides`)
  }

  for (const [name, paths] of Object.entries(definition.files)) {
    const from = byName.get(name)
    if (!from) throw new Error(`image.json names files of ${name}, which is not among its packages`)
    for (const path of paths) if (!add(path, from)) throw new Error(`${arch}: ${name} has no ${path}`)
  }
  const resolveNeeds = async (file: string, label: string): Promise<void> => {
    const {interpreter, needed} = await elfNeeds(file)
    if (interpreter) locate(interpreter, label)
    for (const lib of needed) {
      const found = libDirs.some((d) => packages.some((p) => add(posix.join(d, lib), p)))
      if (!found) throw new Error(`${arch}: ${label} needs ${lib}, which none of the locked packages provides`)
    }
  }
  for (const elf of extraElves) await resolveNeeds(elf, elf)
  while (pending.length > 0) {
    const {path, from} = pending.pop() as {path: string; from: UnpackedPackage}
    await resolveNeeds(join(from.dir, path), path)
  }
  return {files}
}

function ensureDir(root: string, path: string): void {
  const full = join(root, path)
  if (existsSync(full)) return
  ensureDir(root, posix.dirname(path))
  mkdirSync(full)
  chmodSync(full, 0o755)
}

/** Copies a file with the modes the image carries: 0755 when any execute bit was set (or `mode`), else 0644. */
function placeFile(root: string, path: string, source: string, mode?: number): void {
  ensureDir(root, posix.dirname(path))
  const target = join(root, path)
  copyFileSync(source, target)
  chmodSync(target, mode ?? (statSync(source).mode & 0o111 ? 0o755 : 0o644))
}

function placeSymlink(root: string, path: string, target: string): void {
  ensureDir(root, posix.dirname(path))
  symlinkSync(target, join(root, path))
}

function placeText(root: string, path: string, text: string, mode = 0o644): void {
  ensureDir(root, posix.dirname(path))
  writeFileSync(join(root, path), text)
  chmodSync(join(root, path), mode)
}

/** The dpkg status entry of a package, as distroless images carry them in /var/lib/dpkg/status.d/. */
export function statusEntry(control: Record<string, string>): string {
  const keep = ['Package', 'Version', 'Architecture', 'Source', 'Maintainer', 'Installed-Size', 'Depends', 'Homepage', 'Description']
  const lines = [`Package: ${control.Package}`, 'Status: install ok installed']
  for (const key of keep.slice(1)) if (control[key] !== undefined) lines.push(`${key}: ${control[key]}`)
  return `${lines.join('\n')}\n`
}

export interface RootfsInputs {
  definition: ImageDefinition
  selection: Selection
  packages: UnpackedPackage[]
  agentDir: string
  /** The built helper programs by name (definition.helpers). */
  helpers: Record<string, string>
  /** Copyright files of what is linked into the helpers statically (its code ships, so its license does too). */
  linkedCopyrights: {name: string; file: string}[]
}

export function assembleRootfs(root: string, inputs: RootfsInputs): void {
  const {definition, selection, packages, agentDir, helpers, linkedCopyrights} = inputs
  mkdirSync(root, {recursive: true})
  chmodSync(root, 0o755)
  for (const [path, from] of selection.files) {
    const source = join(from.dir, path)
    if (isSymlink(source)) placeSymlink(root, path, readlinkSync(source))
    else placeFile(root, path, source)
  }
  for (const applet of definition.busyboxApplets) placeSymlink(root, `/bin/${applet}`, 'busybox')
  for (const script of definition.agent.scripts)
    placeFile(root, posix.join(definition.agent.directory, script), join(agentDir, script), 0o755)
  for (const program of definition.helpers.programs) {
    const built = helpers[program.name]
    if (built === undefined) throw new Error(`helper ${program.name} was not built`)
    placeFile(root, program.path, built, 0o755)
  }
  for (const {name, file} of linkedCopyrights) placeFile(root, `/usr/share/doc/${name}/copyright`, file, 0o644)
  for (const dir of definition.directories) ensureDir(root, dir)
  placeText(root, '/etc/passwd', 'root:x:0:0:root:/root:/sbin/nologin\n')
  placeText(root, '/etc/group', 'root:x:0:\n')
  for (const {pkg, dir, control} of packages) {
    placeText(root, `/var/lib/dpkg/status.d/${pkg.name}`, statusEntry(control))
    const chain = pathChain(dir, `/usr/share/doc/${pkg.name}/copyright`)
    const copyright = chain.at(-1)
    if (copyright) placeFile(root, `/usr/share/doc/${pkg.name}/copyright`, join(dir, copyright))
    else {
      // binNMU and split packages point their doc directory at another package's: take that one's text.
      const owner = packages.find((p) => p.pkg.source === pkg.source && existsSync(join(p.dir, `/usr/share/doc/${p.pkg.name}/copyright`)))
      if (!owner) throw new Error(`${pkg.name}: no copyright file found`)
      placeFile(root, `/usr/share/doc/${pkg.name}/copyright`, join(owner.dir, `/usr/share/doc/${owner.pkg.name}/copyright`))
    }
  }
}
