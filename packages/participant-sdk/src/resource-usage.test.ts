import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CgroupReader, parseCfsQuota, parseCpuMax, parseCpuStatUsageMicros, parseMemoryLimit, parseProcSelfCgroup } from './cgroup.ts';
import { ResourceUsageMeter } from './resource-usage.ts';

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A fixture tree: { 'relative/path': 'content' } under a fresh temp folder. */
function fixture(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'txmesh-cgroup-'));
  dirs.push(root);
  for (const [path, content] of Object.entries(files)) {
    const full = join(root, path);
    mkdirSync(join(full, '..'), { recursive: true });
    writeFileSync(full, content);
  }
  return root;
}

describe('cgroup parsing', () => {
  it('reads cpu.max quota/period as cores and "max" as no limit', () => {
    assert.equal(parseCpuMax('150000 100000\n'), 1.5);
    assert.equal(parseCpuMax('max 100000\n'), undefined);
    assert.equal(parseCpuMax('50000\n'), 0.5, 'period defaults to 100 ms');
    assert.equal(parseCpuMax('garbage'), undefined);
  });

  it('reads v1 cfs quota (-1 = none) and memory limits ("max" and the v1 huge value = none)', () => {
    assert.equal(parseCfsQuota('200000\n', '100000\n'), 2);
    assert.equal(parseCfsQuota('-1\n', '100000\n'), undefined);
    assert.equal(parseMemoryLimit('536870912\n'), 536870912);
    assert.equal(parseMemoryLimit('max\n'), undefined);
    assert.equal(parseMemoryLimit('9223372036854771712\n'), undefined);
  });

  it('reads usage_usec from cpu.stat and the controllers of /proc/self/cgroup', () => {
    assert.equal(parseCpuStatUsageMicros('usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n'), 123456);
    assert.equal(parseCpuStatUsageMicros('nr_periods 0\n'), undefined);
    const v1 = parseProcSelfCgroup('4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n');
    assert.equal(v1.unified, '/');
    assert.equal(v1.v1.get('memory'), '/docker/abc');
    assert.equal(v1.v1.get('cpuacct'), '/docker/abc');
    const v2 = parseProcSelfCgroup('0::/kubepods/pod1/ctr\n');
    assert.equal(v2.unified, '/kubepods/pod1/ctr');
    assert.equal(v2.v1.size, 0);
  });
});

describe('CgroupReader on fixture folders', () => {
  it('cgroup v2 inside a container (own path "/"): quota, memory limit and CPU usage', () => {
    const root = fixture({ 'cpu.max': '250000 100000\n', 'memory.max': '1073741824\n', 'cpu.stat': 'usage_usec 5000000\n' });
    const proc = fixture({ cgroup: '0::/\n' });
    const reader = new CgroupReader({ root, procSelfCgroup: join(proc, 'cgroup') });
    assert.equal(reader.version, 2);
    assert.deepEqual(reader.limits(), { version: 2, cpuLimitCores: 2.5, memoryLimitBytes: 1073741824 });
    assert.equal(reader.cpuUsageMicros(), 5_000_000);
  });

  it('cgroup v2 on a host: the files of the own sub-folder, and "max" as no limit', () => {
    const root = fixture({ 'svc.slice/cpu.max': 'max 100000\n', 'svc.slice/memory.max': 'max\n', 'svc.slice/cpu.stat': 'usage_usec 42\n' });
    const proc = fixture({ cgroup: '0::/svc.slice\n' });
    const reader = new CgroupReader({ root, procSelfCgroup: join(proc, 'cgroup') });
    assert.deepEqual(reader.limits(), { version: 2, cpuLimitCores: undefined, memoryLimitBytes: undefined });
    assert.equal(reader.cpuUsageMicros(), 42);
  });

  it('cgroup v1 with a joined cpu,cpuacct mount', () => {
    const root = fixture({
      'cpu,cpuacct/cpu.cfs_quota_us': '50000\n',
      'cpu,cpuacct/cpu.cfs_period_us': '100000\n',
      'cpu,cpuacct/cpuacct.usage': '3000000000\n',
      'memory/memory.limit_in_bytes': '268435456\n',
    });
    const proc = fixture({ cgroup: '3:memory:/\n2:cpu,cpuacct:/\n0::/\n' });
    const reader = new CgroupReader({ root, procSelfCgroup: join(proc, 'cgroup') });
    assert.equal(reader.version, 1);
    assert.deepEqual(reader.limits(), { version: 1, cpuLimitCores: 0.5, memoryLimitBytes: 268435456 });
    assert.equal(reader.cpuUsageMicros(), 3_000_000);
  });

  it('no cgroup files at all: no version, no limits', () => {
    const reader = new CgroupReader({ root: fixture({}), procSelfCgroup: '/nonexistent/cgroup' });
    assert.deepEqual(reader.limits(), { version: undefined, cpuLimitCores: undefined, memoryLimitBytes: undefined });
    assert.equal(reader.cpuUsageMicros(), undefined);
  });
});

describe('ResourceUsageMeter', () => {
  it('reports CPU as a share of the cgroup quota, using the cgroup counter, plus the memory limit', () => {
    const root = fixture({ 'cpu.max': '50000 100000\n', 'memory.max': '1000000\n', 'cpu.stat': 'usage_usec 1000000\n' });
    const proc = fixture({ cgroup: '0::/\n' });
    let now = 10_000;
    const meter = new ResourceUsageMeter({ cgroup: { root, procSelfCgroup: join(proc, 'cgroup') }, now: () => now, rssBytes: () => 4096, minIntervalMs: 100 });
    try {
      // 1 s of wall time, 0.25 s of CPU under a 0.5-core quota: 50 %.
      writeFileSync(join(root, 'cpu.stat'), 'usage_usec 1250000\n');
      now += 1000;
      const usage = meter.sample();
      assert.equal(usage.cpuLimitCores, 0.5);
      assert.equal(usage.cpuPercent, 50);
      assert.equal(usage.memoryLimitBytes, 1_000_000);
      assert.equal(usage.rssBytes, 4096);
      // Within minIntervalMs the same figures come back without reading anything.
      now += 10;
      assert.equal(meter.sample(), usage);
    } finally {
      meter.close();
    }
  });

  it('outside a container uses the process CPU time against the available cores', () => {
    let now = 0;
    let cpu = 0;
    const meter = new ResourceUsageMeter({ cgroup: { root: fixture({}), procSelfCgroup: '/nonexistent' }, now: () => now, processCpuMicros: () => cpu, cores: 4 });
    try {
      now = 1000;
      cpu = 2_000_000; // two cores busy for one second out of four
      const usage = meter.sample();
      assert.equal(usage.cpuLimitCores, 4);
      assert.equal(usage.cpuPercent, 50);
      assert.equal(usage.memoryLimitBytes, undefined);
    } finally {
      meter.close();
    }
  });
});
