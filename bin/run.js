#!/usr/bin/env node
import module from 'node:module'

// Node's on-disk compile cache (22.1+): every run after the first skips compiling the bundle's code.
module.enableCompileCache?.()

const {execute} = await import('../dist/oclif.js')
await execute({dir: import.meta.url})
