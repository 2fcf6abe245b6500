/**
 * What a service writes per operation: argument parsing, the business keys it locks, and the three
 * synchronous hooks that run inside the participant's local SQLite transactions.
 */
import type Database from 'better-sqlite3';
import { isReasonToken } from '@txmesh/protocol';

/**
 * Thrown by parseArgs or prepare to vote no with a business reason, e.g. "OUT_OF_STOCK". The reason is a
 * token a program compares (letters, digits, . _ -, up to 64); the sentence for people goes in `message`.
 */
export class BusinessRefusal extends Error {
  readonly reason: string;

  constructor(reason: string, message?: string) {
    // Thrown inside a hook, this TypeError votes no with PREPARE_FAILED and is logged: the developer sees it.
    if (!isReasonToken(reason)) throw new TypeError(`BusinessRefusal reason must be a token such as "OUT_OF_STOCK" (put sentences in message), got ${JSON.stringify(reason)}`);
    super(message ?? reason);
    this.name = 'BusinessRefusal';
    this.reason = reason;
  }
}

export interface HookContext {
  db: Database.Database;
  txId: string;
  opIndex: number;
  service: string;
  /** The row version the caller read, when the operation carried one (see VersionedRows.expect). */
  expectVersion?: number;
}

export interface OperationHandlers<A> {
  /** Validate/convert; throw BusinessRefusal('BAD_ARGS', ...) on bad input. */
  parseArgs(args: unknown): A;
  /** Business keys this operation only reads: locked shared from prepare to commit/rollback. */
  readKeys?(args: A): string[];
  /** Business keys this operation changes: locked exclusively from prepare to commit/rollback. */
  writeKeys?(args: A): string[];
  /** The same as writeKeys (its older name). */
  lockKeys?(args: A): string[];
  /** Synchronous, runs inside the local SQLite transaction; makes the tentative change. */
  prepare(ctx: HookContext, args: A): void;
  /** Runs only if this branch prepared yes, exactly once. */
  commit(ctx: HookContext, args: A): void;
  /** Runs only if prepare had succeeded (undo the tentative change), exactly once. */
  rollback(ctx: HookContext, args: A): void;
}

export function defineOperation<A>(handlers: OperationHandlers<A>): OperationHandlers<A> {
  return handlers;
}
