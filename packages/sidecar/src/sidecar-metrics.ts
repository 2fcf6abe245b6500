/**
 * The sidecar's metrics, through @opentelemetry/api (the process's MeterProvider, or the no-op meter):
 * prepared records it holds and the duration of the service traffic it proxies.
 */
import { metrics, type Attributes, type BatchObservableCallback, type Histogram, type Meter, type Observable } from '@opentelemetry/api';

export const SidecarMetricNames = {
  PREPARED_RECORDS: 'txmesh_sidecar_prepared_records',
  PROXY_DURATION: 'txmesh_proxy_request_duration_seconds',
  BATCH_ITEMS_RECEIVED: 'txmesh_sidecar_batch_items_received_total',
} as const;

const PROXY_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class SidecarMetrics {
  readonly #meter: Meter;
  readonly #proxyDuration: Histogram;
  readonly #itemsReceived: Observable;
  readonly #prepared: Observable;
  readonly #observe: BatchObservableCallback;
  readonly #attributes: Attributes;

  constructor(service: string, source: { preparedRecords(): number; itemsReceived(): number }, meter: Meter = metrics.getMeter('@txmesh/sidecar')) {
    this.#meter = meter;
    this.#attributes = { service };
    this.#proxyDuration = meter.createHistogram(SidecarMetricNames.PROXY_DURATION, {
      description: 'Ordinary requests proxied to the service, from arrival to the end of the answer',
      unit: 's',
      advice: { explicitBucketBoundaries: PROXY_BUCKETS_SECONDS },
    });
    this.#prepared = meter.createObservableGauge(SidecarMetricNames.PREPARED_RECORDS, { description: 'Branches prepared at this service and not yet decided (durable records)' });
    this.#itemsReceived = meter.createObservableCounter(SidecarMetricNames.BATCH_ITEMS_RECEIVED, { description: 'Prepare/commit/rollback items received from coordinators' });
    this.#observe = (result) => {
      result.observe(this.#prepared, source.preparedRecords(), this.#attributes);
      result.observe(this.#itemsReceived, source.itemsReceived(), this.#attributes);
    };
    meter.addBatchObservableCallback(this.#observe, [this.#prepared, this.#itemsReceived]);
  }

  /** Call when a proxied request starts; the returned function when its answer has ended. */
  proxyStarted(): () => void {
    const started = performance.now();
    return () => this.#proxyDuration.record((performance.now() - started) / 1000, this.#attributes);
  }

  close(): void {
    this.#meter.removeBatchObservableCallback(this.#observe, [this.#prepared, this.#itemsReceived]);
  }
}
