/**
 * A stable hash of what a begin request asks for, so a retried idempotencyKey can be told apart from
 * a different request reusing the key. Object keys are sorted: the same JSON written in another key
 * order is the same request.
 */
import { createHash } from 'node:crypto';
import type { BeginTransactionRequest } from '@txmesh/protocol';

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) out[key] = canonical((value as Record<string, unknown>)[key]);
    return out;
  }
  return value;
}

export function requestHash(request: BeginTransactionRequest): string {
  const { participants, timeoutMs, prepareTimeoutMs } = request;
  // prepareTimeoutMs only when given, so keys logged before it existed keep their hash.
  const asked = { participants, timeoutMs: timeoutMs ?? null, ...(prepareTimeoutMs !== undefined ? { prepareTimeoutMs } : {}) };
  return createHash('sha256').update(JSON.stringify(canonical(asked))).digest('hex');
}
