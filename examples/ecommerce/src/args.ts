/**
 * Argument checks for operation parseArgs hooks. Anything malformed becomes a BAD_ARGS refusal, so a
 * bad request votes no instead of crashing the service.
 */
import { BusinessRefusal } from '@txmesh/participant-sdk';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function argsObject(args: unknown, op: string): Record<string, unknown> {
  if (!isRecord(args)) throw new BusinessRefusal('BAD_ARGS', `${op}: args must be a JSON object`);
  return args;
}

export function stringArg(args: Record<string, unknown>, field: string, op: string, opts: { allowEmpty?: boolean } = {}): string {
  const value = args[field];
  if (typeof value !== 'string') throw new BusinessRefusal('BAD_ARGS', `${op}: ${field} must be a string`);
  if (!opts.allowEmpty && value.length === 0) throw new BusinessRefusal('BAD_ARGS', `${op}: ${field} must not be empty`);
  if (value.length > 500) throw new BusinessRefusal('BAD_ARGS', `${op}: ${field} is longer than 500 characters`);
  return value;
}

/** Whole positive quantities only: fractional money or stock would break the exact-sum invariants. */
export function positiveIntArg(args: Record<string, unknown>, field: string, op: string): number {
  const value = args[field];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new BusinessRefusal('BAD_ARGS', `${op}: ${field} must be a positive integer`);
  }
  return value;
}
