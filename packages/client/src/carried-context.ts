/**
 * The context a carried trace context names, made for one span's start: a batch item's parent at every hop.
 * The api's own (`trace.setSpanContext(ROOT_CONTEXT, …)`) copies the root context's Map into a new one per item,
 * about a tenth of what a hook span allocated (docs/benchmarks.md, issue 15); this holds the one span and makes a
 * full context only if someone adds to it.
 */
import { ROOT_CONTEXT, trace, type Context, type Span } from '@opentelemetry/api';

/**
 * The api's key for the active span, learnt from the api itself rather than copied from its sources: `setSpan`
 * stores the span under it with the context's own `setValue`.
 */
const SPAN_KEY: symbol = (() => {
  let learnt: symbol | undefined;
  const recorder: Context = {
    getValue: () => undefined,
    setValue: (key) => {
      learnt = key;
      return ROOT_CONTEXT;
    },
    deleteValue: () => ROOT_CONTEXT,
  };
  trace.setSpan(recorder, trace.wrapSpanContext({ traceId: '', spanId: '', traceFlags: 0 }));
  if (learnt === undefined) throw new Error('@opentelemetry/api stored no span through Context.setValue');
  return learnt;
})();

/** ROOT_CONTEXT with one span in it: what `trace.setSpan(ROOT_CONTEXT, span)` names, without its Map. */
export class SpanOnlyContext implements Context {
  readonly #span: Span;

  constructor(span: Span) {
    this.#span = span;
  }

  getValue(key: symbol): unknown {
    return key === SPAN_KEY ? this.#span : undefined;
  }

  setValue(key: symbol, value: unknown): Context {
    return trace.setSpan(ROOT_CONTEXT, this.#span).setValue(key, value);
  }

  deleteValue(key: symbol): Context {
    return key === SPAN_KEY ? ROOT_CONTEXT : this;
  }
}
