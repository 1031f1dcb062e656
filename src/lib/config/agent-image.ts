// Written by `npm run image -- --pin`: the agent image of this version, by digest, so that `karp install`
// never runs a tag that moved. test/e2e/image-build.test.ts fails when it is not the image this tree builds.
export const AGENT_IMAGE = 'ghcr.io/karp-vip/karp-agent:v0.1.0@sha256:bbacd28815f6a210025dfeeabd99c804f092adfc44291126491a5d0c0081fa8d'
