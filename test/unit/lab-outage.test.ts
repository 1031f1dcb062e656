import assert from 'node:assert/strict'
import {describe, it} from 'node:test'
import {longestOutage, outages, parseProbes} from '../../lab/outage.js'

describe('outages from probe lines', () => {
  it('counts from the good probe before the failures to the good probe after them', () => {
    const probes = parseProbes(['1000 200', '1050 200', '1100 -', '1150 503', '1200 -', '1250 200', '1300 200'].join('\n'))
    assert.deepEqual(outages(probes), [{from: 1050, to: 1250, ms: 200, failed: 3}])
  })

  it('orders overlapping probes by their start and reads node names as answers', () => {
    const probes = parseProbes(['1100 node2', '1000 node1', '1050 -', 'garbage', ''].join('\n'))
    assert.deepEqual(
      probes.map((p) => [p.t, p.ok]),
      [
        [1000, true],
        [1050, false],
        [1100, true],
      ],
    )
    assert.equal(longestOutage(probes), 100)
  })

  it('reports an outage still open at the end, and none for a clean run', () => {
    assert.deepEqual(outages(parseProbes('1000 200\n1050 -\n1100 -')), [{from: 1000, to: 1100, ms: 100, failed: 2}])
    assert.equal(longestOutage(parseProbes('1000 200\n1050 200')), 0)
  })

  it('limits the longest outage to a window', () => {
    const probes = parseProbes(['1000 200', '1050 -', '1300 200', '2000 200', '2050 -', '2100 200'].join('\n'))
    assert.equal(longestOutage(probes), 300)
    assert.equal(longestOutage(probes, 1900), 100)
  })
})
