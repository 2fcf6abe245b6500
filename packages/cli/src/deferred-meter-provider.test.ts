import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MeterProvider, MetricReader, type DataPoint, type Histogram } from '@opentelemetry/sdk-metrics';
import { DeferredMeterProvider, MAX_EARLY_MEASUREMENTS } from './deferred-meter-provider.ts';

/** Collects on demand, as a Prometheus scrape does. */
class ScrapeReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

async function points(reader: ScrapeReader): Promise<Map<string, DataPoint<number | Histogram>[]>> {
  const { resourceMetrics } = await reader.collect();
  const byName = new Map<string, DataPoint<number | Histogram>[]>();
  for (const scope of resourceMetrics.scopeMetrics) for (const metric of scope.metrics) byName.set(metric.descriptor.name, metric.dataPoints as DataPoint<number | Histogram>[]);
  return byName;
}

function sdk(): { provider: MeterProvider; reader: ScrapeReader } {
  const reader = new ScrapeReader();
  return { provider: new MeterProvider({ readers: [reader] }), reader };
}

describe('deferred meter provider', () => {
  it('replays what was measured before the SDK attached, and forwards what comes after', async () => {
    const deferred = new DeferredMeterProvider();
    const meter = deferred.getMeter('test');
    const counter = meter.createCounter('decided_total');
    const histogram = meter.createHistogram('duration_seconds');
    counter.add(2, { outcome: 'committed' });
    histogram.record(0.5);
    const { provider, reader } = sdk();
    assert.equal(deferred.attach(provider), 0);
    counter.add(3, { outcome: 'committed' });
    counter.add(1, { outcome: 'aborted' });
    histogram.record(1.5);
    // An instrument made after the SDK attached goes straight to it.
    deferred.getMeter('late').createCounter('late_total').add(7);
    const byName = await points(reader);
    const decided = byName.get('decided_total')!;
    assert.equal(decided.find((p) => p.attributes.outcome === 'committed')?.value, 5);
    assert.equal(decided.find((p) => p.attributes.outcome === 'aborted')?.value, 1);
    const duration = byName.get('duration_seconds')![0]!.value as Histogram;
    assert.equal(duration.count, 2);
    assert.equal(duration.sum, 2);
    assert.equal(byName.get('late_total')![0]!.value, 7);
    await provider.shutdown();
  });

  it('hands observable and batch callbacks over, translating batch observations to the SDK instruments', async () => {
    const deferred = new DeferredMeterProvider();
    const meter = deferred.getMeter('test');
    const held = meter.createObservableGauge('locks_held');
    held.addCallback((result) => result.observe(4, { service: 'inventory' }));
    const limit = meter.createObservableGauge('scheduler_limit');
    const queued = meter.createObservableGauge('scheduler_queued');
    let batchCalls = 0;
    const batch = (result: { observe(o: typeof limit, v: number, a?: Record<string, string>): void }): void => {
      batchCalls++;
      result.observe(limit, 8, { service: 'payment' });
      result.observe(queued, 3, { service: 'payment' });
    };
    meter.addBatchObservableCallback(batch, [limit, queued]);
    const { provider, reader } = sdk();
    deferred.attach(provider);
    const byName = await points(reader);
    assert.equal(byName.get('locks_held')![0]!.value, 4);
    assert.equal(byName.get('scheduler_limit')![0]!.value, 8);
    assert.equal(byName.get('scheduler_queued')![0]!.value, 3);
    // Removed after the SDK attached: the SDK stops calling it.
    meter.removeBatchObservableCallback(batch, [limit, queued]);
    await points(reader);
    assert.equal(batchCalls, 1);
    await provider.shutdown();
  });

  it('keeps a bounded number of early measurements and says how many it dropped', async () => {
    const deferred = new DeferredMeterProvider();
    const counter = deferred.getMeter('test').createCounter('early_total');
    for (let i = 0; i < MAX_EARLY_MEASUREMENTS + 5; i++) counter.add(1);
    const { provider, reader } = sdk();
    assert.equal(deferred.attach(provider), 5);
    assert.equal((await points(reader)).get('early_total')![0]!.value, MAX_EARLY_MEASUREMENTS);
    await provider.shutdown();
  });
});
