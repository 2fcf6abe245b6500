/**
 * Bad input must be refused with a coded error, never crash: thousands of random JSON values (seeded,
 * so a failure reproduces) go through every validator, half of them mutations of valid requests.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TxmeshError } from './errors.ts';
import { newTxId } from './tx-id.ts';
import { validateBatchRequest, validateBeginRequest, validateRegisterRequest, validateWaitReport } from './validate.ts';
import { PROTOCOL_VERSION } from './wire.ts';

function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

function randomJson(rng: () => number, depth = 0): unknown {
  const pick = Math.floor(rng() * (depth > 3 ? 6 : 8));
  switch (pick) {
    case 0: return null;
    case 1: return rng() < 0.5;
    case 2: return [0, -1, 1.5, 1e308, Number.MAX_SAFE_INTEGER + 2, 5000][Math.floor(rng() * 6)];
    case 3: return ['', 'inventory', 'prepare', '__proto__', 'x'.repeat(300), newTxId(0), 'bad name!'][Math.floor(rng() * 7)];
    case 4: return 'constructor';
    case 5: return {};
    case 6: return Array.from({ length: Math.floor(rng() * 4) }, () => randomJson(rng, depth + 1));
    default: {
      const keys = ['participants', 'service', 'operations', 'op', 'args', 'timeoutMs', 'idempotencyKey', 'items', 'action', 'txId', 'deadline', 'protocolVersion', 'sidecarUrl', 'report', 'expectVersion', 'edges', 'waiter', 'holder', 'key', 'since', '__proto__'];
      const obj: Record<string, unknown> = {};
      // defineProperty, as JSON.parse does: "__proto__" becomes an own key, not the prototype.
      for (let i = Math.floor(rng() * 5); i > 0; i--) {
        Object.defineProperty(obj, keys[Math.floor(rng() * keys.length)]!, { value: randomJson(rng, depth + 1), enumerable: true, writable: true, configurable: true });
      }
      return obj;
    }
  }
}

/** Replaces one random node of a valid value by random JSON. */
function mutate(rng: () => number, value: unknown): unknown {
  if (rng() < 0.25 || value === null || typeof value !== 'object') return randomJson(rng);
  const copy: any = Array.isArray(value) ? [...value] : { ...value };
  const keys = Object.keys(copy);
  if (keys.length === 0) return randomJson(rng);
  const key = keys[Math.floor(rng() * keys.length)]!;
  copy[key] = mutate(rng, copy[key]);
  return copy;
}

const validBegin = {
  participants: [{ service: 'inventory', operations: [{ op: 'reserve', args: { sku: 'a', qty: 1 }, expectVersion: 3 }] }],
  timeoutMs: 1000,
  idempotencyKey: 'k',
};
const validBatch = {
  protocolVersion: PROTOCOL_VERSION,
  items: [{ action: 'prepare', txId: newTxId(0), service: 'inventory', operations: [{ op: 'reserve' }], deadline: 1 }],
};
const validRegister = { service: 'inventory', sidecarUrl: 'http://127.0.0.1:1', report: { at: 1, inFlight: 2 } };
const validWaits = { service: 'inventory', edges: [{ waiter: newTxId(0), holder: newTxId(1), key: 'sku:a', since: 1 }] };

test('every validator answers random and mutated input with a value or a TxmeshError, nothing else', () => {
  const rng = random(20261123);
  const cases: [string, (body: unknown) => unknown, unknown][] = [
    ['begin', validateBeginRequest, validBegin],
    ['batch', validateBatchRequest, validBatch],
    ['register', validateRegisterRequest, validRegister],
    ['wait report', validateWaitReport, validWaits],
  ];
  let refused = 0;
  for (let i = 0; i < 3000; i++) {
    for (const [name, validate, valid] of cases) {
      const input = i % 2 === 0 ? randomJson(rng) : mutate(rng, valid);
      const before = JSON.stringify(input);
      try {
        validate(input);
      } catch (err) {
        assert.ok(err instanceof TxmeshError, `${name} threw ${String(err)} for ${before}`);
        refused++;
      }
      assert.equal(JSON.stringify(input), before, `${name} changed its input`);
    }
  }
  assert.ok(refused > 3000, 'most random input is refused');
});
