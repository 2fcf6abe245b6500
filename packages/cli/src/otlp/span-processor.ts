/**
 * The span processor of txmesh's roles when they export over OTLP/HTTP: the SDK's BatchSpanProcessor's behaviour
 * (OTEL_BSP_* limits, batches sent when full or after the schedule delay, one export at a time, sampled spans
 * only) but each span is encoded the moment it ends (span-grouping.ts) instead of held until its batch is sent.
 * A held span lived through several young-generation collections and was promoted: in a traced service the
 * collector's time doubled (docs/benchmarks.md). Encoded at its end, the span object dies young.
 *
 * Shutdown never rejects, whatever the collector does: spans it could not take are counted and reported once
 * (`onLost`), and after a failed export at shutdown the batches still waiting are given up rather than retried
 * each for the exporter's full timeout.
 */
import { context, diag, TraceFlags, type Context } from '@opentelemetry/api';
import { ExportResultCode, globalErrorHandler, suppressTracing, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace';
import type { BatchLimits } from './batch-limits.ts';
import type { SealedSpans, SpanBatch } from './span-grouping.ts';
import type { EncodedSpanRequest } from './span-exporter.ts';

export interface EncodedSpanExporter {
  export(request: EncodedSpanRequest, done: (result: ExportResult) => void): void;
  shutdown(): Promise<void>;
}

export interface SpanProcessorOptions {
  batch: SpanBatch;
  exporter: EncodedSpanExporter;
  limits: BatchLimits;
  /** Told once, at shutdown, how many spans were never exported since the process started, and the last reason. */
  onLost?: (spans: number, reason: string) => void;
}

export class EncodingSpanProcessor implements SpanProcessor {
  readonly #batch: SpanBatch;
  readonly #exporter: EncodedSpanExporter;
  readonly #limits: BatchLimits;
  readonly #onLost: ((spans: number, reason: string) => void) | undefined;
  /** Sealed batches waiting for their export, oldest first, and the spans they hold. */
  readonly #sealed: SealedSpans[] = [];
  #queuedSpans = 0;
  #exporting = false;
  #timer: NodeJS.Timeout | undefined;
  /** Resolved each time the queue runs empty with nothing in flight (forceFlush, shutdown). */
  #idle: (() => void)[] = [];
  #stopping = false;
  #shutdown: Promise<void> | undefined;
  #dropped = 0;
  /** An export failed after shutdown began: what is still waiting is given up, not sent. */
  #givingUp = false;
  #lost = 0;
  #lastFailure = '';

  constructor(options: SpanProcessorOptions) {
    this.#batch = options.batch;
    this.#exporter = options.exporter;
    this.#limits = options.limits;
    this.#onLost = options.onLost;
  }

  onStart(_span: Span, _parentContext: Context): void {}

  onEnd(span: ReadableSpan): void {
    if (this.#stopping || (span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    if (this.#queuedSpans + this.#batch.count >= this.#limits.maxQueueSize) {
      if (this.#dropped === 0) diag.debug('maxQueueSize reached, dropping spans');
      this.#dropped += 1;
      this.#lost += 1;
      this.#lastFailure = `more than ${this.#limits.maxQueueSize} spans waited for export (OTEL_BSP_MAX_QUEUE_SIZE)`;
      return;
    }
    if (this.#dropped > 0) {
      diag.warn(`Dropped ${this.#dropped} spans because maxQueueSize reached`);
      this.#dropped = 0;
    }
    try {
      this.#batch.add(span);
    } catch (err) {
      // Never into the caller's span.end(): the span is counted as lost.
      this.#lost += 1;
      this.#lastFailure = `a span could not be encoded: ${asError(err).message}`;
      globalErrorHandler(asError(err));
      return;
    }
    if (this.#batch.count >= this.#limits.maxExportBatchSize) {
      this.#seal();
      this.#next();
    } else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#seal();
        this.#next();
      }, this.#limits.scheduledDelayMillis);
      this.#timer.unref();
    }
  }

  /** Sends every span ended so far; resolves once they were sent or given up (failures are counted, not thrown). */
  forceFlush(): Promise<void> {
    if (this.#shutdown !== undefined) return this.#shutdown;
    return this.#flush();
  }

  shutdown(): Promise<void> {
    this.#shutdown ??= this.#stop();
    return this.#shutdown;
  }

  async #stop(): Promise<void> {
    await this.#flush();
    this.#stopping = true;
    // Anything ended while the last export ran.
    this.#seal();
    if (this.#givingUp) this.#giveUpQueued();
    else await this.#flush();
    try {
      await this.#exporter.shutdown();
    } catch (err) {
      globalErrorHandler(asError(err));
    }
    if (this.#lost > 0) this.#onLost?.(this.#lost, this.#lastFailure);
  }

  #flush(): Promise<void> {
    this.#seal();
    if (!this.#exporting && this.#sealed.length === 0) return Promise.resolve();
    const idle = new Promise<void>((resolve) => this.#idle.push(resolve));
    this.#next();
    return idle;
  }

  #seal(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#batch.count === 0) return;
    const sealed = this.#batch.seal();
    this.#sealed.push(sealed);
    this.#queuedSpans += sealed.count;
  }

  /** Starts the oldest sealed batch's export unless one is in flight. */
  #next(): void {
    if (this.#exporting) return;
    const sealed = this.#sealed.shift();
    if (sealed === undefined) {
      for (const resolve of this.#idle.splice(0)) resolve();
      return;
    }
    this.#queuedSpans -= sealed.count;
    this.#exporting = true;
    void this.#send(sealed).then((failure) => {
      this.#exporting = false;
      if (failure !== undefined) {
        this.#lost += sealed.count;
        this.#lastFailure = failure.message;
        globalErrorHandler(failure);
        // The collector did not take this batch: at shutdown the others would only wait as long again.
        if (this.#shutdown !== undefined) {
          this.#givingUp = true;
          this.#giveUpQueued();
        }
      }
      this.#next();
    });
  }

  #giveUpQueued(): void {
    for (const sealed of this.#sealed.splice(0)) this.#lost += sealed.count;
    this.#queuedSpans = 0;
  }

  /** One export, bounded by OTEL_BSP_EXPORT_TIMEOUT; resolves with the failure, if any. */
  async #send(sealed: SealedSpans): Promise<Error | undefined> {
    try {
      // The resource's asynchronous attributes (host.id) are written with the request, as the SDK waits for them.
      const pending = sealed.resources.filter((r) => r.asyncAttributesPending === true && r.waitForAsyncAttributes !== undefined);
      if (pending.length > 0) await Promise.all(pending.map((r) => r.waitForAsyncAttributes!()));
      const request: EncodedSpanRequest = { bytes: sealed.request(), count: sealed.count };
      return await new Promise<Error | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(new Error(`the export did not finish within ${this.#limits.exportTimeoutMillis} ms (OTEL_BSP_EXPORT_TIMEOUT)`)), this.#limits.exportTimeoutMillis);
        timer.unref();
        // No span for the export's own HTTP request, should anything instrument it.
        context.with(suppressTracing(context.active()), () =>
          this.#exporter.export(request, (result) => {
            clearTimeout(timer);
            resolve(result.code === ExportResultCode.SUCCESS ? undefined : (result.error ?? new Error('the span export failed')));
          }),
        );
      });
    } catch (err) {
      return asError(err);
    }
  }
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));
