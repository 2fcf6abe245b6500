import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ROOT_CONTEXT, TraceFlags, createTraceState, trace } from '@opentelemetry/api';
import { VALID_IDS, carrierOf, contextOf, hasValidIds, spanContextOf } from './trace-carrier.ts';

const ids = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7' };

/** What a carrier or span context says, without the symbols this process keeps on them (not sent, not compared). */
const fieldsOf = <T extends object>(value: T | undefined): Partial<T> | undefined => (value === undefined ? undefined : (Object.fromEntries(Object.entries(value)) as Partial<T>));

test('a sampled span goes into a body as W3C traceparent and tracestate, and comes back as the same remote context', () => {
  const span = trace.wrapSpanContext({ ...ids, traceFlags: TraceFlags.SAMPLED, traceState: createTraceState('vendor=a1,other=b2') });
  const carrier = carrierOf(span);
  assert.deepEqual(fieldsOf(carrier), { traceparent: `00-${ids.traceId}-${ids.spanId}-01`, tracestate: 'vendor=a1,other=b2' });
  // What the next process reads: the body's JSON.
  const back = trace.getSpanContext(contextOf(JSON.parse(JSON.stringify(carrier)) as typeof carrier));
  assert.deepEqual({ ...fieldsOf(back), traceState: back?.traceState?.serialize() }, { ...ids, traceFlags: TraceFlags.SAMPLED, isRemote: true, traceState: 'vendor=a1,other=b2' });
  // No propagator is registered in this process: the body format does not depend on one.
  assert.deepEqual(fieldsOf(carrierOf(trace.wrapSpanContext({ ...ids, traceFlags: TraceFlags.SAMPLED }))), { traceparent: `00-${ids.traceId}-${ids.spanId}-01` });
});

test('a span the sampler left out, or one with no valid context, gives its items nothing to carry', () => {
  assert.equal(carrierOf(trace.wrapSpanContext({ ...ids, traceFlags: TraceFlags.NONE })), undefined);
  assert.equal(carrierOf(trace.wrapSpanContext({ traceId: '0'.repeat(32), spanId: ids.spanId, traceFlags: TraceFlags.SAMPLED })), undefined);
});

test('no carrier, or one naming an all-zero id, is the root context', () => {
  assert.equal(contextOf(undefined), ROOT_CONTEXT);
  assert.equal(contextOf({ traceparent: `00-${'0'.repeat(32)}-${ids.spanId}-01` }), ROOT_CONTEXT);
});

test('a carrier is read at its fixed offsets: anything not exactly vv-<32 hex>-<16 hex>-<2 hex> in lower case, or of version ff, names no context', () => {
  const good = `00-${ids.traceId}-${ids.spanId}-01`;
  assert.deepEqual(fieldsOf(spanContextOf({ traceparent: good })), { ...ids, traceFlags: TraceFlags.SAMPLED, isRemote: true });
  assert.equal(spanContextOf({ traceparent: `00-${ids.traceId}-${ids.spanId}-00` })?.traceFlags, TraceFlags.NONE);
  assert.equal(spanContextOf({ traceparent: `00-${ids.traceId}-${ids.spanId}-ff` })?.traceFlags, 0xff);
  for (const traceparent of [
    '',
    good.slice(1),
    `${good}0`,
    good.toUpperCase(),
    good.replace(/-/g, '_'),
    `0g-${ids.traceId}-${ids.spanId}-01`,
    `ff-${ids.traceId}-${ids.spanId}-01`,
    `00-${ids.traceId.slice(0, 31)}x-${ids.spanId}-01`,
    `00-${ids.traceId}-${ids.spanId.slice(0, 15)}z-01`,
    `00-${ids.traceId}-${ids.spanId}-0-`,
    `00-${ids.traceId}-${'0'.repeat(16)}-01`,
    `00-${'0'.repeat(32)}-${ids.spanId}-01`,
  ]) {
    assert.equal(spanContextOf({ traceparent }), undefined, traceparent);
  }
});

test('a carrier made in this process links back to its span context without a parse, and sends only its strings', () => {
  const spanContext = { ...ids, traceFlags: TraceFlags.SAMPLED };
  const carrier = carrierOf(trace.wrapSpanContext(spanContext))!;
  assert.equal(spanContextOf(carrier), spanContext);
  assert.deepEqual(Object.keys(carrier), ['traceparent']);
  const sent = JSON.parse(JSON.stringify(carrier)) as typeof carrier;
  assert.deepEqual(sent, { traceparent: `00-${ids.traceId}-${ids.spanId}-01` });
  assert.deepEqual(fieldsOf(spanContextOf(sent)), { ...spanContext, isRemote: true });
});

test('a context read from a carrier is marked as having valid ids; any other is checked as the api checks it', () => {
  const read = spanContextOf({ traceparent: `00-${ids.traceId}-${ids.spanId}-01` })!;
  assert.equal((read as unknown as Record<symbol, unknown>)[VALID_IDS], true);
  assert.equal(hasValidIds(read), true);
  assert.equal(hasValidIds({ ...ids, traceFlags: TraceFlags.SAMPLED }), true);
  assert.equal(hasValidIds({ traceId: 'x'.repeat(32), spanId: ids.spanId, traceFlags: TraceFlags.SAMPLED }), false);
  // Upper-case hex fails the api's check: such a span gives its items no carrier.
  const carrier = carrierOf(trace.wrapSpanContext({ traceId: 'X'.repeat(32), spanId: ids.spanId, traceFlags: TraceFlags.SAMPLED }));
  assert.equal(carrier, undefined);
});
