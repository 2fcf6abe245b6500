/**
 * Transaction ids name their shard: "<shard>-<time base36>-<random>". Anyone holding an id (a
 * recovering sidecar, a polling client) finds the deciding shard without a directory.
 */
import { randomBytes } from 'node:crypto';

const TX_ID_PATTERN = /^(\d{1,4})-([0-9a-z]{1,12})-([0-9a-f]{16})$/;

export function newTxId(shard: number, now: number = Date.now()): string {
  if (!Number.isInteger(shard) || shard < 0 || shard > 9999) throw new RangeError(`shard out of range: ${shard}`);
  return `${shard}-${now.toString(36)}-${randomBytes(8).toString('hex')}`;
}

/** The shard a transaction id names, or undefined when the id is malformed. */
export function shardOfTxId(txId: string): number | undefined {
  const match = TX_ID_PATTERN.exec(txId);
  return match ? Number(match[1]) : undefined;
}

export function isTxId(value: unknown): value is string {
  return typeof value === 'string' && TX_ID_PATTERN.test(value);
}
