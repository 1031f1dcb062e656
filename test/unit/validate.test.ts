import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {
  checkDuration,
  checkImage,
  checkInterface,
  checkNodeSelector,
  checkPassword,
  checkRequestTimeout,
  checkSubnetPrefix,
  checkVhid,
  checkVip,
  checkDnsLabel,
} from '../../src/lib/config/validate.js'
import {validateVipInput} from '../../src/lib/config/vip-config.js'
import {InvalidInputError} from '../../src/lib/errors.js'
import {DEFAULT_API_PORT} from '../../src/lib/constants.js'

function problemOf(checked: {ok: boolean; problem?: string}): string {
  assert.equal(checked.ok, false, 'expected a problem')
  return checked.problem as string
}

describe('checkVip', () => {
  it('accepts a unicast IPv4 address and normalises nothing else', () => {
    assert.deepEqual(checkVip('192.168.1.250'), {ok: true, value: '192.168.1.250'})
    assert.deepEqual(checkVip('10.0.0.1'), {ok: true, value: '10.0.0.1'})
  })
  for (const value of ['10.0.0.300', '10.0.0.1/24', '::1', '10.1', '010.0.0.1', ' 10.0.0.1', 'vip', '']) {
    it(`rejects ${JSON.stringify(value)} naming the flag, the value and the allowed form`, () => {
      const problem = problemOf(checkVip(value))
      assert.match(problem, /^invalid --vip /)
      assert.ok(problem.includes(JSON.stringify(value)))
      assert.match(problem, /IPv4 unicast address/)
    })
  }
  for (const [value, range] of [
    ['0.0.0.0', 'unspecified'],
    ['127.0.0.1', 'loopback'],
    ['224.0.0.18', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['169.254.1.1', 'linkLocal'],
  ]) {
    it(`rejects the ${range} address ${value}`, () => {
      assert.match(problemOf(checkVip(value as string)), new RegExp(`${range} addresses cannot be a VIP`))
    })
  }
})

describe('numbers', () => {
  it('vhid is 1..255', () => {
    assert.deepEqual(checkVhid('1'), {ok: true, value: 1})
    assert.deepEqual(checkVhid('255'), {ok: true, value: 255})
    for (const v of ['0', '256', 'ten', '-1', '1.5', '']) assert.match(problemOf(checkVhid(v)), /^invalid --vhid .*from 1 to 255/)
  })
  it('subnet prefix leaves room for a VIP', () => {
    assert.deepEqual(checkSubnetPrefix('24'), {ok: true, value: 24})
    assert.match(problemOf(checkSubnetPrefix('31')), /from 1 to 30/)
  })
  it('durations read like kubectl', () => {
    assert.deepEqual(checkDuration('timeout', '90s'), {ok: true, value: 90_000})
    assert.deepEqual(checkDuration('timeout', '5m'), {ok: true, value: 300_000})
    assert.deepEqual(checkDuration('timeout', '30'), {ok: true, value: 30_000})
    assert.deepEqual(checkDuration('timeout', '1.5m'), {ok: true, value: 90_000})
    assert.deepEqual(checkDuration('timeout', '1h30m'), {ok: true, value: 5_400_000})
    assert.deepEqual(checkDuration('timeout', '1m0.5s'), {ok: true, value: 60_500})
    assert.deepEqual(checkDuration('timeout', '24h'), {ok: true, value: 86_400_000})
    for (const v of ['soon', '0', '-5s', '25h', '5 m', '', 's', '1.s', '.5s', '5S', '1e3', '0x10', '5m ', ' 5m', '5 ', '1d']) {
      assert.match(problemOf(checkDuration('timeout', v)), /^invalid --timeout .*: expected a duration from 1s to 24h/, v)
    }
  })
  it('refuses a duration under a second instead of rounding it to nothing', () => {
    for (const v of ['0.4ms', '500ms', '0.4', '0.5s', '0.999s', '0s', '0m', '0.01m']) {
      const problem = problemOf(checkDuration('timeout', v))
      assert.equal(
        problem,
        `invalid --timeout ${JSON.stringify(v)}: expected a duration from 1s to 24h such as 90s, 1.5m, 5m or 1h30m (units h, m, s; a bare number is seconds)`,
      )
    }
    assert.deepEqual(checkDuration('timeout', '1s'), {ok: true, value: 1000})
    assert.deepEqual(checkDuration('timeout', '1'), {ok: true, value: 1000})
  })
  it('--request-timeout is a duration, or 0 for none as in kubectl', () => {
    assert.deepEqual(checkRequestTimeout('30s'), {ok: true, value: 30_000})
    assert.deepEqual(checkRequestTimeout('2'), {ok: true, value: 2000})
    assert.deepEqual(checkRequestTimeout('1m'), {ok: true, value: 60_000})
    for (const zero of ['0', '0s', '0m']) assert.deepEqual(checkRequestTimeout(zero), {ok: true, value: 0})
    for (const v of ['0.4ms', '0.5s', '-1', 'never', '25h']) {
      assert.match(
        problemOf(checkRequestTimeout(v)),
        /^invalid --request-timeout .*: expected a duration from 1s to 24h .*, or 0 for none$/,
        v,
      )
    }
  })
  it('a value of any length is echoed capped, with its length, and escaped', () => {
    const problem = problemOf(checkDuration('timeout', `${'9'.repeat(5000)}\x1b[2J`))
    assert.ok(problem.length < 300, `${problem.length} characters`)
    assert.match(problem, /^invalid --timeout "9{60}…" \(5004 characters\): /)
    const escaped = problemOf(checkInterface('e\x1b]0;x\x07'))
    assert.match(escaped, /^invalid --interface "e\\x1b\]0;x\\x07": /)
    assert.doesNotMatch(escaped, /\p{Cc}/u)
  })
})

describe('checkPassword', () => {
  it('accepts 1 to 19 printable bytes', () => {
    assert.equal(checkPassword('a').ok, true)
    assert.equal(checkPassword('x'.repeat(19)).ok, true)
    assert.equal(checkPassword('with space!').ok, true)
  })
  it('rejects 20 bytes, saying how many and the limit', () => {
    assert.match(problemOf(checkPassword('x'.repeat(20))), /20 bytes is too long; ucarp accepts at most 19/)
  })
  it('counts bytes, not characters, and wants ASCII', () => {
    assert.match(problemOf(checkPassword('é')), /printable ASCII/)
  })
  it('rejects a newline, a control character and the empty string', () => {
    for (const v of ['a\nb', 'a\tb', '']) assert.match(problemOf(checkPassword(v)), /^invalid --password .*printable ASCII/)
  })
  it('never shows the password it refuses, even a mistyped one', () => {
    for (const v of ['Secr3t-Secr3t-Secr3t', 'Secr3t\u00e9', 'Secr3t\nx']) {
      const problem = problemOf(checkPassword(v))
      assert.match(problem, /^invalid --password \(value not shown\): /)
      assert.ok(!problem.includes('Secr3t'), problem)
    }
  })
})

describe('names and selectors', () => {
  it('namespace must be a DNS label', () => {
    assert.equal(checkDnsLabel('namespace', 'karp-system').ok, true)
    for (const v of ['Karp', 'karp_system', '-karp', 'karp-', 'a'.repeat(64), 'kube.system']) {
      assert.match(problemOf(checkDnsLabel('namespace', v)), /^invalid --namespace .*DNS label/)
    }
  })
  it('node selector is key=value with label syntax; empty value allowed', () => {
    assert.deepEqual(checkNodeSelector('karp=enabled'), {ok: true, value: {key: 'karp', value: 'enabled'}})
    assert.deepEqual(checkNodeSelector('node-role.kubernetes.io/control-plane='), {
      ok: true,
      value: {key: 'node-role.kubernetes.io/control-plane', value: ''},
    })
    for (const v of ['karp', '=x', 'a/b/c=x', 'Bad Key=x', 'k=has space'])
      assert.match(problemOf(checkNodeSelector(v)), /^invalid --node-selector .*key=value/)
  })
  it('interface names follow Linux rules', () => {
    assert.equal(checkInterface('eth0').ok, true)
    assert.equal(checkInterface('br-lan.10').ok, true)
    assert.equal(checkInterface('a'.repeat(15)).ok, true)
    assert.equal(checkInterface('enp0s31f6').ok, true)
    assert.equal(checkInterface('veth_a@b').ok, true)
    for (const v of ['', 'a'.repeat(16), 'eth 0', 'eth0:1', 'a/b', '.', '..', 'eth\t0', 'eth\n0', 'éth0', 'eth0;reboot', '$(id)']) {
      assert.match(problemOf(checkInterface(v)), /^invalid --interface .*1 to 15 letters/, JSON.stringify(v))
    }
  })
  it('an interface name never starts with "-", so it cannot read as an option', () => {
    for (const v of ['-eth0', '--help', '-']) assert.match(problemOf(checkInterface(v)), /not starting with "-"$/, v)
    assert.equal(checkInterface('eth-0').ok, true)
  })
  it('the image is an OCI reference: no shell metacharacters, spaces or non-ASCII', () => {
    assert.deepEqual(checkImage('ghcr.io/karp-vip/karp-agent:v0.1.0'), {ok: true, value: 'ghcr.io/karp-vip/karp-agent:v0.1.0'})
    for (const v of ['ghcr.io/é/agent', 'a$(reboot)', 'a;rm -rf /', 'agent`id`', 'a b', 'agent:v1\n', 'Agent', 'agent:', 'x'.repeat(600)]) {
      assert.match(
        problemOf(checkImage(v)),
        /^invalid --image .*: expected an image reference \[registry\[:port\]\/\]repository\[:tag\]\[@sha256:<64 hex digits>\]/,
        JSON.stringify(v),
      )
    }
  })
})

describe('validateVipInput', () => {
  it('applies the documented defaults', () => {
    const {settings, vip, password} = validateVipInput({vip: '10.0.0.5'})
    assert.equal(vip, '10.0.0.5')
    assert.equal(password, undefined)
    assert.deepEqual(
      {...settings},
      {
        name: 'karp',
        namespace: 'karp-system',
        vhid: 10,
        advbase: 1,
        preempt: false,
        healthCheck: true,
        apiPort: DEFAULT_API_PORT,
        interface: undefined,
        nodeSelector: undefined,
        image: settings.image,
      },
    )
  })
  it('reports every bad value at once', () => {
    assert.throws(
      () => validateVipInput({vip: '10.0.0.300', vhid: '256', password: 'x'.repeat(20), nodeSelector: 'nope', namespace: 'Bad'}),
      (error: unknown) => {
        assert.ok(error instanceof InvalidInputError)
        assert.equal(error.exitCode, 2)
        assert.deepEqual(
          error.problems.map((p) => p.split(' ')[1]),
          ['--vip', '--password', '--namespace', '--vhid', '--node-selector'],
        )
        return true
      },
    )
  })
})
