import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { applyHeapPolicy, DEFAULT_HEAP_GROWING_PERCENT } from './heap-policy.ts';

const BIN = fileURLToPath(new URL('../bin/txmesh.mjs', import.meta.url));
const refuse = (message: string): Error => new RangeError(message);

describe('the coordinator heap policy', () => {
  it('leaves V8\'s own factor by default or with 0, and sets an operator\'s percentage', () => {
    assert.equal(DEFAULT_HEAP_GROWING_PERCENT, 0);
    assert.equal(applyHeapPolicy({}, refuse), 0);
    assert.equal(applyHeapPolicy({ TXMESH_HEAP_GROWING_PERCENT: ' 30 ' }, refuse), 30);
    assert.equal(applyHeapPolicy({ TXMESH_HEAP_GROWING_PERCENT: '0' }, refuse), 0);
  });

  it('refuses what is not a percentage from 0 to 1000', () => {
    for (const bad of ['-1', '1001', '2.5', 'fifty', '0x10']) {
      assert.throws(() => applyHeapPolicy({ TXMESH_HEAP_GROWING_PERCENT: bad }, refuse), /TXMESH_HEAP_GROWING_PERCENT must be an integer from 0 to 1000/, bad);
    }
  });

  it('stops `txmesh coordinator` at start, before it opens its log, when the variable is wrong', () => {
    const run = spawnSync(process.execPath, [BIN, 'coordinator', '--data', '/nonexistent/never-created', '--insecure'], { env: { ...process.env, TXMESH_HEAP_GROWING_PERCENT: 'lots' }, encoding: 'utf8', timeout: 30_000 });
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /TXMESH_HEAP_GROWING_PERCENT must be an integer from 0 to 1000, got "lots"/);
  });
});
