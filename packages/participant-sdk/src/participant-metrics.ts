/**
 * A participant's metrics, in the MeterProvider the service registered (or the api's no-op meter):
 * business-key locks held now and lock waits (a prepare queued behind another transaction's lock).
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { metrics, type Attributes, type BatchObservableCallback, type Counter, type Meter, type ObservableGauge } from '@opentelemetry/api';
import { lockWaitChannel, type LockWaitEvent } from './lock-manager.ts';

export const ParticipantMetricNames = {
  LOCKS_HELD: 'txmesh_locks_held',
  LOCK_WAITS: 'txmesh_lock_waits_total',
} as const;

export class ParticipantMetrics {
  readonly #meter: Meter;
  readonly #held: ObservableGauge;
  readonly #waits: Counter;
  readonly #observe: BatchObservableCallback;
  readonly #attributes: Attributes;
  readonly #youngerAttributes: Attributes;
  readonly #onWait = (message: unknown): void => {
    this.#waits.add(1, (message as LockWaitEvent).younger ? this.#youngerAttributes : this.#attributes);
  };

  constructor(service: string, heldCount: () => number, meter: Meter = metrics.getMeter('@txmesh/participant-sdk')) {
    this.#meter = meter;
    this.#attributes = { service, younger: 'false' };
    this.#youngerAttributes = { service, younger: 'true' };
    this.#held = meter.createObservableGauge(ParticipantMetricNames.LOCKS_HELD, { description: 'Business-key locks held by prepared or preparing branches' });
    this.#waits = meter.createCounter(ParticipantMetricNames.LOCK_WAITS, { description: 'Prepares that queued for a lock another transaction held (younger=true: wait-die grace only)' });
    const held = { service };
    this.#observe = (result) => result.observe(this.#held, heldCount(), held);
    meter.addBatchObservableCallback(this.#observe, [this.#held]);
    subscribe(lockWaitChannel.name, this.#onWait);
  }

  close(): void {
    unsubscribe(lockWaitChannel.name, this.#onWait);
    this.#meter.removeBatchObservableCallback(this.#observe, [this.#held]);
  }
}
