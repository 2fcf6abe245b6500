import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { capYoungGeneration, growthFactorToward } from './young-generation-cap.ts';

const CAP_MODULE = new URL('./young-generation-cap.js', import.meta.url).href;

/**
 * A fresh process that keeps a sliding window of recent objects alive (survivors make V8 grow its young
 * generation), with or without a cap, and prints the largest semi-space it saw, in MB.
 */
function largestSemiSpaceMb(capMb: number | undefined): number {
  const script = `
    import { getHeapSpaceStatistics } from 'node:v8';
    const { capYoungGeneration } = await import(${JSON.stringify(CAP_MODULE)});
    ${capMb === undefined ? '' : `capYoungGeneration(${capMb});`}
    const semiMb = () => { const s = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space'); return (s.space_used_size + s.space_available_size) / 1048576; };
    let largest = semiMb();
    const window = new Array(20000);
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 20000; i++) {
        window[i] = { round, i, payload: [round, i, 'x' + i] };
        // A loop turn now and then, as a shard's requests give: the collections are reported between turns.
        if (i % 2000 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      largest = Math.max(largest, semiMb());
    }
    process.stdout.write(String(largest));
  `;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(run.status, 0, run.stderr);
  return Number(run.stdout);
}

describe('the young generation cap', () => {
  it('holds the semi-spaces at the cap where V8 alone grows them further', () => {
    const free = largestSemiSpaceMb(undefined);
    const capped = largestSemiSpaceMb(2);
    assert.ok(free >= 8, `without a cap V8 should grow its semi-spaces past 2 MB under this load (saw ${free} MB)`);
    assert.ok(capped <= 2, `capped at 2 MB, the semi-spaces reached ${capped} MB`);
    assert.ok(capped > 1.5, `the cap should let V8 grow to it (saw ${capped} MB)`);
  });

  it('sets the factor whose next growth lands on the cap', () => {
    const MB = 1024 * 1024;
    assert.equal(growthFactorToward(4 * MB, 1 * MB), 4);
    assert.equal(growthFactorToward(16 * MB, 1 * MB), 16);
    assert.equal(growthFactorToward(4 * MB, 2 * MB), 2);
    assert.equal(growthFactorToward(4 * MB, 4 * MB), 1);
    assert.equal(growthFactorToward(4 * MB, 16 * MB), 1);
    assert.equal(growthFactorToward(4 * MB, 0), 2);
  });

  it('refuses a size that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) assert.throws(() => capYoungGeneration(bad), RangeError);
  });
});
