import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {existsSync, readFileSync} from 'node:fs'
import {dirname, join, normalize} from 'node:path'
import {describe, it} from 'node:test'
import {fileURLToPath} from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const tracked = execFileSync('git', ['ls-files', '-z'], {cwd: ROOT, encoding: 'utf8'}).split('\0').filter(Boolean)
const inRepo = new Set(tracked)
const TEXT = /\.(ts|js|sh|c|md|yaml|yml|json|go)$|^\.ci\/run$/

/** Markdown files a text names: `docs/architecture.md`, `README.md` (not `forge.md.sha256`, an identifier). */
function markdownReferences(text: string): string[] {
  return [...text.matchAll(/(?<![\w./-])((?:\.{0,2}\/)?(?:[\w-]+\/)*[\w-]+\.md)(?!\.?\w)/g)].map((m) => m[1] as string)
}

describe('references inside the repository', () => {
  it('reads markdown names out of text, and not identifiers', () => {
    assert.deepEqual(markdownReferences('see docs/architecture.md, the README.md and ../lab/README.md.'), [
      'docs/architecture.md',
      'README.md',
      '../lab/README.md',
    ])
    assert.deepEqual(markdownReferences('cert.sign(key, forge.md.sha256.create())'), [])
  })

  it('every markdown file a tracked file names is tracked in this repository (nothing outside it is cited)', () => {
    const missing: string[] = []
    // This file's own examples are not references.
    for (const file of tracked.filter((f) => TEXT.test(f) && !f.endsWith('repo-references.test.ts'))) {
      let text = readFileSync(join(ROOT, file), 'utf8')
      // In C, `ch.md` is a struct member: only the comments name files.
      if (file.endsWith('.c'))
        text = text
          .split('\n')
          .filter((line) => /^\s*(\/\*|\*|\/\/)/.test(line))
          .join('\n')
      for (const ref of markdownReferences(text)) {
        if (!inRepo.has(normalize(ref)) && !inRepo.has(join(dirname(file), ref))) missing.push(`${file}: ${ref}`)
      }
    }
    assert.deepEqual(missing, [])
  })

  it('package.json points only at files the build makes or the repository holds', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      main?: string
      exports?: unknown
      types?: string
      bin: Record<string, string>
      files: string[]
      oclif: {commands: string}
    }
    assert.equal(pkg.main, undefined, 'karp is a CLI: no main')
    assert.equal(pkg.exports, undefined, 'karp is a CLI: no exports')
    assert.equal(pkg.types, undefined, 'karp is a CLI: no types')
    for (const target of Object.values(pkg.bin)) assert.ok(existsSync(join(ROOT, target)), `bin ${target}`)
    for (const entry of pkg.files) assert.ok(existsSync(join(ROOT, entry)), `files ${entry} (run npm run build first)`)
    assert.ok(existsSync(join(ROOT, pkg.oclif.commands)), `oclif.commands ${pkg.oclif.commands}`)
  })
})
