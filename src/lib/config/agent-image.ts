// Written by `npm run image -- --pin`: the agent image of this version, by digest, so that `karp install`
// never runs a tag that moved. test/e2e/image-build.test.ts fails when it is not the image this tree builds.
export const AGENT_IMAGE = 'ghcr.io/karp-vip/karp-agent:v0.1.0@sha256:169c3e562de8398a5330f37b071ea15b25c7015eb464cf4b12a102b37dbf22d0'
