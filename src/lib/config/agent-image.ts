// Written by `npm run image -- --pin`: the agent image of this version, by digest, so that `karp install`
// never runs a tag that moved. test/e2e/image-build.test.ts fails when it is not the image this tree builds.
export const AGENT_IMAGE = 'ghcr.io/karp-vip/karp-agent:v0.1.0@sha256:bcf6231d95354b87d0ce346ba4c4a857c33af00d13b3c25d8374182fc86c2bf4'
