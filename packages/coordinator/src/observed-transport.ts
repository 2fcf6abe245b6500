/**
 * A BranchTransport that measures what goes through it: items per batch and the round trip of batches
 * carrying prepares, per service; and, when items carry trace context, a span for the batch request with
 * a link to every branch span in it (a batch belongs to many traces, so it is a root of its own).
 * Wraps whichever transport the coordinator uses.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import { linksTo, tracerOf } from '@txmesh/client';
import { BranchAction, SpanNames, TraceAttributes, type BranchBatchResponse, type BranchItem } from '@txmesh/protocol';
import type { BranchTransport } from './branch-transport.ts';
import type { CoordinatorMetrics } from './coordinator-metrics.ts';

const SCOPE = '@txmesh/coordinator';

export class ObservedTransport implements BranchTransport {
  readonly #inner: BranchTransport & { close?(): Promise<void> };
  readonly #metrics: CoordinatorMetrics;

  constructor(inner: BranchTransport & { close?(): Promise<void> }, metrics: CoordinatorMetrics) {
    this.#inner = inner;
    this.#metrics = metrics;
  }

  async send(sidecarUrl: string, items: BranchItem[], timeoutMs: number): Promise<BranchBatchResponse> {
    const startedAt = performance.now();
    const response = items.some((item) => item.trace !== undefined) ? await this.#traced(sidecarUrl, items, timeoutMs) : await this.#inner.send(sidecarUrl, items, timeoutMs);
    let prepares = 0;
    for (const item of items) if (item.action === BranchAction.PREPARE) prepares += 1;
    // A batch goes to one sidecar, so its items share one service.
    this.#metrics.recordBatch(items[0]?.service ?? 'unknown', items.length, prepares, (performance.now() - startedAt) / 1000);
    return response;
  }

  /** Sends inside the batch span, so the request's traceparent header names it. */
  async #traced(sidecarUrl: string, items: BranchItem[], timeoutMs: number): Promise<BranchBatchResponse> {
    const span = tracerOf(SCOPE).startSpan(
      SpanNames.BATCH,
      { kind: SpanKind.CLIENT, links: linksTo(items), attributes: { [TraceAttributes.SERVICE]: items[0]?.service ?? 'unknown', [TraceAttributes.BATCH_ITEMS]: items.length } },
      ROOT_CONTEXT,
    );
    try {
      return await context.with(trace.setSpan(ROOT_CONTEXT, span), () => this.#inner.send(sidecarUrl, items, timeoutMs));
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
      throw err;
    } finally {
      span.end();
    }
  }

  async close(): Promise<void> {
    await this.#inner.close?.();
  }
}
