// bin/run.js's entry into the bundle. The commands import @oclif/core from the same shared chunk, so the
// runner and the commands share one oclif.
import {settings} from '@oclif/core'

// Always the bundle in dist/: never oclif's lookup of TypeScript sources (tsconfig.json, ts-node), which it
// would otherwise try under NODE_ENV=development or test.
settings.enableAutoTranspile = false

export {execute} from '@oclif/core'
