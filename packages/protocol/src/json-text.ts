/**
 * Parses a JSON request body from another process, refusing keys that would reach an object's prototype if
 * the body were ever merged into one (`__proto__`, `constructor.prototype`), as fastify's parser does.
 */
import { TxmeshError } from './errors.ts';

/** Checked key by key only when the text could hold such a key (escaped or not): batches are large. */
const PROTOTYPE_HINT = /__proto__|constructor|\\u/;

/** Throws TXM_BAD_REQUEST when the text is not JSON or holds a prototype key. */
export function parseJsonRefusingPrototypeKeys(text: string): unknown {
  try {
    return PROTOTYPE_HINT.test(text) ? JSON.parse(text, refusePrototypeKeys) : JSON.parse(text);
  } catch (err) {
    if (err instanceof TxmeshError) throw err;
    throw new TxmeshError('TXM_BAD_REQUEST', 'the body is not valid JSON');
  }
}

function refusePrototypeKeys(this: unknown, key: string, value: unknown): unknown {
  if (key === '__proto__' || (key === 'constructor' && typeof value === 'object' && value !== null && Object.hasOwn(value, 'prototype'))) {
    throw new TxmeshError('TXM_BAD_REQUEST', 'the body holds a __proto__ or constructor.prototype key');
  }
  return value;
}
