import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CallDeadline } from './call-deadline.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test('call deadline: what the transport registered runs once the bound passes, at once when registered late, never after clear', async () => {
  const ended: string[] = [];
  const passing = new CallDeadline(10);
  passing.onPass(() => ended.push('registered before'));
  assert.equal(passing.passed, false);
  await sleep(30);
  assert.equal(passing.passed, true);
  passing.onPass(() => ended.push('registered after'));
  assert.deepEqual(ended, ['registered before', 'registered after']);

  const answered = new CallDeadline(10);
  answered.onPass(() => ended.push('cleared'));
  answered.clear();
  await sleep(30);
  assert.equal(answered.passed, false, 'a cleared deadline never passes');
  assert.deepEqual(ended, ['registered before', 'registered after']);
});
