/**
 * Spans for the items of a branch batch (at the sidecar, and around the hooks in the service), through
 * @opentelemetry/api. Each item carries its branch's trace context in the batch body; the span for it is a
 * child of that context, and the item handed on carries the new span's context, so the next process
 * continues the same trace. Items without a trace context get no span: nothing is allocated for untraced
 * traffic, and with no SDK registered the item goes on unchanged.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Link, type Span, type Tracer } from '@opentelemetry/api';
import { ItemStatus, SpanNames, TraceAttributes, type BranchItem, type BranchItemResult, type TraceCarrier } from '@txmesh/protocol';
import { carrierOf, contextOf, spanContextOf } from './trace-carrier.ts';

export interface ItemSpanOptions {
  /** The tracer's (instrumentation scope's) name, e.g. "@txmesh/sidecar". */
  scope: string;
  /** Span names are `${name} ${action}`. */
  name: string;
  service: string;
  /**
   * An outcome delivered by a restarted process: one more span for the round, linked to every
   * transaction's trace, so the delivery can be found from either side.
   */
  recovery?: boolean;
  /**
   * Whether the items handed to `handle` carry their new spans' trace contexts (the default), for a process
   * that sends them on. A participant's hooks are the last hop: `false` hands the items on as they came and
   * spares a carrier string and an item copy per span.
   */
  handOn?: boolean;
}

/** The span of each item handed to `handle` (undefined for untraced items), in item order. */
export type ItemSpans = readonly (Span | undefined)[];

/**
 * Links from one span to the spans these items carry (a batch, a recovery round). `nameTxIds` adds each
 * link's txmesh.tx_id: worth it on a rare recovery span, not on every batch, where the linked branch span
 * names its transaction already and the attribute would be serialized once more per item.
 */
export function linksTo(items: readonly { txId: string; trace?: TraceCarrier }[], nameTxIds = false): Link[] {
  const links: Link[] = [];
  for (const item of items) {
    if (item.trace === undefined) continue;
    const linked = spanContextOf(item.trace);
    if (linked) links.push(nameTxIds ? { context: linked, attributes: { [TraceAttributes.TX_ID]: item.txId } } : { context: linked });
  }
  return links;
}

/**
 * The tracer of each instrumentation scope, looked up once, not through the global provider on every span, and
 * not before the first span: a bin's bundle (scripts/bundle.mjs) carries its own copy of the api, whose proxy
 * tracers never learn of the provider an external OpenTelemetry SDK registers through the other copy, while a
 * lookup after the SDK started gets that provider's tracer from the global registry both copies share.
 */
const tracers = new Map<string, Tracer>();
export function tracerOf(scope: string): Tracer {
  let tracer = tracers.get(scope);
  if (tracer === undefined) tracers.set(scope, (tracer = trace.getTracer(scope)));
  return tracer;
}

/** Options every item span starts with, made once. */
const ITEM_SPAN_OPTIONS = { kind: SpanKind.SERVER } as const;

/**
 * `${name} ${action}` for the few names and actions there are, made once: a name built per span was a new string
 * that the encoder then flattened once more. Bounded, whatever a caller passes as an action.
 */
const spanNames = new Map<string, Map<string, string>>();
const MAX_ACTIONS_PER_NAME = 8;
export function spanNameOf(name: string, action: string): string {
  let byAction = spanNames.get(name);
  if (byAction === undefined) spanNames.set(name, (byAction = new Map()));
  const known = byAction.get(action);
  if (known !== undefined) return known;
  const full = `${name} ${action}`;
  if (byAction.size < MAX_ACTIONS_PER_NAME) byAction.set(action, full);
  return full;
}

/** Runs `handle` over the items, each inside its own span when it carries a trace context. */
export async function withItemSpans(
  options: ItemSpanOptions,
  items: readonly BranchItem[],
  handle: (items: BranchItem[], spans: ItemSpans) => Promise<BranchItemResult[]>,
): Promise<BranchItemResult[]> {
  if (!items.some((item) => item.trace !== undefined)) return handle([...items], []);
  const { service } = options;
  const tracer = tracerOf(options.scope);
  let round: Span | undefined;
  if (options.recovery === true) {
    round = tracer.startSpan(SpanNames.RECOVERY, { kind: SpanKind.INTERNAL, links: linksTo(items, true), attributes: { [TraceAttributes.SERVICE]: service, [TraceAttributes.BATCH_ITEMS]: items.length } }, ROOT_CONTEXT);
  }
  const handOn = options.handOn !== false;
  const spans: (Span | undefined)[] = [];
  const forwarded = items.map((item) => {
    if (item.trace === undefined) {
      spans.push(undefined);
      return item;
    }
    const span = tracer.startSpan(spanNameOf(options.name, item.action), ITEM_SPAN_OPTIONS, contextOf(item.trace));
    spans.push(span);
    if (span.isRecording()) {
      span.setAttribute(TraceAttributes.TX_ID, item.txId);
      // The action is in the span's name: no attribute repeats it.
      span.setAttribute(TraceAttributes.SERVICE, service);
      if (round) span.addLink({ context: round.spanContext() });
    }
    if (!handOn) return item;
    const carrier = carrierOf(span);
    return carrier === undefined ? item : { ...item, trace: carrier };
  });
  try {
    const results = await handle(forwarded, spans);
    results.forEach((result, i) => {
      const span = spans[i];
      if (!span?.isRecording()) return;
      span.setAttribute(TraceAttributes.ITEM_STATUS, result.status);
      if (result.reason !== undefined) span.setAttribute(TraceAttributes.ABORT_REASON, result.reason);
      if (result.status === ItemStatus.ERROR) span.setStatus({ code: SpanStatusCode.ERROR, message: result.message ?? result.reason ?? 'error' });
    });
    return results;
  } catch (err) {
    for (const span of spans) span?.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
    round?.setStatus({ code: SpanStatusCode.ERROR });
    throw err;
  } finally {
    for (const span of spans) span?.end();
    round?.end();
  }
}
