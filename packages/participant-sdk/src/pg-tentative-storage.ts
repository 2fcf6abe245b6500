/**
 * PostgreSQL with tentative state: like SQLite, a set of prepares (or decisions) is one transaction on one
 * pooled client, each branch in its own savepoint, and the async hooks run their SQL on that client. A
 * prepare commits its tentative change with its barrier, branch and lock rows before the yes leaves.
 * Isolation: the hooks run at the pool's isolation (READ COMMITTED by default); between prepare and outcome
 * the SDK's key locks (restored from txm_key_locks after a restart) keep conflicting branches apart.
 *
 * Outcomes that travel with prepares may be committed unforced (`synchronous_commit = off` for that
 * transaction, as SQLite's are written at `synchronous = NORMAL`): PostgreSQL appends commit records to one
 * WAL in order, and a synchronous commit flushes the WAL up to its own record, so a forced commit sent after
 * an unforced one has returned makes both durable with one flush. Transactions run concurrently on pooled
 * clients, so the storage counts: unforced commits that have returned, and how many of them a forced commit
 * sent after them has made durable. Until the two agree `unforcedPending` is true and nothing may answer.
 */
import { channel } from 'node:diagnostics_channel';
import type { Pool, PoolClient } from 'pg';
import type { BranchItem, BranchItemResult } from '@txmesh/protocol';
import type { BranchRecord, HeldLock } from './barrier-store.ts';
import { decisionRule, isolatedPrepareRule } from './branch-rules.ts';
import { KeyedMutex } from './keyed-mutex.ts';
import type { PgOperationHandlers } from './pg-operation.ts';
import { PgRows, asLockRefusal, hookContext, readBranch, readHeldLocks } from './pg-rows.ts';
import { BUMP_FORCE_MARK, pruneFinishedPg } from './pg-schema.ts';
import type { DecisionWriteOptions, HookCall, ParticipantStorage, PrepareOutcome, PrepareWrite, PreparedBranch, RuleContext, Written } from './storage-adapter.ts';
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

/**
 * Published as each write transaction of the tentative storage commits, with its `synchronous_commit` then
 * ('on': flushed at commit, 'off': not), so tests can see which writes were forced. Nothing subscribes in
 * production.
 */
export const pgWriteChannel = channel('txmesh:participant:pg-write');
export interface PgWriteEvent {
  kind: 'prepares' | 'decisions' | 'force';
  synchronousCommit: string;
  /** This forced write also makes earlier unforced outcomes durable. */
  carriesUnforced: boolean;
}

export interface PgTransactionOptions {
  /** Commit without waiting for the WAL flush (`SET LOCAL synchronous_commit = off`). */
  unforced?: boolean;
  /** Runs on the client right before COMMIT is sent. */
  beforeCommit?: (client: PoolClient) => Promise<void>;
}

/** Runs fn in one transaction on one client; the client is dropped from the pool if the connection broke. */
export async function inPgTransaction<T>(pool: Pool, lockWaitMs: number, fn: (client: PoolClient) => Promise<T>, options: PgTransactionOptions = {}): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    // A hook waiting for a row lock gives up like a wait for a business key does.
    await client.query(`SET LOCAL lock_timeout = ${Math.max(1, lockWaitMs)}${options.unforced ? '; SET LOCAL synchronous_commit = off' : ''}`);
    const result = await fn(client);
    await options.beforeCommit?.(client);
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

async function runRules<T>(client: PoolClient, ctx: RuleContext, rules: (rows: TentativeRows) => (() => Steps<T>)[]): Promise<Written<T>> {
  const results: T[] = [];
  for (const rule of rules(new TentativeRows(client, ctx.lockWaitMs))) results.push(await runAwaiting(rule()));
  return { results, transactions: 1 };
}

async function publishWrite(client: PoolClient, kind: PgWriteEvent['kind'], carriesUnforced: boolean): Promise<void> {
  if (!pgWriteChannel.hasSubscribers) return;
  const { rows } = await client.query<{ synchronous_commit: string }>('SHOW synchronous_commit');
  pgWriteChannel.publish({ kind, synchronousCommit: rows[0]?.synchronous_commit ?? '?', carriesUnforced } satisfies PgWriteEvent);
}

export async function preparedRows(pool: Pool): Promise<PreparedBranch[]> {
  const { rows } = await pool.query<{ tx_id: string; prepared_at: string }>(`SELECT tx_id, prepared_at FROM txm_branches WHERE state = 'prepared' ORDER BY prepared_at`);
  return rows.map((row) => ({ txId: row.tx_id, preparedAt: Number(row.prepared_at) }));
}

export class PgTentativeStorage implements ParticipantStorage {
  readonly backend = 'postgres-tentative';
  readonly #pool: Pool;
  readonly #mutex = new KeyedMutex();
  /** Unforced commits that have returned. */
  #unforcedCommitted = 0;
  /** How many of them a forced commit, sent after they returned, has made durable. */
  #unforcedDurable = 0;

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

  writeDecisions(items: readonly BranchItem[], ctx: RuleContext, options: DecisionWriteOptions = {}): Promise<Written<BranchItemResult>> {
    const txIds = items.map((item) => item.txId);
    const rules = (rows: TentativeRows): (() => Steps<BranchItemResult>)[] => items.map((item) => () => decisionRule(rows, item, ctx));
    return options.unforced ? this.#writeUnforced(txIds, ctx, rules) : this.#write(txIds, ctx, rules, 'decisions');
  }

  /** Outcomes were committed unforced and no forced commit sent after them has returned yet. */
  get unforcedPending(): boolean {
    return this.#unforcedCommitted > this.#unforcedDurable;
  }

  async forceUnforced(): Promise<void> {
    if (!this.unforcedPending) return;
    await this.#forced('force', this.#pool, 0, async () => undefined);
  }

  /** One transaction for all branches, each rule run in turn (the rules isolate each branch in a savepoint). */
  #write<T>(txIds: string[], ctx: RuleContext, rules: (rows: TentativeRows) => (() => Steps<T>)[], kind: PgWriteEvent['kind'] = 'prepares'): Promise<Written<T>> {
    return this.#mutex.with(txIds, () => this.#forced(kind, this.#pool, ctx.lockWaitMs, (client) => runRules(client, ctx, rules)));
  }

  #writeUnforced<T>(txIds: string[], ctx: RuleContext, rules: (rows: TentativeRows) => (() => Steps<T>)[]): Promise<Written<T>> {
    return this.#mutex.with(txIds, async () => {
      const written = await inPgTransaction(this.#pool, ctx.lockWaitMs, (client) => runRules(client, ctx, rules), {
        unforced: true,
        beforeCommit: (client) => publishWrite(client, 'decisions', false),
      });
      this.#unforcedCommitted += 1;
      return written;
    });
  }

  /**
   * A transaction flushed at commit. It covers the unforced commits that returned before its COMMIT is sent;
   * while some are pending it bumps the force mark, so it has a write of its own and PostgreSQL flushes.
   */
  async #forced<T>(kind: PgWriteEvent['kind'], pool: Pool, lockWaitMs: number, fn: (client: PoolClient) => Promise<T>): Promise<T> {
    let covers = 0;
    const result = await inPgTransaction(pool, lockWaitMs, fn, {
      beforeCommit: async (client) => {
        covers = this.#unforcedCommitted;
        const carrying = covers > this.#unforcedDurable;
        // Taken last, right before COMMIT, so its holder waits for nothing else: no timeout, no deadlock.
        if (carrying) await client.query(`SET LOCAL lock_timeout = 0; ${BUMP_FORCE_MARK}`);
        await publishWrite(client, kind, carrying);
      },
    });
    this.#unforcedDurable = Math.max(this.#unforcedDurable, covers);
    return result;
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
