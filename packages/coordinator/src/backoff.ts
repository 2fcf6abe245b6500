/**
 * Exponential backoff with full jitter: the wait before retry n is uniform in [0, min(cap, base·2^(n-1))].
 * Full jitter spreads retries of many transactions hitting the same sick sidecar instead of synchronising them.
 */
export interface BackoffPolicy {
  baseMs: number;
  capMs: number;
}

export const PREPARE_BACKOFF: BackoffPolicy = { baseMs: 20, capMs: 500 };
export const DELIVERY_BACKOFF: BackoffPolicy = { baseMs: 50, capMs: 5_000 };

/** attempt counts from 1 (the wait after the first failed attempt). */
export function backoffDelayMs(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** exponent);
  return Math.floor(random() * ceiling);
}
