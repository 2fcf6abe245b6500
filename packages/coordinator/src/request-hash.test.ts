import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import type { BeginTransactionRequest } from '@txmesh/protocol';
import { canonicalJson, requestHash } from './request-hash.ts';

/** How hashes were made before canonicalJson: a key-sorted copy, then JSON.stringify. Logged hashes must not change. */
function sortedCopy(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedCopy);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) out[key] = sortedCopy((value as Record<string, unknown>)[key]);
    return out;
  }
  return value;
}

function randomValue(random: () => number, depth: number): unknown {
  const pick = Math.floor(random() * (depth > 3 ? 6 : 9));
  const text = (): string => ['a', 'B', 'é', '"q"', '\\', '\n', '10', '9', '_', 'Z', '\u2028', '😀'][Math.floor(random() * 12)]! + String(Math.floor(random() * 30));
  switch (pick) {
    case 0: return null;
    case 1: return random() < 0.5;
    case 2: return Math.floor(random() * 2000) - 1000;
    case 3: return random() * 1e6;
    case 4: return text();
    case 5: return undefined;
    case 6: return Array.from({ length: Math.floor(random() * 5) }, () => randomValue(random, depth + 1));
    default: {
      const out: Record<string, unknown> = {};
      const keys = Math.floor(random() * (random() < 0.1 ? 40 : 8));
      for (let i = 0; i < keys; i++) out[random() < 0.2 ? String(Math.floor(random() * 100)) : text()] = randomValue(random, depth + 1);
      return out;
    }
  }
}

describe('the request hash', () => {
  it('writes the same text as JSON.stringify of a key-sorted copy, so logged idempotency hashes keep matching', () => {
    let seed = 7;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 2000; i++) {
      const value = { participants: [randomValue(random, 0), randomValue(random, 0)], timeoutMs: i % 3 === 0 ? null : i, nested: randomValue(random, 0) };
      assert.equal(canonicalJson(value), JSON.stringify(sortedCopy(value)));
    }
    assert.equal(canonicalJson({ b: 1, a: [undefined, () => 1, { d: undefined, c: 2 }], when: new Date(0) }), '{"a":[null,null,{"c":2}],"b":1,"when":{}}');
  });

  it('hashes participants of any shape as the canonical text of the whole request (the validated shape takes a shorter way)', () => {
    let seed = 11;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const operation = (): unknown => {
      const o: Record<string, unknown> = { op: random() < 0.95 ? `op${Math.floor(random() * 9)}` : 7 };
      if (random() < 0.8) o.args = random() < 0.9 ? randomValue(random, 1) : { a: undefined, b: [undefined] };
      if (random() < 0.2) o.expectVersion = random() < 0.9 ? Math.floor(random() * 50) : undefined;
      if (random() < 0.05) o.extra = 'x';
      // Built in any key order, as a caller's JSON may be.
      return Object.fromEntries(Object.entries(o).sort(() => random() - 0.5));
    };
    for (let i = 0; i < 3000; i++) {
      const participants = Array.from({ length: 1 + Math.floor(random() * 4) }, () => {
        const p: Record<string, unknown> = { service: random() < 0.97 ? `svc${Math.floor(random() * 5)}` : undefined, operations: Array.from({ length: 1 + Math.floor(random() * 3) }, operation) };
        if (random() < 0.03) p.note = random() < 0.5 ? 'x' : undefined;
        if (random() < 0.02) return random() < 0.5 ? null : [p];
        return random() < 0.5 ? p : { operations: p.operations, service: p.service, ...(p.note === undefined ? {} : { note: p.note }) };
      });
      const request = { participants, ...(i % 4 === 0 ? { timeoutMs: 900 } : {}), ...(i % 5 === 0 ? { prepareTimeoutMs: 300 } : {}) } as unknown as BeginTransactionRequest;
      const text = canonicalJson({ participants, timeoutMs: request.timeoutMs ?? null, ...(request.prepareTimeoutMs !== undefined ? { prepareTimeoutMs: request.prepareTimeoutMs } : {}) })!;
      assert.equal(requestHash(request), createHash('sha256').update(text).digest('hex'), text);
    }
  });

  it('does not depend on key order and tells different requests apart', () => {
    const participants = [{ service: 'inventory', operations: [{ op: 'reserve', args: { sku: 's1', qty: 2 } }] }];
    const reordered = [{ operations: [{ args: { qty: 2, sku: 's1' }, op: 'reserve' }], service: 'inventory' }];
    const known = createHash('sha256').update('{"participants":[{"operations":[{"args":{"qty":2,"sku":"s1"},"op":"reserve"}],"service":"inventory"}],"timeoutMs":null}').digest('hex');
    assert.equal(requestHash({ participants }), known);
    assert.equal(requestHash({ participants: reordered }), known);
    assert.notEqual(requestHash({ participants, timeoutMs: 500 }), known);
    assert.notEqual(requestHash({ participants: [{ service: 'inventory', operations: [{ op: 'reserve', args: { sku: 's1', qty: 3 } }] }] }), known);
  });

  it('hashes the text of { participants, prepareTimeoutMs, timeoutMs } as the hashes logged so far were made', () => {
    const participants = [{ service: 'order', operations: [{ op: 'create', args: { orderId: 'o1', lines: [{ sku: 's', qty: 1 }] } }] }];
    const asked = (timeoutMs?: number, prepareTimeoutMs?: number): string =>
      createHash('sha256')
        .update(canonicalJson({ participants, timeoutMs: timeoutMs ?? null, ...(prepareTimeoutMs !== undefined ? { prepareTimeoutMs } : {}) })!)
        .digest('hex');
    assert.equal(requestHash({ participants }), asked());
    assert.equal(requestHash({ participants, timeoutMs: 900 }), asked(900));
    assert.equal(requestHash({ participants, prepareTimeoutMs: 300 }), asked(undefined, 300));
    assert.equal(requestHash({ participants, timeoutMs: 900, prepareTimeoutMs: 300 }), asked(900, 300));
  });
});
