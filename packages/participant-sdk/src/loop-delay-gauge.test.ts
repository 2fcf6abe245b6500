import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LoopDelayGauge } from './loop-delay-gauge.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const stall = (ms: number): void => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

test('loop delay gauge: a mostly idle loop runs no 10 ms histogram, and a stall over its check is still reported', async (t) => {
  const gauge = new LoopDelayGauge({ checkEveryMs: 20, utilization: () => 0.1 });
  t.after(() => gauge.close());
  await sleep(70);
  assert.equal(gauge.monitoring, false);
  gauge.take();
  stall(80); // covers at least one check: it fires about 60 ms late
  await sleep(5);
  const delay = gauge.take();
  assert.ok(delay !== undefined && delay >= 50, `the stall was reported (${delay} ms)`);
  assert.equal(gauge.take(), undefined, 'each take covers the interval since the previous one');
});

test('loop delay gauge: a busy loop runs the 10 ms histogram, which sees a stall; idle again, it stops', async (t) => {
  let share = 0.9;
  // Checks 200 ms apart, so the stall below falls between two of them: only the histogram can see it.
  const gauge = new LoopDelayGauge({ checkEveryMs: 200, utilization: () => share });
  t.after(() => gauge.close());
  await sleep(230);
  assert.equal(gauge.monitoring, true);
  gauge.take();
  // A histogram's reset forgets its last tick, so the interval right after it is never recorded
  // (node:perf_hooks): let two ticks pass, as they do after a report.
  await sleep(25);
  stall(70);
  await sleep(15);
  const delay = gauge.take();
  assert.ok(delay !== undefined && delay >= 50, `the stall was reported (${delay} ms)`);
  share = 0.05;
  await sleep(220);
  assert.equal(gauge.monitoring, false);
});
