import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {KubeConfig} from '@kubernetes/client-node'
import {parseDocument} from 'yaml'

import {fromJsYamlError, fromYamlError, parseErrorMessage, safeReason} from '../../src/lib/kubeconfig/parse-error.js'

const SECRET = 'S3cr3tV4lue'

/** Malformed kubeconfig lines that put SECRET into a parser's message or its quoted excerpt. */
const MALFORMED = [
  `users:\n- name: u\n  user:\n    token: ${SECRET}\n  bad: [unclosed\n`,
  `users:\n- name: u\n  user:\n    token: |${SECRET}\n`,
  `users:\n- name: u\n  user:\n    password: !${SECRET}\n`,
  `users:\n- name: u\n  user:\n    password: *${SECRET}\n`,
  `users:\n- name: u\n  user:\n    token: "\\q${SECRET}"\n`,
  `users:\n- name: u\n  user:\n    token: ${SECRET}\n    token: ${SECRET}\n`,
  `%TAG !${SECRET}! tag:x,2000:\n---\nusers: !${SECRET}!y []\n`,
]

describe('parse errors quote nothing of the file', () => {
  for (const text of MALFORMED) {
    it(`yaml (eemeli) and js-yaml (client-node) on ${JSON.stringify(text.slice(-40))}`, () => {
      const messages: string[] = []
      const doc = parseDocument(text, {prettyErrors: true, uniqueKeys: true})
      for (const error of doc.errors) messages.push(parseErrorMessage('/k/config', fromYamlError(error)))
      try {
        new KubeConfig().loadFromString(text)
      } catch (error) {
        const failure = fromJsYamlError(error)
        if (failure) messages.push(parseErrorMessage('/k/config', failure))
      }
      assert.ok(messages.length > 0, 'at least one parser refuses it')
      for (const message of messages) {
        assert.ok(!message.includes(SECRET), message)
        assert.ok(!message.includes('\n'), message)
        assert.match(message, /^kubeconfig \/k\/config is not valid YAML: [^:]+ at line \d+, column \d+$/)
      }
    })
  }

  it("keeps the parsers' own words where they quote nothing", () => {
    assert.equal(safeReason('Map keys must be unique at line 2, column 1:\n\nsource'), 'Map keys must be unique')
    assert.equal(safeReason('bad indentation of a mapping entry (3:5)\n\n 1 | token: x'), 'bad indentation of a mapping entry')
    assert.equal(safeReason("expected ':' after a mapping key"), "expected ':' after a mapping key")
    assert.equal(safeReason(`Block scalar header includes extra characters: |${SECRET}`), 'Block scalar header includes extra characters')
    assert.equal(safeReason(`unknown tag !<!${SECRET}>`), 'unknown tag')
    assert.equal(safeReason(`unidentified alias "${SECRET}"`), 'unidentified alias')
    assert.equal(safeReason(`Invalid escape sequence \\q`), 'Invalid escape sequence')
    assert.equal(safeReason('\u001b[31mred'), 'syntax error')
  })

  it('escapes control characters in the path, so the message stays one line', () => {
    assert.equal(
      parseErrorMessage('/k/a\nb', {reason: 'x', line: 1, column: 2}),
      'kubeconfig /k/a\\nb is not valid YAML: x at line 1, column 2',
    )
  })
})
