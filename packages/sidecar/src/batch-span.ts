/**
 * The sidecar's span for a batch request (`txmesh sidecar batch`): one per request, the child of the
 * coordinator's batch span (that span links to the branch span of every item). The items go on to the service
 * with the trace context they came with, so each hook span is the child of its branch span. A span per item here
 * timed what the hook span times, plus the batch's prepared-record write that this span shows once, and it was a
 * third of every transaction's spans.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, propagation, type Context } from '@opentelemetry/api';
import { contextOf, tracerOf } from '@txmesh/client/spans';
import { ItemStatus, SpanNames, TraceAttributes, type BranchItem, type BranchItemResult, type TraceCarrier } from '@txmesh/protocol';

const SCOPE = '@txmesh/sidecar';

/**
 * Where the batch span's parent is named. A request to the batch route names it in its HTTP headers, written by
 * the coordinator's propagator (OTEL_PROPAGATORS) and read here by the application's. A frame of the coordinator's
 * channel has no headers: it carries the batch span's W3C trace context in its body (`trace`, as each item carries
 * its own), read directly like the items' carriers. The registered propagator's reading of the same two fields gave
 * the same parent, at the cost of a composite propagator's contexts on every batch (docs/benchmarks.md, issue 15).
 */
export type BatchSpanParent = { readonly headers: Record<string, string | string[] | undefined> } | { readonly carrier: TraceCarrier | undefined };

function contextOfParent(parent: BatchSpanParent): Context {
  return 'carrier' in parent ? contextOf(parent.carrier) : propagation.extract(ROOT_CONTEXT, parent.headers);
}

/** Runs `handle` inside the batch's span when any item carries a trace context; untraced batches get none. */
export async function withBatchSpan(
  service: string,
  parent: BatchSpanParent,
  items: readonly BranchItem[],
  handle: () => Promise<BranchItemResult[]>,
): Promise<BranchItemResult[]> {
  if (!items.some((item) => item.trace !== undefined)) return handle();
  const span = tracerOf(SCOPE).startSpan(
    SpanNames.SIDECAR_BATCH,
    { kind: SpanKind.SERVER, attributes: { [TraceAttributes.SERVICE]: service, [TraceAttributes.BATCH_ITEMS]: items.length } },
    contextOfParent(parent),
  );
  try {
    const results = await handle();
    let failed = 0;
    for (const result of results) if (result.status === ItemStatus.ERROR) failed += 1;
    if (failed > 0) span.setStatus({ code: SpanStatusCode.ERROR, message: `${failed} of ${results.length} items failed` });
    return results;
  } catch (err) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
    throw err;
  } finally {
    span.end();
  }
}
