import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LatencyHistogram } from './latency-histogram.ts';
import { ResourceMonitor } from './resource-monitor.ts';

describe('LatencyHistogram', () => {
  it('gives percentiles within a bucket width (about 9 %) without keeping samples', () => {
    const h = new LatencyHistogram(60_000, () => 0);
    for (let i = 1; i <= 1000; i++) h.record(i / 10); // 0.1 .. 100 ms, uniform
    const p50 = h.percentile(50)!;
    const p99 = h.percentile(99)!;
    assert.ok(p50 >= 50 && p50 <= 50 * 1.1, `p50 ${p50}`);
    assert.ok(p99 >= 99 && p99 <= 99 * 1.1, `p99 ${p99}`);
    assert.equal(h.count, 1000);
  });

  it('forgets periods older than the last two', () => {
    let now = 0;
    const h = new LatencyHistogram(1000, () => now);
    h.record(500);
    now = 1500;
    h.record(1);
    assert.ok(h.percentile(99)! >= 500, 'the previous period still counts');
    now = 2600;
    assert.ok(h.percentile(99)! < 2, 'two periods later the old sample is gone');
    now = 10_000;
    assert.equal(h.percentile(50), undefined);
  });

  it('keeps zero, negative and enormous latencies in its end buckets', () => {
    const h = new LatencyHistogram(60_000, () => 0);
    h.record(0);
    h.record(-1);
    h.record(1e12);
    assert.ok(h.percentile(1)! <= 0.02);
    assert.ok(h.percentile(100)! > 60_000);
  });
});

describe('ResourceMonitor', () => {
  it('merges its own latency and in-flight figures with the usage the service reported, dropping bad fields', () => {
    let now = 1000;
    const monitor = new ResourceMonitor(10_000, () => now);
    const ended = monitor.requestStarted();
    assert.equal(monitor.report().inFlight, 1);
    ended();
    ended();
    assert.equal(monitor.report().inFlight, 0, 'ending twice counts once');
    assert.equal(monitor.usageAgeMs(), Infinity);
    monitor.serviceUsage({ at: 900, cpuPercent: 42, cpuLimitCores: 2, rssBytes: 1e6, memoryLimitBytes: -5, eventLoopDelayMs: 'x' });
    now = 1200;
    const report = monitor.report();
    assert.equal(report.cpuPercent, 42);
    assert.equal(report.cpuLimitCores, 2);
    assert.equal(report.rssBytes, 1e6);
    assert.equal(report.memoryLimitBytes, undefined);
    assert.equal(report.eventLoopDelayMs, undefined);
    assert.equal(report.usageAt, 900);
    assert.ok(report.latencyP50Ms !== undefined && report.latencyP99Ms !== undefined);
    assert.equal(monitor.usageAgeMs(), 200);
  });
});
