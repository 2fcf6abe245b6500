/**
 * What a service over PostgreSQL writes per operation. The hooks are async and get `client`, a `pg` client
 * inside the very transaction that writes the SDK's barrier row, so the business change and the barrier
 * row commit or vanish together. Two modes:
 * - tentative (`definePgOperation`): prepare makes a tentative change and commits it with the barrier row;
 *   commit applies it, rollback undoes it (any schema, as with SQLite);
 * - native (`defineNativeOperation`): one `execute` hook makes the real change; the SDK ends its transaction
 *   with PREPARE TRANSACTION before voting yes, then COMMIT PREPARED or ROLLBACK PREPARED.
 */
import type { PoolClient } from 'pg';
import type { OperationParsing } from './operation-parser.ts';

/** How a PostgreSQL participant runs its operations: tentative rows and a barrier, or PREPARE TRANSACTION. */
export const PgMode = { TENTATIVE: 'tentative', NATIVE: 'native' } as const;
export type PgMode = (typeof PgMode)[keyof typeof PgMode];

export interface PgHookContext {
  /** The transaction's client: run the business SQL on it (never on the pool). */
  client: PoolClient;
  txId: string;
  opIndex: number;
  service: string;
  /** The row version the caller read, when the operation carried one. */
  expectVersion?: number;
}

export interface PgOperationHandlers<A> extends OperationParsing<A> {
  /** Makes the tentative change; throw BusinessRefusal to vote no. */
  prepare(ctx: PgHookContext, args: A): Promise<void> | void;
  /** Runs only if this branch prepared yes, exactly once. */
  commit(ctx: PgHookContext, args: A): Promise<void> | void;
  /** Runs only if prepare had succeeded (undo the tentative change), exactly once. */
  rollback(ctx: PgHookContext, args: A): Promise<void> | void;
}

export interface NativeOperationHandlers<A> extends OperationParsing<A> {
  /** The real change, in the transaction PostgreSQL will prepare; throw BusinessRefusal to vote no. */
  execute(ctx: PgHookContext, args: A): Promise<void> | void;
}

export function definePgOperation<A>(handlers: PgOperationHandlers<A>): PgOperationHandlers<A> {
  return handlers;
}

export function defineNativeOperation<A>(handlers: NativeOperationHandlers<A>): NativeOperationHandlers<A> {
  return handlers;
}
