// Written by `npm run image -- --pin`: the agent image of this version, by digest, so that `karp install`
// never runs a tag that moved. test/e2e/image-build.test.ts fails when it is not the image this tree builds.
export const AGENT_IMAGE = 'ghcr.io/karp-vip/karp-agent:v0.1.0@sha256:8a10bfd91c03f0fd1ef0425999b515f9291cf2237a87d96bb99b1fe4bee6fb99'
