/**
 * PostgreSQL with tentative state: like SQLite, a set of prepares (or decisions) is one transaction on one
 * pooled client, each branch in its own savepoint, and the async hooks run their SQL on that client. A
 * prepare commits its tentative change with its barrier, branch and lock rows before the yes leaves.
 * Isolation: the hooks run at the pool's isolation (READ COMMITTED by default); between prepare and outcome
 * the SDK's key locks (restored from txm_key_locks after a restart) keep conflicting branches apart.
 */
import type { Pool, PoolClient } from 'pg';
import type { BranchItem, BranchItemResult } from '@txmesh/protocol';
import type { BranchRecord, HeldLock } from './barrier-store.ts';
import { decisionRule, isolatedPrepareRule } from './branch-rules.ts';
import { KeyedMutex } from './keyed-mutex.ts';
import type { PgOperationHandlers } from './pg-operation.ts';
import { PgRows, asLockRefusal, hookContext, readBranch, readHeldLocks } from './pg-rows.ts';
import { pruneFinishedPg } from './pg-schema.ts';
import type { HookCall, ParticipantStorage, PrepareOutcome, PrepareWrite, PreparedBranch, RuleContext, Written } from './storage-adapter.ts';
import { runAwaiting, type Steps } from './steps-runner.ts';

class TentativeRows extends PgRows {
  readonly #lockWaitMs: number;
  #savepoints = 0;

  constructor(client: PoolClient, lockWaitMs: number) {
    super(client);
    this.#lockWaitMs = lockWaitMs;
  }

  async isolated<T>(work: () => Steps<T>): Promise<T> {
    this.#savepoints += 1;
    const name = `txm_branch_${this.#savepoints}`;
    await this.client.query(`SAVEPOINT ${name}`);
    try {
      const result = await runAwaiting(work());
      await this.client.query(`RELEASE SAVEPOINT ${name}`);
      return result;
    } catch (err) {
      await this.client.query(`ROLLBACK TO SAVEPOINT ${name}`);
      throw asLockRefusal(err, this.#lockWaitMs);
    }
  }

  async runHook(call: HookCall): Promise<void> {
    const handlers = call.parsed.handlers as PgOperationHandlers<unknown>;
    await handlers[call.phase](hookContext(this.client, call), call.parsed.args);
  }
}

/** Runs fn in one transaction on one client; the client is dropped from the pool if the connection broke. */
export async function inPgTransaction<T>(pool: Pool, lockWaitMs: number, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    // A hook waiting for a row lock gives up like a wait for a business key does.
    await client.query(`SET LOCAL lock_timeout = ${Math.max(1, lockWaitMs)}`);
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch((rollbackErr: unknown) => {
      broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
    });
    throw err;
  } finally {
    client.release(broken);
  }
}

export async function preparedRows(pool: Pool): Promise<PreparedBranch[]> {
  const { rows } = await pool.query<{ tx_id: string; prepared_at: string }>(`SELECT tx_id, prepared_at FROM txm_branches WHERE state = 'prepared' ORDER BY prepared_at`);
  return rows.map((row) => ({ txId: row.tx_id, preparedAt: Number(row.prepared_at) }));
}

export class PgTentativeStorage implements ParticipantStorage {
  readonly backend = 'postgres-tentative';
  readonly #pool: Pool;
  readonly #mutex = new KeyedMutex();

  constructor(pool: Pool) {
    this.#pool = pool;
  }

  branch(txId: string): Promise<BranchRecord | undefined> {
    return readBranch(this.#pool, txId);
  }

  writePrepares(works: readonly PrepareWrite[], ctx: RuleContext): Promise<Written<PrepareOutcome>> {
    return this.#write(
      works.map((w) => w.txId),
      ctx,
      (rows) => works.map((w) => () => isolatedPrepareRule(rows, w, ctx)),
    );
  }

  writeDecisions(items: readonly BranchItem[], ctx: RuleContext): Promise<Written<BranchItemResult>> {
    return this.#write(
      items.map((item) => item.txId),
      ctx,
      (rows) => items.map((item) => () => decisionRule(rows, item, ctx)),
    );
  }

  /** One transaction for all branches, each rule run in turn (the rules isolate each branch in a savepoint). */
  #write<T>(txIds: string[], ctx: RuleContext, rules: (rows: TentativeRows) => (() => Steps<T>)[]): Promise<Written<T>> {
    return this.#mutex.with(txIds, () =>
      inPgTransaction(this.#pool, ctx.lockWaitMs, async (client) => {
        const results: T[] = [];
        for (const rule of rules(new TentativeRows(client, ctx.lockWaitMs))) results.push(await runAwaiting(rule()));
        return { results, transactions: 1 };
      }),
    );
  }

  heldLocks(): Promise<HeldLock[]> {
    return readHeldLocks(this.#pool);
  }

  preparedBranches(): Promise<PreparedBranch[]> {
    return preparedRows(this.#pool);
  }

  pruneFinished(before: number, tombstonesBefore: number): Promise<number> {
    return pruneFinishedPg(this.#pool, before, tombstonesBefore);
  }
}
