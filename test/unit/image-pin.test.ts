import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {type PinFacts, pinProblems} from '../../scripts/image-check-pin.js'

const BUILT = `sha256:${'1'.repeat(64)}`
const OTHER = `sha256:${'2'.repeat(64)}`
const facts = (overrides: Partial<PinFacts> = {}): PinFacts => ({
  pinned: `ghcr.io/karp-vip/karp-agent:v0.3.1@${BUILT}`,
  repository: 'ghcr.io/karp-vip/karp-agent',
  version: '0.3.1',
  releaseTag: 'v0.3.1',
  builtDigest: BUILT,
  ...overrides,
})

describe('release pin check', () => {
  it('holds when the default image is the built index under the release tag', () => {
    assert.deepEqual(pinProblems(facts()), [])
    assert.deepEqual(pinProblems(facts({releaseTag: undefined})), [])
  })

  it('names both digests when the default image is another build', () => {
    const [problem, ...rest] = pinProblems(facts({pinned: `ghcr.io/karp-vip/karp-agent:v0.3.1@${OTHER}`}))
    assert.deepEqual(rest, [])
    assert.ok(problem?.includes(OTHER) && problem.includes(BUILT), problem)
  })

  it('refuses a release tag that is not v + the package version', () => {
    assert.deepEqual(pinProblems(facts({releaseTag: 'v0.3.2'})), [
      "the release tag is v0.3.2, but package.json's version makes the image tag v0.3.1",
    ])
    assert.equal(pinProblems(facts({releaseTag: '0.3.1'})).length, 1)
  })

  it('refuses a default image without a digest, with another tag or in another repository', () => {
    assert.match(
      pinProblems(facts({pinned: 'ghcr.io/karp-vip/karp-agent:v0.3.1'})).join('\n'),
      /not pinned by digest; the built index is sha256:1{64}/,
    )
    assert.match(
      pinProblems(facts({pinned: `ghcr.io/karp-vip/karp-agent:v0.3.0@${BUILT}`})).join('\n'),
      /has tag v0\.3\.0, the image is tagged v0\.3\.1/,
    )
    assert.match(
      pinProblems(facts({pinned: `ghcr.io/someone/karp-agent:v0.3.1@${BUILT}`})).join('\n'),
      /names ghcr\.io\/someone\/karp-agent, the image is published as ghcr\.io\/karp-vip\/karp-agent/,
    )
    assert.match(pinProblems(facts({pinned: 'not a reference'})).join('\n'), /is not an image reference/)
  })

  it('fails when the layout holds no image of this version', () => {
    assert.match(pinProblems(facts({builtDigest: undefined})).join('\n'), /no image tagged v0\.3\.1/)
  })
})
