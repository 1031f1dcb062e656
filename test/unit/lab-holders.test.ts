import assert from 'node:assert/strict'
import {describe, it} from 'node:test'
import {holdersSeen} from '../../lab/holders.js'

const at = (...sets: string[][]) => sets.map((holders, i) => ({t: i * 100, holders}))

describe('holdersSeen', () => {
  it("counts a handover's overlap as two holders but not as two promotions, and counts the move", () => {
    const seen = holdersSeen(at(['a'], ['a'], ['a', 'b'], ['a', 'b'], ['b'], ['b']))
    assert.equal(seen.doubleMs, 200)
    assert.equal(seen.doubleSamples, 2)
    assert.deepEqual(seen.promotedTogether, [])
    assert.equal(seen.moves, 1)
    assert.equal(seen.zeroAfterFirst, 0)
  })

  it('names two backups that took the VIP together after the holder went', () => {
    const seen = holdersSeen(at(['a'], [], ['b', 'c'], ['b']))
    assert.deepEqual(seen.promotedTogether, [['b', 'c']])
    assert.equal(seen.zeroAfterFirst, 1)
    assert.equal(seen.moves, 1)
  })

  it('counts two holders still there at the last sample', () => {
    const seen = holdersSeen(at(['a'], ['a', 'b'], ['a', 'b'], ['a', 'b']))
    assert.equal(seen.doubleMs, 200)
    assert.equal(seen.moves, 0)
  })

  it('sees no move and no gap while one node holds the VIP throughout', () => {
    const seen = holdersSeen(at([], ['a'], ['a'], ['a']))
    assert.deepEqual([seen.moves, seen.doubleMs, seen.doubleSamples, seen.zeroAfterFirst], [0, 0, 0, 0])
  })
})
