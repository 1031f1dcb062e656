import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {parseImageReference} from '../../src/lib/config/image-reference.js'

const SHA256 = `sha256:${'0123456789abcdef'.repeat(4)}`

describe('parseImageReference (the distribution reference grammar)', () => {
  const valid: Array<[string, object]> = [
    ['busybox', {path: 'busybox'}],
    ['library/busybox:1.36', {path: 'library/busybox', tag: '1.36'}],
    ['ghcr.io/karp-vip/karp-agent:v0.1.0', {domain: 'ghcr.io', path: 'karp-vip/karp-agent', tag: 'v0.1.0'}],
    ['localhost/agent', {domain: 'localhost', path: 'agent'}],
    ['localhost:5000/agent:dev', {domain: 'localhost:5000', path: 'agent', tag: 'dev'}],
    ['registry.example:443/a/b/c', {domain: 'registry.example:443', path: 'a/b/c'}],
    ['[fd00::1]:5000/karp/agent:v1', {domain: '[fd00::1]:5000', path: 'karp/agent', tag: 'v1'}],
    ['10.0.0.1:5000/agent', {domain: '10.0.0.1:5000', path: 'agent'}],
    ['Registry.Example/agent', {domain: 'Registry.Example', path: 'agent'}],
    [`ghcr.io/karp-vip/karp-agent@${SHA256}`, {domain: 'ghcr.io', path: 'karp-vip/karp-agent', digest: SHA256}],
    [`ghcr.io/karp-vip/karp-agent:v1@${SHA256}`, {domain: 'ghcr.io', path: 'karp-vip/karp-agent', tag: 'v1', digest: SHA256}],
    [`agent@sha512:${'ab'.repeat(64)}`, {path: 'agent', digest: `sha512:${'ab'.repeat(64)}`}],
    ['a__b/c.d/e-f/g--h:V_1.0-rc', {path: 'a__b/c.d/e-f/g--h', tag: 'V_1.0-rc'}],
    [`agent:${'t'.repeat(128)}`, {path: 'agent', tag: 't'.repeat(128)}],
    // A bare host:port is an image and a tag, as Docker reads it.
    ['localhost:5000', {path: 'localhost', tag: '5000'}],
  ]
  for (const [text, parts] of valid) {
    it(`accepts ${text.length > 70 ? `${text.slice(0, 70)}...` : text}`, () =>
      assert.deepEqual(parseImageReference(text), {ok: true, value: parts}))
  }

  const invalid: Array<[string, RegExp]> = [
    ['', /empty/],
    ['agent v1', /printable ASCII without spaces/],
    ['ghcr.io/é/agent', /printable ASCII/],
    ['agent\n', /printable ASCII/],
    ['agent\x1b[2J', /printable ASCII/],
    ['a$(reboot)', /repository must be lowercase/],
    ['agent;id', /repository must be lowercase/],
    ['agent|sh', /repository must be lowercase/],
    ['agent&', /repository must be lowercase/],
    ['`id`', /repository must be lowercase/],
    ['ghcr.io/Karp/agent', /repository must be lowercase/],
    ['-agent', /repository must be lowercase/],
    ['agent-', /repository must be lowercase/],
    ['a..b', /repository must be lowercase/],
    ['a___b', /repository must be lowercase/],
    ['ghcr.io//agent', /repository must be lowercase/],
    ['ghcr.io/agent/', /repository must be lowercase/],
    ['ghcr.io/', /repository must be lowercase/],
    ['agent:', /tag must be/],
    ['agent:-v1', /tag must be/],
    ['agent:.v1', /tag must be/],
    [`agent:${'t'.repeat(129)}`, /tag must be/],
    ['agent:v1:v2', /repository must be lowercase/],
    ['agent@sha256:abc', /digest must be sha256/],
    [`agent@sha256:${'A'.repeat(64)}`, /digest must be sha256/],
    [`agent@md5:${'a'.repeat(32)}`, /digest must be sha256/],
    ['agent@', /digest must be sha256/],
    ['-registry.example/agent', /registry must be a host name/],
    ['registry.example:port/agent', /registry must be a host name/],
    ['[fd00::1/agent', /registry must be a host name/],
    [`${'a'.repeat(256)}`, /the name is 256 characters; at most 255/],
    ['a'.repeat(600), /600 characters is too long/],
  ]
  for (const [text, why] of invalid) {
    it(`refuses ${JSON.stringify(text.length > 70 ? `${text.slice(0, 70)}...` : text)}`, () => {
      const parsed = parseImageReference(text)
      assert.equal(parsed.ok, false)
      assert.match((parsed as {why: string}).why, why)
    })
  }
})
