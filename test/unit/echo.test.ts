import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {ECHO_MAX_CHARS, echo, escapeControl} from '../../src/lib/echo.js'

describe('echo: how every message shows an outside value', () => {
  it('quotes a short value as JSON would', () => {
    assert.equal(echo('eth0'), '"eth0"')
    assert.equal(echo(''), '""')
    assert.equal(echo('say "hi" \\ bye'), '"say \\"hi\\" \\\\ bye"')
  })
  it('cuts a long value after 60 characters, saying how long it was', () => {
    assert.equal(ECHO_MAX_CHARS, 60)
    assert.equal(echo('a'.repeat(60)), `"${'a'.repeat(60)}"`)
    assert.equal(echo('a'.repeat(61)), `"${'a'.repeat(60)}…" (61 characters)`)
    assert.equal(echo('b'.repeat(1_000_000)), `"${'b'.repeat(60)}…" (1000000 characters)`)
    assert.equal(echo('abcdef', 3), '"abc…" (6 characters)')
  })
  it('counts characters, never splitting one', () => {
    assert.equal(echo('😀'.repeat(61)), `"${'😀'.repeat(60)}…" (61 characters)`)
  })
  it('escapes every control, format and separator character', () => {
    assert.equal(echo('a\nb\r\tc'), '"a\\nb\\r\\tc"')
    assert.equal(echo('\x1b[2J\x07\x00\x7f\x9b'), '"\\x1b[2J\\x07\\x00\\x7f\\x9b"')
    assert.equal(echo('abc\u202edcba\u200b\u2028'), '"abc\\u{202e}dcba\\u{200b}\\u{2028}"')
    assert.equal(echo('é and ü stay'), '"é and ü stay"')
  })
  it('escapes before cutting, so a cut never leaves half an escape and the echo is bounded', () => {
    const shown = echo('\x1b'.repeat(1000))
    assert.equal(shown, `"${'\\x1b'.repeat(60)}…" (1000 characters)`)
    assert.doesNotMatch(shown, /\p{Cc}/u)
  })
  it('escapeControl keeps the text and escapes only what a terminal would act on', () => {
    assert.equal(escapeControl('plain text "quoted"'), 'plain text "quoted"')
    assert.equal(escapeControl('red \x1b[31mtext\x1b[0m\x07'), 'red \\x1b[31mtext\\x1b[0m\\x07')
  })
})
