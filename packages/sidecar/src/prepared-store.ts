/**
 * What the sidecar must remember across crashes: every branch its service voted yes on and whose outcome
 * has not been acknowledged yet. After a restart these records are the in-doubt list it resolves by asking
 * the owning shard.
 */
import type { OperationSpec, TraceCarrier } from '@txmesh/protocol';

export interface PreparedRecord {
  txId: string;
  service: string;
  operations: OperationSpec[];
  /** Epoch ms the sidecar recorded the yes vote. */
  preparedAt: number;
  /** The branch's trace context, so an outcome delivered after a restart joins the transaction's trace. */
  trace?: TraceCarrier;
}

/**
 * Synchronous on purpose: the SQLite implementation is synchronous, and the batch handler must know the
 * records are durable before it answers.
 */
export interface PreparedStore {
  /** Records all of them atomically (one transaction, one fsync). A txId already present keeps its first record. */
  put(records: readonly PreparedRecord[]): void;
  /** Forgets all of them (get, list and count no longer see them); unknown ids are ignored. */
  remove(txIds: readonly string[]): void;
  get(txId: string): PreparedRecord | undefined;
  /** Every record, oldest first. */
  list(): PreparedRecord[];
  count(): number;
  close(): void;
}
