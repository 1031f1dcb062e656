import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {describeNonKubernetesAnswer, formatSeconds} from '../../src/lib/kube/request-guard.js'

describe('describeNonKubernetesAnswer: is this what a Kubernetes API server sends?', () => {
  it('accepts objects, lists, discovery and error Statuses as the API server sends them', () => {
    assert.equal(describeNonKubernetesAnswer(200, 'application/json', '{"kind":"NodeList","apiVersion":"v1","items":[]}'), undefined)
    assert.equal(
      describeNonKubernetesAnswer(201, 'application/json', '{"kind":"SelfSubjectAccessReview","status":{"allowed":true}}'),
      undefined,
    )
    assert.equal(describeNonKubernetesAnswer(200, 'application/json;charset=utf-8', '{"kind":"DaemonSet"}'), undefined)
    assert.equal(
      describeNonKubernetesAnswer(200, 'application/json', '{"kind":"APIResourceList","groupVersion":"v1","resources":[]}'),
      undefined,
    )
    assert.equal(
      describeNonKubernetesAnswer(404, 'application/json', '{"kind":"Status","status":"Failure","reason":"NotFound","code":404}'),
      undefined,
    )
    assert.equal(describeNonKubernetesAnswer(500, 'application/json', '{"kind":"Status","code":500}'), undefined)
  })
  it('names an HTML page, its status and the start of its body, escaped', () => {
    assert.equal(
      describeNonKubernetesAnswer(200, 'text/html; charset=utf-8', '<html>\x1b]0;owned\x07<p>hi</html>'),
      'HTTP 200 with content type "text/html" and a body starting "<html>\\x1b]0;owned\\x07<p>hi</html>", not JSON',
    )
  })
  it('names a plain 404 and 500, and an empty or untyped answer', () => {
    assert.equal(
      describeNonKubernetesAnswer(404, 'text/plain', '404 page not found\n'),
      'HTTP 404 with content type "text/plain" and a body starting "404 page not found", not JSON',
    )
    assert.match(describeNonKubernetesAnswer(500, undefined, '') as string, /^HTTP 500 with no content type and an empty body, not JSON$/)
  })
  it('caps what it quotes of a long body', () => {
    const what = describeNonKubernetesAnswer(200, 'text/plain', 'x'.repeat(10_000)) as string
    assert.ok(what.length < 200, what)
    assert.match(what, /"x{40}…" \(10000 characters\)/)
  })
  it('refuses JSON that is no Kubernetes object: no kind, a list without items, an error that is not a Status', () => {
    assert.match(
      describeNonKubernetesAnswer(200, 'application/json', '{}') as string,
      /JSON that is no Kubernetes object \(it has no kind\)/,
    )
    assert.match(describeNonKubernetesAnswer(200, 'application/json', '[1,2]') as string, /no Kubernetes object/)
    assert.match(describeNonKubernetesAnswer(200, 'application/json', '"hello"') as string, /no Kubernetes object/)
    assert.match(describeNonKubernetesAnswer(200, 'application/json', '{"kind":"NodeList"}') as string, /a "NodeList" without items/)
    assert.match(
      describeNonKubernetesAnswer(403, 'application/json', '{"kind":"Pod"}') as string,
      /HTTP 403 with a "Pod" where an error Status belongs/,
    )
    assert.match(describeNonKubernetesAnswer(200, 'application/json', '{"kind": ') as string, /which is not valid JSON/)
  })
})

describe('formatSeconds', () => {
  it('says whole seconds plainly and keeps one decimal otherwise', () => {
    assert.equal(formatSeconds(30_000), '30 s')
    assert.equal(formatSeconds(1500), '1.5 s')
    assert.equal(formatSeconds(2000), '2 s')
  })
})
