import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEFAULT_HEAP_GROWING_PERCENT, DEFAULT_SEMI_SPACE_MB, DEFAULT_TRACED_SEMI_SPACE_MB, readHeapPolicy } from './heap-policy.ts';

const BIN = fileURLToPath(new URL('../bin/txmesh.mjs', import.meta.url));
const refuse = (message: string): Error => new RangeError(message);

describe('the coordinator heap policy', () => {
  it('grows the old space 50 % past the live heap and caps the semi-spaces at 4 MB by default, and takes an operator\'s values', () => {
    assert.equal(DEFAULT_HEAP_GROWING_PERCENT, 50);
    assert.equal(DEFAULT_SEMI_SPACE_MB, 4);
    assert.deepEqual(readHeapPolicy({}, refuse), { heapGrowingPercent: 50, semiSpaceMb: 4 });
    assert.deepEqual(readHeapPolicy({ TXMESH_HEAP_GROWING_PERCENT: ' 30 ', TXMESH_SEMI_SPACE_MB: '16' }, refuse), { heapGrowingPercent: 30, semiSpaceMb: 16 });
    assert.deepEqual(readHeapPolicy({ TXMESH_HEAP_GROWING_PERCENT: '0', TXMESH_SEMI_SPACE_MB: '0' }, refuse), { heapGrowingPercent: 0, semiSpaceMb: 0 });
    assert.deepEqual(readHeapPolicy({ TXMESH_HEAP_GROWING_PERCENT: '', TXMESH_SEMI_SPACE_MB: ' ' }, refuse), { heapGrowingPercent: 50, semiSpaceMb: 4 });
  });

  it('caps the semi-spaces at 8 MB when the coordinator exports traces, unless the operator set a size or the SDK is disabled', () => {
    assert.equal(DEFAULT_TRACED_SEMI_SPACE_MB, 8);
    assert.equal(readHeapPolicy({ OTEL_TRACES_EXPORTER: 'otlp' }, refuse).semiSpaceMb, 8);
    assert.equal(readHeapPolicy({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, refuse).semiSpaceMb, 8);
    assert.equal(readHeapPolicy({ OTEL_TRACES_EXPORTER: 'otlp', TXMESH_SEMI_SPACE_MB: '4' }, refuse).semiSpaceMb, 4);
    assert.equal(readHeapPolicy({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, refuse).semiSpaceMb, 4);
    assert.equal(readHeapPolicy({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_SDK_DISABLED: 'true' }, refuse).semiSpaceMb, 4);
  });

  it('refuses what is not a percentage from 0 to 1000', () => {
    for (const bad of ['-1', '1001', '2.5', 'fifty', '0x10']) {
      assert.throws(() => readHeapPolicy({ TXMESH_HEAP_GROWING_PERCENT: bad }, refuse), /TXMESH_HEAP_GROWING_PERCENT must be an integer from 0 to 1000/, bad);
    }
  });

  it('refuses a semi-space size V8 cannot hold at', () => {
    for (const bad of ['3', '32', '-4', '4.0', '4MB', '1e1']) {
      assert.throws(() => readHeapPolicy({ TXMESH_SEMI_SPACE_MB: bad }, refuse), /TXMESH_SEMI_SPACE_MB must be one of 0, 1, 2, 4, 8, 16 \(0: V8's own\)/, bad);
    }
  });

  for (const [name, value, message] of [
    ['TXMESH_HEAP_GROWING_PERCENT', 'lots', /TXMESH_HEAP_GROWING_PERCENT must be an integer from 0 to 1000, got "lots"/],
    ['TXMESH_SEMI_SPACE_MB', '5', /TXMESH_SEMI_SPACE_MB must be one of 0, 1, 2, 4, 8, 16 \(0: V8's own\), got "5"/],
  ] as const) {
    it(`stops \`txmesh coordinator\` at start, before it opens its log, when ${name} is wrong`, () => {
      const run = spawnSync(process.execPath, [BIN, 'coordinator', '--data', '/nonexistent/never-created', '--insecure'], { env: { ...process.env, [name]: value }, encoding: 'utf8', timeout: 30_000 });
      assert.equal(run.status, 2, run.stderr);
      assert.match(run.stderr, message);
    });
    // The sidecar reads the same policy (at concurrency 1000 V8's own sizing held it past 100 MB).
    it(`stops \`txmesh sidecar\` at start, before it opens its store, when ${name} is wrong`, () => {
      const args = [BIN, 'sidecar', '--service', 'inventory', '--service-url', 'http://127.0.0.1:9', '--coordinator', 'http://127.0.0.1:9', '--data', '/nonexistent/never-created', '--insecure'];
      const run = spawnSync(process.execPath, args, { env: { ...process.env, [name]: value }, encoding: 'utf8', timeout: 30_000 });
      assert.equal(run.status, 2, run.stderr);
      assert.match(run.stderr, message);
    });
  }
});
