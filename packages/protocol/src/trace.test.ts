import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validTraceCarrier } from './trace.ts';

const good = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

test('a carried trace context is kept when it has the W3C shape, with its tracestate when that is bounded', () => {
  assert.deepEqual(validTraceCarrier({ traceparent: good }), { traceparent: good });
  assert.deepEqual(validTraceCarrier({ traceparent: good, tracestate: 'vendor=a1' }), { traceparent: good, tracestate: 'vendor=a1' });
  assert.deepEqual(validTraceCarrier({ traceparent: good, tracestate: 'x'.repeat(513) }), { traceparent: good });
  assert.deepEqual(validTraceCarrier({ traceparent: 'ff-ffffffffffffffffffffffffffffffff-ffffffffffffffff-ff' }), { traceparent: 'ff-ffffffffffffffffffffffffffffffff-ffffffffffffffff-ff' });
});

test('anything else is dropped, not refused: wrong length, dashes, case or characters', () => {
  for (const traceparent of [
    '',
    good.slice(1),
    `${good}0`,
    good.toUpperCase(),
    good.replace(/-/g, '_'),
    `0g${good.slice(2)}`,
    `${good.slice(0, 34)}x${good.slice(35)}`,
    `${good.slice(0, 20)}\u00e9${good.slice(21)}`,
    `${good.slice(0, 20)}\u0130${good.slice(21)}`,
    `${good.slice(0, 53)}-1`,
  ]) {
    assert.equal(validTraceCarrier({ traceparent }), undefined, traceparent);
  }
  assert.equal(validTraceCarrier({ traceparent: 42 }), undefined);
  assert.equal(validTraceCarrier(null), undefined);
  assert.equal(validTraceCarrier('00-…'), undefined);
});
