import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RecentMap } from './recent-map.ts';

/** The same rule written the slow, obvious way: an array of [key, value] in setting order. */
function modelSet(model: [string, number][], limit: number, key: string, value: number): void {
  const at = model.findIndex(([k]) => k === key);
  if (at >= 0) model.splice(at, 1);
  model.push([key, value]);
  while (model.length > limit) model.shift();
}

describe('RecentMap', () => {
  it('keeps the most recently set entries up to its limit, a re-set key counting as newest', () => {
    const recent = new RecentMap<string, number>(3);
    recent.set('a', 1);
    recent.set('b', 2);
    recent.set('c', 3);
    recent.set('a', 4); // a is newest now: b goes first
    recent.set('d', 5);
    assert.equal(recent.size, 3);
    assert.equal(recent.get('b'), undefined);
    assert.equal(recent.get('a'), 4);
    assert.equal(recent.get('c'), 3);
    assert.equal(recent.get('d'), 5);
    recent.set('e', 6);
    assert.equal(recent.get('c'), undefined);
    assert.deepEqual([recent.get('a'), recent.get('d'), recent.get('e')], [4, 5, 6]);
  });

  it('agrees with the obvious model over a long run of new and re-set keys', () => {
    const limit = 50;
    const recent = new RecentMap<string, number>(limit);
    const model: [string, number][] = [];
    let seed = 7;
    const next = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (let i = 0; i < 20_000; i++) {
      // Mostly new keys, often one of the last few hundred again (some already evicted).
      const key = next() % 3 === 0 ? `k${Math.max(0, i - (next() % 300))}` : `k${i}`;
      recent.set(key, i);
      modelSet(model, limit, key, i);
      if (i % 997 === 0 || i > 19_900) {
        assert.equal(recent.size, model.length);
        for (const [k, v] of model) assert.equal(recent.get(k), v, `${k} at ${i}`);
      }
    }
    for (let i = 0; i < 20_000; i++) {
      const expected = model.find(([k]) => k === `k${i}`)?.[1];
      assert.equal(recent.get(`k${i}`), expected);
    }
  });

  it('refuses a limit that is not a positive integer', () => {
    assert.throws(() => new RecentMap(0), RangeError);
    assert.throws(() => new RecentMap(1.5), RangeError);
  });
});
