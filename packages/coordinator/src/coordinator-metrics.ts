/**
 * The coordinator's metrics, through @opentelemetry/api: whatever MeterProvider the process registered
 * (the `txmesh` command registers one with a Prometheus exporter) or the api's no-op meter. Counters and
 * histograms are recorded where things happen; gauges are read from the manager when a reader collects.
 */
import { metrics, type Attributes, type BatchObservableCallback, type Counter, type Histogram, type Meter, type Observable } from '@opentelemetry/api';
import type { ServiceView, TransactionResult } from '@txmesh/protocol';

/** Prometheus names (OTel instrument names are the same; the exporter keeps them as they are). */
export const CoordinatorMetricNames = {
  TRANSACTIONS: 'txmesh_transactions_total',
  TRANSACTION_DURATION: 'txmesh_transaction_duration_seconds',
  PREPARE_DURATION: 'txmesh_prepare_duration_seconds',
  BRANCHES_IN_DOUBT: 'txmesh_branches_in_doubt',
  LOG_FORCE_DURATION: 'txmesh_decision_log_force_duration_seconds',
  LOG_RECORDS: 'txmesh_decision_log_records_total',
  BATCH_ITEMS: 'txmesh_batch_items',
  SCHEDULER_LIMIT: 'txmesh_scheduler_limit',
  SCHEDULER_IN_FLIGHT: 'txmesh_scheduler_in_flight',
  SCHEDULER_QUEUED: 'txmesh_scheduler_queued',
  OVERLOAD_REFUSALS: 'txmesh_overload_refusals_total',
  SERVICE_CPU: 'txmesh_service_cpu_percent',
  SERVICE_MEMORY: 'txmesh_service_memory_bytes',
  SERVICE_LATENCY_P99: 'txmesh_service_latency_p99_seconds',
} as const;

/** Bucket bounds in seconds for request-like durations (1 ms … 10 s). */
export const DURATION_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** An fsync of a group: tens of microseconds on tmpfs to tens of milliseconds on a busy disk. */
const FORCE_BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
/** Distinct abort reasons given their own series; further ones are counted as OTHER. */
const MAX_REASONS = 256;
const BATCH_ITEM_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/** What the gauges read, each time a reader collects. */
export interface CoordinatorGaugeSource {
  readonly shard: number;
  listServices(): ServiceView[];
  inDoubtCount(): number;
  refusedOverloaded(): number;
}

export class CoordinatorMetrics {
  readonly #transactions: Counter;
  readonly #duration: Histogram;
  readonly #prepareDuration: Histogram;
  readonly #forceDuration: Histogram;
  readonly #logRecords: Counter;
  readonly #batchItems: Histogram;
  readonly #meter: Meter;
  readonly #observables: Observable[];
  readonly #observe: BatchObservableCallback;
  /** Attribute sets by outcome (and reason, for the counter), made once: recording allocates nothing after warm-up. */
  readonly #outcomeAttributes = new Map<string, { counted: Attributes; timed: Attributes }>();
  readonly #shardAttributes: Attributes;

  constructor(source: CoordinatorGaugeSource, meter: Meter = metrics.getMeter('@txmesh/coordinator')) {
    this.#meter = meter;
    this.#shardAttributes = { shard: String(source.shard) };
    this.#transactions = meter.createCounter(CoordinatorMetricNames.TRANSACTIONS, { description: 'Transactions decided, by outcome and abort reason' });
    this.#duration = meter.createHistogram(CoordinatorMetricNames.TRANSACTION_DURATION, {
      description: 'From arrival to decision, by outcome',
      unit: 's',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS_SECONDS },
    });
    this.#prepareDuration = meter.createHistogram(CoordinatorMetricNames.PREPARE_DURATION, {
      description: 'Round trip of a batch carrying prepares to a service, per prepare in it',
      unit: 's',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS_SECONDS },
    });
    this.#forceDuration = meter.createHistogram(CoordinatorMetricNames.LOG_FORCE_DURATION, {
      description: 'Write and fsync of one group of decision records',
      unit: 's',
      advice: { explicitBucketBoundaries: FORCE_BUCKETS_SECONDS },
    });
    this.#logRecords = meter.createCounter(CoordinatorMetricNames.LOG_RECORDS, { description: 'Decision records forced to the log' });
    this.#batchItems = meter.createHistogram(CoordinatorMetricNames.BATCH_ITEMS, {
      description: 'Items per batch request to a sidecar, by service',
      advice: { explicitBucketBoundaries: BATCH_ITEM_BUCKETS },
    });
    const inDoubt = meter.createObservableGauge(CoordinatorMetricNames.BRANCHES_IN_DOUBT, { description: 'Branches whose commit/rollback is unacknowledged past the in-doubt threshold' });
    const limit = meter.createObservableGauge(CoordinatorMetricNames.SCHEDULER_LIMIT, { description: 'Prepares the scheduler lets be in flight to a service at once' });
    const inFlight = meter.createObservableGauge(CoordinatorMetricNames.SCHEDULER_IN_FLIGHT, { description: 'Prepares in flight to a service' });
    const queued = meter.createObservableGauge(CoordinatorMetricNames.SCHEDULER_QUEUED, { description: 'Prepares waiting for a slot of a service lane' });
    const refusals = meter.createObservableCounter(CoordinatorMetricNames.OVERLOAD_REFUSALS, { description: 'New transactions refused with TXM_OVERLOADED' });
    const cpu = meter.createObservableGauge(CoordinatorMetricNames.SERVICE_CPU, { description: 'A service\'s CPU use in percent of what it may use, as last reported by its sidecar' });
    const memory = meter.createObservableGauge(CoordinatorMetricNames.SERVICE_MEMORY, { description: 'A service\'s resident memory, as last reported', unit: 'By' });
    const latency = meter.createObservableGauge(CoordinatorMetricNames.SERVICE_LATENCY_P99, { description: 'p99 latency of requests to a service seen by its sidecar', unit: 's' });
    this.#observables = [inDoubt, limit, inFlight, queued, refusals, cpu, memory, latency];
    this.#observe = (result) => {
      result.observe(inDoubt, source.inDoubtCount(), this.#shardAttributes);
      result.observe(refusals, source.refusedOverloaded(), this.#shardAttributes);
      for (const view of source.listServices()) {
        const attributes = { service: view.service };
        if (view.scheduler) {
          result.observe(limit, view.scheduler.limit, attributes);
          result.observe(inFlight, view.scheduler.inFlight, attributes);
          result.observe(queued, view.scheduler.queued, attributes);
        }
        const report = view.report;
        if (report?.cpuPercent !== undefined) result.observe(cpu, report.cpuPercent, attributes);
        if (report?.rssBytes !== undefined) result.observe(memory, report.rssBytes, attributes);
        if (report?.latencyP99Ms !== undefined) result.observe(latency, report.latencyP99Ms / 1000, attributes);
      }
    };
    meter.addBatchObservableCallback(this.#observe, this.#observables);
  }

  /** One decided transaction, as its client heard it. */
  recordOutcome(result: TransactionResult): void {
    // Reasons come from services: past a bound, new ones are counted together rather than growing the series.
    const reason = this.#outcomeAttributes.size < MAX_REASONS || result.reason === undefined ? (result.reason ?? '') : 'OTHER';
    const key = `${result.outcome}\u0000${reason}`;
    let attributes = this.#outcomeAttributes.get(key);
    if (attributes === undefined) {
      const timed = { outcome: result.outcome };
      attributes = { timed, counted: result.reason === undefined ? timed : { outcome: result.outcome, reason } };
      if (this.#outcomeAttributes.size >= MAX_REASONS) return this.#record(attributes, result.durationMs);
      this.#outcomeAttributes.set(key, attributes);
    }
    this.#record(attributes, result.durationMs);
  }

  #record(attributes: { counted: Attributes; timed: Attributes }, durationMs: number): void {
    this.#transactions.add(1, attributes.counted);
    this.#duration.record(durationMs / 1000, attributes.timed);
  }

  /** One batch request to a sidecar and how long its answer took. */
  recordBatch(service: string, items: number, prepares: number, seconds: number): void {
    const attributes = { service };
    this.#batchItems.record(items, attributes);
    for (let i = 0; i < prepares; i++) this.#prepareDuration.record(seconds, attributes);
  }

  /** A group of decision records written and forced (GroupCommitOptions.onForced). */
  readonly recordForced = (seconds: number, records: number): void => {
    this.#forceDuration.record(seconds, this.#shardAttributes);
    this.#logRecords.add(records, this.#shardAttributes);
  };

  close(): void {
    this.#meter.removeBatchObservableCallback(this.#observe, this.#observables);
  }
}
