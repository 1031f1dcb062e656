#!/usr/bin/env -S node --import tsx
import {execute} from '@oclif/core'

// Run from src/: the committed oclif.manifest.json describes dist/ and would otherwise win.
await execute({development: true, loadOptions: {root: import.meta.dirname, ignoreManifest: true}})
