/**
 * A MeterProvider registered before a role starts, whose instruments forward to the real SDK once it is
 * attached. It lets a process print its ready line without waiting for @opentelemetry/sdk-metrics and the
 * Prometheus exporter to load (about a fifth of a role's start-up): the api has no proxy for meters, and a
 * meter taken from it before a provider is registered stays a no-op forever.
 *
 * Measurements made before the SDK is attached are kept (up to MAX_EARLY_MEASUREMENTS) and replayed into it,
 * so a transaction decided in the first milliseconds after ready is still counted. Observable callbacks are
 * only read at collection, which cannot happen before the SDK exists, so they are handed over as they are.
 */
import type {
  BatchObservableCallback,
  BatchObservableResult,
  Context,
  Counter,
  Gauge,
  Histogram,
  Meter,
  MeterOptions,
  MeterProvider,
  MetricAttributes,
  MetricOptions,
  Observable,
  ObservableCallback,
  UpDownCounter,
} from '@opentelemetry/api';

/** Bounds the memory an SDK that never attaches (it failed to load) can cost. */
export const MAX_EARLY_MEASUREMENTS = 10_000;

type SyncKind = 'createCounter' | 'createHistogram' | 'createUpDownCounter' | 'createGauge';
type ObservableKind = 'createObservableCounter' | 'createObservableGauge' | 'createObservableUpDownCounter';

/** Early measurements kept so far across a provider's instruments, and those dropped past the bound. */
interface EarlyBudget {
  count: number;
  dropped: number;
}

interface Early {
  value: number;
  attributes: MetricAttributes | undefined;
  context: Context | undefined;
}

export class DeferredMeterProvider implements MeterProvider {
  readonly #meters = new Map<string, DeferredMeter>();
  readonly #early: EarlyBudget = { count: 0, dropped: 0 };
  #target: MeterProvider | undefined;

  getMeter(name: string, version?: string, options?: MeterOptions): Meter {
    const key = `${name}@${version ?? ''}@${options?.schemaUrl ?? ''}`;
    let meter = this.#meters.get(key);
    if (meter === undefined) {
      meter = new DeferredMeter(() => this.#target?.getMeter(name, version, options), this.#early);
      this.#meters.set(key, meter);
      meter.attach();
    }
    return meter;
  }

  /** Hands every instrument made so far (and every later one) to `target`, replaying early measurements. Returns how many were dropped past the bound. */
  attach(target: MeterProvider): number {
    this.#target = target;
    for (const meter of this.#meters.values()) meter.attach();
    return this.#early.dropped;
  }
}

class DeferredMeter implements Meter {
  readonly #resolve: () => Meter | undefined;
  readonly #early: EarlyBudget;
  readonly #instruments: { attach(meter: Meter): void }[] = [];
  readonly #batches = new Map<BatchObservableCallback, { observables: Observable[]; forward: BatchObservableCallback }>();
  #target: Meter | undefined;

  constructor(resolve: () => Meter | undefined, early: EarlyBudget) {
    this.#resolve = resolve;
    this.#early = early;
  }

  attach(): void {
    const target = this.#resolve();
    if (target === undefined) return;
    this.#target = target;
    for (const instrument of this.#instruments) instrument.attach(target);
    for (const [callback, batch] of this.#batches) this.#addBatch(target, callback, batch.observables);
  }

  createCounter<A extends MetricAttributes>(name: string, options?: MetricOptions): Counter<A> {
    return this.#sync('createCounter', name, options);
  }
  createHistogram<A extends MetricAttributes>(name: string, options?: MetricOptions): Histogram<A> {
    return this.#sync('createHistogram', name, options);
  }
  createUpDownCounter<A extends MetricAttributes>(name: string, options?: MetricOptions): UpDownCounter<A> {
    return this.#sync('createUpDownCounter', name, options);
  }
  createGauge<A extends MetricAttributes>(name: string, options?: MetricOptions): Gauge<A> {
    return this.#sync('createGauge', name, options);
  }
  createObservableCounter<A extends MetricAttributes>(name: string, options?: MetricOptions): Observable<A> {
    return this.#observable('createObservableCounter', name, options);
  }
  createObservableGauge<A extends MetricAttributes>(name: string, options?: MetricOptions): Observable<A> {
    return this.#observable('createObservableGauge', name, options);
  }
  createObservableUpDownCounter<A extends MetricAttributes>(name: string, options?: MetricOptions): Observable<A> {
    return this.#observable('createObservableUpDownCounter', name, options);
  }

  addBatchObservableCallback<A extends MetricAttributes>(callback: BatchObservableCallback<A>, observables: Observable<A>[]): void {
    const cb = callback as BatchObservableCallback;
    if (this.#batches.has(cb)) return;
    const batch = { observables: observables as Observable[], forward: cb };
    this.#batches.set(cb, batch);
    if (this.#target) this.#addBatch(this.#target, cb, batch.observables);
  }

  removeBatchObservableCallback<A extends MetricAttributes>(callback: BatchObservableCallback<A>, observables: Observable<A>[]): void {
    const batch = this.#batches.get(callback as BatchObservableCallback);
    if (batch === undefined) return;
    this.#batches.delete(callback as BatchObservableCallback);
    if (this.#target) this.#target.removeBatchObservableCallback(batch.forward, realObservables(observables as Observable[]));
  }

  /** The SDK observes its own instruments: a batch callback's observations of ours are translated. */
  #addBatch(target: Meter, callback: BatchObservableCallback, observables: Observable[]): void {
    const forward: BatchObservableCallback = (result) =>
      callback({
        observe(metric: Observable, value: number, attributes?: MetricAttributes): void {
          result.observe(realObservable(metric), value, attributes);
        },
      } satisfies BatchObservableResult);
    this.#batches.set(callback, { observables, forward });
    target.addBatchObservableCallback(forward, realObservables(observables));
  }

  #sync<A extends MetricAttributes>(kind: SyncKind, name: string, options: MetricOptions | undefined): DeferredRecorder<A> {
    const instrument = new DeferredRecorder<A>(kind, name, options, this.#early);
    this.#instruments.push(instrument);
    if (this.#target) instrument.attach(this.#target);
    return instrument;
  }

  #observable<A extends MetricAttributes>(kind: ObservableKind, name: string, options: MetricOptions | undefined): Observable<A> {
    const instrument = new DeferredObservable<A>(kind, name, options);
    this.#instruments.push(instrument);
    if (this.#target) instrument.attach(this.#target);
    return instrument;
  }
}

/** One class for every synchronous instrument: a counter adds, a histogram or gauge records. */
class DeferredRecorder<A extends MetricAttributes> implements Counter<A>, Histogram<A>, UpDownCounter<A>, Gauge<A> {
  readonly #kind: SyncKind;
  readonly #name: string;
  readonly #options: MetricOptions | undefined;
  readonly #early: EarlyBudget;
  #pending: Early[] = [];
  #target: { add?(v: number, a?: A, c?: Context): void; record?(v: number, a?: A, c?: Context): void } | undefined;

  constructor(kind: SyncKind, name: string, options: MetricOptions | undefined, early: EarlyBudget) {
    this.#kind = kind;
    this.#name = name;
    this.#options = options;
    this.#early = early;
  }

  attach(meter: Meter): void {
    const target = meter[this.#kind]<A>(this.#name, this.#options);
    this.#target = target;
    const pending = this.#pending;
    this.#pending = [];
    for (const m of pending) this.#forward(m.value, m.attributes as A | undefined, m.context);
  }

  add(value: number, attributes?: A, context?: Context): void {
    this.#measure(value, attributes, context);
  }

  record(value: number, attributes?: A, context?: Context): void {
    this.#measure(value, attributes, context);
  }

  #measure(value: number, attributes: A | undefined, context: Context | undefined): void {
    if (this.#target) {
      this.#forward(value, attributes, context);
      return;
    }
    if (this.#early.count >= MAX_EARLY_MEASUREMENTS) {
      this.#early.dropped++;
      return;
    }
    this.#early.count++;
    this.#pending.push({ value, attributes, context });
  }

  #forward(value: number, attributes: A | undefined, context: Context | undefined): void {
    const target = this.#target!;
    if (target.add) target.add(value, attributes, context);
    else target.record!(value, attributes, context);
  }
}

const REAL = new WeakMap<Observable, Observable>();
const realObservable = (o: Observable): Observable => REAL.get(o) ?? o;
const realObservables = (list: Observable[]): Observable[] => list.map(realObservable);

class DeferredObservable<A extends MetricAttributes> implements Observable<A> {
  readonly #kind: ObservableKind;
  readonly #name: string;
  readonly #options: MetricOptions | undefined;
  readonly #callbacks = new Set<ObservableCallback<A>>();
  #target: Observable<A> | undefined;

  constructor(kind: ObservableKind, name: string, options: MetricOptions | undefined) {
    this.#kind = kind;
    this.#name = name;
    this.#options = options;
  }

  attach(meter: Meter): void {
    const target = meter[this.#kind]<A>(this.#name, this.#options);
    this.#target = target;
    REAL.set(this as Observable, target as Observable);
    for (const callback of this.#callbacks) target.addCallback(callback);
  }

  addCallback(callback: ObservableCallback<A>): void {
    this.#callbacks.add(callback);
    this.#target?.addCallback(callback);
  }

  removeCallback(callback: ObservableCallback<A>): void {
    this.#callbacks.delete(callback);
    this.#target?.removeCallback(callback);
  }
}
