// Written by `npm run image -- --pin`: the agent image of this version, by digest, so that `karp install`
// never runs a tag that moved. test/e2e/image-build.test.ts fails when it is not the image this tree builds.
export const AGENT_IMAGE = 'ghcr.io/karp-vip/karp-agent:v0.1.0@sha256:1ce98523ffed07ab9422fa80bb359683aba986d3fb93c92e8735ee369d9d4dce'
