// agent/env.ts is what the CLI side renders the DaemonSet from; the scripts are what runs. They must agree.
import assert from 'node:assert/strict'
import {readdirSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, it} from 'node:test'
import {AGENT_ENV} from '../../agent/env.js'
import {agentDir} from '../../lab/agent-lab.js'

const scripts = readdirSync(agentDir)
  .filter((f) => f.endsWith('.sh'))
  .map((f) => readFileSync(join(agentDir, f), 'utf8'))
  .join('\n')

describe('agent environment contract', () => {
  it('lists exactly the KARP_* variables the scripts read', () => {
    const used = new Set(scripts.match(/KARP_[A-Z_]+/g))
    assert.deepEqual([...used].sort(), AGENT_ENV.map((v) => v.name).sort())
  })

  it('states the defaults the scripts apply', () => {
    const defaults = new Map([...scripts.matchAll(/^(KARP_[A-Z_]+)=\$\{\1:-([^}]*)\}$/gm)].map((m) => [m[1], m[2]]))
    for (const v of AGENT_ENV) {
      const applied = defaults.get(v.name)
      if (v.name === 'KARP_HANDOVER_TIMEOUT') {
        assert.equal(applied, '$((KARP_ADVBASE * (KARP_DEADRATIO + 4) + 4))')
      } else if (v.name === 'KARP_VIP_LIFETIME') {
        // The longest of the dead interval, the drain and a health check with its interval, plus 1 s.
        assert.equal(applied, '$((lease_floor / 100 + 1))')
      } else if (v.default !== undefined) {
        assert.equal(applied, v.default, v.name)
      } else {
        assert.ok(applied === undefined || applied === '', `${v.name} has a default in the scripts: ${applied}`)
      }
    }
  })
})
