/**
 * A stable hash of what a begin request asks for, so a retried idempotencyKey can be told apart from
 * a different request reusing the key. Object keys are sorted: the same JSON written in another key
 * order is the same request.
 */
import { hash } from 'node:crypto';
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
  return canon(value);
}

/**
 * `value`'s canonical text, built by appending to one string (V8 joins the pieces once, when the text is hashed):
 * an array of pieces joined at the end, and before it each level's text pasted into its parent's, were most of
 * what a keyed begin allocated (docs/benchmarks.md). Undefined when the value writes nothing (undefined, a
 * function, a symbol).
 */
function canon(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) as string | undefined;
  if (Array.isArray(value)) {
    let text = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) text += ',';
      text += canon(value[i]) ?? 'null';
    }
    return `${text}]`;
  }
  let text = '{';
  let first = true;
  for (const key of orderedKeys(Object.keys(value))) {
    const inner = canon((value as Record<string, unknown>)[key]);
    if (inner === undefined) continue;
    text += first ? quotedKey(key) : commaQuotedKey(key);
    text += inner;
    first = false;
  }
  return `${text}}`;
}

/** JSON text of a key and its colon (and with the comma before it), kept for the keys seen most (a request repeats the same few names). */
const QUOTED_KEYS = new Map<string, string>();
const COMMA_QUOTED_KEYS = new Map<string, string>();
const MAX_QUOTED_KEYS = 512;

function quotedKey(key: string): string {
  let quoted = QUOTED_KEYS.get(key);
  if (quoted === undefined) {
    quoted = `${JSON.stringify(key)}:`;
    if (QUOTED_KEYS.size >= MAX_QUOTED_KEYS) QUOTED_KEYS.clear();
    QUOTED_KEYS.set(key, quoted);
  }
  return quoted;
}

function commaQuotedKey(key: string): string {
  let quoted = COMMA_QUOTED_KEYS.get(key);
  if (quoted === undefined) {
    quoted = `,${JSON.stringify(key)}:`;
    if (COMMA_QUOTED_KEYS.size >= MAX_QUOTED_KEYS) COMMA_QUOTED_KEYS.clear();
    COMMA_QUOTED_KEYS.set(key, quoted);
  }
  return quoted;
}

/** Own enumerable keys, counted without the array Object.keys would make. */
function ownKeyCount(value: object): number {
  let count = 0;
  for (const key in value) if (Object.hasOwn(value, key)) count += 1;
  return count;
}

/**
 * The canonical text of a validated request's participants, knowing their shape: a participant is exactly
 * { service, operations } and an operation { op, args?, expectVersion? } (validateBeginRequest builds them so),
 * written in key order without listing and sorting their keys; only `args` (the caller's own JSON) is walked as any
 * value is. Undefined when a participant or operation has any other shape: canon() then writes it.
 */
function participantsText(participants: readonly unknown[]): string | undefined {
  let text = '[';
  for (let i = 0; i < participants.length; i++) {
    const p = participants[i] as { service?: unknown; operations?: unknown } | null;
    if (p === null || typeof p !== 'object' || Array.isArray(p) || typeof p.service !== 'string' || !Array.isArray(p.operations) || ownKeyCount(p) !== 2) return undefined;
    const operations: unknown[] = p.operations;
    text += i === 0 ? '{"operations":[' : ',{"operations":[';
    for (let j = 0; j < operations.length; j++) {
      const o = operations[j] as { op?: unknown; args?: unknown; expectVersion?: unknown } | null;
      if (o === null || typeof o !== 'object' || Array.isArray(o) || typeof o.op !== 'string') return undefined;
      const { op, args, expectVersion } = o;
      if (ownKeyCount(o) !== 1 + (args === undefined ? 0 : 1) + (expectVersion === undefined ? 0 : 1)) return undefined;
      text += j === 0 ? '{' : ',{';
      if (args !== undefined) {
        const argsText = canon(args);
        if (argsText === undefined) return undefined;
        text += `"args":${argsText},`;
      }
      if (expectVersion !== undefined) {
        const versionText = canon(expectVersion);
        if (versionText === undefined) return undefined;
        text += `"expectVersion":${versionText},`;
      }
      text += `"op":${JSON.stringify(op)}}`;
    }
    text += `],"service":${JSON.stringify(p.service)}}`;
  }
  return `${text}]`;
}

export function requestHash(request: BeginTransactionRequest): string {
  const { participants, timeoutMs, prepareTimeoutMs } = request;
  // The text of { participants, prepareTimeoutMs, timeoutMs } in key order, written without building that object;
  // prepareTimeoutMs only when given, so keys logged before it existed keep their hash.
  let text = '{"participants":';
  text += (Array.isArray(participants) ? participantsText(participants) : undefined) ?? canon(participants) ?? 'null';
  if (prepareTimeoutMs !== undefined) text += `,"prepareTimeoutMs":${JSON.stringify(prepareTimeoutMs)}`;
  text += `,"timeoutMs":${JSON.stringify(timeoutMs ?? null)}}`;
  // One call, no Hash object per request.
  return hash('sha256', text, 'hex');
}
