/**
 * A stable hash of what a begin request asks for, so a retried idempotencyKey can be told apart from
 * a different request reusing the key. Object keys are sorted: the same JSON written in another key
 * order is the same request.
 */
import { createHash } from 'node:crypto';
import type { BeginTransactionRequest } from '@txmesh/protocol';

/** Up to this many keys an object's keys are sorted in place by insertion; more go to Array.prototype.sort. */
const INSERTION_SORT_MAX = 16;
const ARRAY_INDEX = /^(?:0|[1-9]\d{0,9})$/;
const MAX_ARRAY_INDEX = 2 ** 32 - 2;

const isArrayIndex = (key: string): boolean => ARRAY_INDEX.test(key) && Number(key) <= MAX_ARRAY_INDEX;

/**
 * The keys of an object in the order the hash has always written them: JSON.stringify of a copy made in
 * sorted key order, which (as every object) lists its array-index keys first, in numeric order, then the
 * others in the order they were added. Object.keys already gives the index keys first in numeric order, so
 * only the rest is sorted, in place.
 */
function orderedKeys(keys: string[]): string[] {
  let from = 0;
  while (from < keys.length && isArrayIndex(keys[from]!)) from += 1;
  if (keys.length - from > INSERTION_SORT_MAX) return [...keys.slice(0, from), ...keys.slice(from).sort()];
  // Array.prototype.sort allocates working storage on every call, and every object of every request is sorted.
  for (let i = from + 1; i < keys.length; i++) {
    const key = keys[i]!;
    let j = i - 1;
    while (j >= from && keys[j]! > key) {
      keys[j + 1] = keys[j]!;
      j -= 1;
    }
    keys[j + 1] = key;
  }
  return keys;
}

/**
 * The JSON text of `value` with every object's keys in sorted order (array-index keys first, see orderedKeys),
 * written as it is walked (no sorted copy of the request). Any object is written by its own enumerable keys; an undefined value or a function is left
 * out of an object and written null in an array, as JSON.stringify does.
 */
export function canonicalJson(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) out += `${i === 0 ? '' : ','}${canonicalJson(value[i]) ?? 'null'}`;
    return `${out}]`;
  }
  let out = '{';
  let first = true;
  for (const key of orderedKeys(Object.keys(value))) {
    const written = canonicalJson((value as Record<string, unknown>)[key]);
    if (written === undefined) continue;
    out += `${first ? '' : ','}${JSON.stringify(key)}:${written}`;
    first = false;
  }
  return `${out}}`;
}

export function requestHash(request: BeginTransactionRequest): string {
  const { participants, timeoutMs, prepareTimeoutMs } = request;
  // prepareTimeoutMs only when given, so keys logged before it existed keep their hash.
  const asked = { participants, timeoutMs: timeoutMs ?? null, ...(prepareTimeoutMs !== undefined ? { prepareTimeoutMs } : {}) };
  return createHash('sha256').update(canonicalJson(asked)!).digest('hex');
}
