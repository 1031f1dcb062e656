import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import type {V1DaemonSet} from '@kubernetes/client-node'

import {validateVipInput} from '../../src/lib/config/vip-config.js'
import {agentSelectsNode, podSpecSelectsNode} from '../../src/lib/manifests/node-selection.js'
import {renderManifests} from '../../src/lib/manifests/render.js'

const CONTROL_PLANE = 'node-role.kubernetes.io/control-plane'

/** The node-selection part of install's flags, as validateVipInput turns --node-selector into settings. */
const SETTINGS_BY_FLAG: Array<string | undefined> = [
  undefined,
  'karp=enabled',
  `${CONTROL_PLANE}=`,
  'example.com/vip-pool=a',
  'node-role.kubernetes.io/controlplane=true',
]

/** Nodes of every distribution's control-plane labels, workers, and nodes carrying the selector labels or near misses. */
const NODE_LABELS: Array<Record<string, string>> = [
  {},
  {[CONTROL_PLANE]: ''},
  {[CONTROL_PLANE]: 'true', 'node-role.kubernetes.io/master': 'true'},
  {'node-role.kubernetes.io/master': ''},
  {'node-role.kubernetes.io/controlplane': 'true'},
  {'node-role.kubernetes.io/controlplane': 'false'},
  {'node-role.kubernetes.io/worker': 'true'},
  {karp: 'enabled'},
  {karp: 'disabled', [CONTROL_PLANE]: ''},
  {karp: 'enabled', 'node-role.kubernetes.io/worker': 'true'},
  {'example.com/vip-pool': 'a'},
  {'example.com/vip-pool': 'b', 'node-role.kubernetes.io/master': ''},
]

function renderedPodSpec(nodeSelector: string | undefined) {
  const {settings} = validateVipInput({nodeSelector})
  const ds = renderManifests({...settings, vip: '192.168.1.250', password: 's3cret'}).find(
    (o) => o.kind === 'DaemonSet',
  ) as unknown as V1DaemonSet
  return {settings, spec: ds.spec?.template.spec ?? {containers: []}}
}

describe('agentSelectsNode', () => {
  for (const flag of SETTINGS_BY_FLAG) {
    it(`picks the nodes the rendered DaemonSet runs on, ${flag === undefined ? 'by default' : `with --node-selector ${flag}`}`, () => {
      const {settings, spec} = renderedPodSpec(flag)
      const judged = NODE_LABELS.map((labels) => [agentSelectsNode(settings, labels), podSpecSelectsNode(spec, labels)])
      for (const [i, [direct, rendered]] of judged.entries()) assert.equal(direct, rendered, JSON.stringify(NODE_LABELS[i]))
      // Each selection keeps some of the nodes and leaves others out, so agreement is not all true or all false.
      assert.ok(judged.some(([direct]) => direct) && judged.some(([direct]) => !direct), `${flag}: ${JSON.stringify(judged)}`)
    })
  }
})
