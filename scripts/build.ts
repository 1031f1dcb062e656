// `npm run build`: bundles the CLI with esbuild into dist/: one file per command (oclif finds them through
// the manifest and imports only the one that runs) plus shared chunks, so a command loads only what it uses
// (`karp render` never loads @kubernetes/client-node or node-forge), and Node reads a few files instead of
// a thousand modules. Every dependency is bundled: the published package needs no node_modules at run time.
//   node scripts/build.ts [--metafile]   (prints each output's size; --metafile writes dist/meta.json)
import {globSync, writeFileSync} from 'node:fs'

import * as esbuild from 'esbuild'

// The bundle is ESM; bundled CommonJS code (oclif, node-forge) still calls require() and reads __dirname.
const COMMONJS_SHIMS = [
  "import {createRequire as __karpCreateRequire} from 'node:module'",
  "import {fileURLToPath as __karpFileURLToPath} from 'node:url'",
  'const require = __karpCreateRequire(import.meta.url)',
  'const __filename = __karpFileURLToPath(import.meta.url)',
  "const __dirname = __karpFileURLToPath(new URL('.', import.meta.url))",
].join(';')

const result = await esbuild.build({
  entryPoints: ['src/oclif.ts', ...globSync('src/commands/**/*.ts')],
  outbase: 'src',
  outdir: 'dist',
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  minify: true,
  // Class and function names survive (errors are told apart by name; a bug's stack stays readable).
  keepNames: true,
  sourcemap: 'linked',
  // The bundled libraries' license notices, gathered into dist/**/*.LEGAL.txt beside the code they came from.
  legalComments: 'linked',
  metafile: true,
  banner: {js: COMMONJS_SHIMS},
  // oclif reads tsconfig.json with TypeScript only for a linked plugin in development, never in a release.
  external: ['typescript'],
  logLevel: 'warning',
})

if (process.argv.includes('--metafile')) writeFileSync('dist/meta.json', JSON.stringify(result.metafile))
const sizes = Object.entries(result.metafile.outputs).filter(([file]) => file.endsWith('.js'))
const total = sizes.reduce((sum, [, output]) => sum + output.bytes, 0)
console.log(`dist/: ${sizes.length} files, ${(total / 1e6).toFixed(2)} MB of JavaScript`)
