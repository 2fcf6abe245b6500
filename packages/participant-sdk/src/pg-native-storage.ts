/**
 * PostgreSQL with native two-phase commit. A prepare runs the `execute` hooks and writes the branch and
 * barrier rows in its own transaction and ends it with PREPARE TRANSACTION '<gid>' before the yes leaves:
 * PostgreSQL then keeps the change and its row locks on disk, across restarts, until COMMIT PREPARED or
 * ROLLBACK PREPARED. No tentative columns, no compensating code.
 *
 * The gid is `txm:<service>:<txId>`: the service's own prepared transactions are those of pg_prepared_xacts
 * with that prefix in this database. The branch row lives inside the prepared transaction, invisible to
 * everyone until COMMIT PREPARED; so a visible 'prepared' row without its gid means COMMIT PREPARED ran and
 * the process died before marking the row committed (finished at start).
 *
 * Isolation: the execute hooks run at the pool's isolation (READ COMMITTED by default) and the prepared
 * transaction holds PostgreSQL's row locks until the outcome, also after a restart: a transaction touching a
 * row a prepared branch changed waits (a prepare: up to lockWaitMs, then votes no LOCK_TIMEOUT). The SDK's key
 * locks keep conflicting branches apart while this process runs; no lock rows are written (they would be
 * invisible inside the prepared transaction), PostgreSQL's row locks stand in for them after a restart.
 */
import type { Pool, PoolClient } from 'pg';
import { BranchAction, ItemStatus, TxmeshError, type BranchItem, type BranchItemResult, type LockMode, type OperationSpec } from '@txmesh/protocol';
import type { BranchRecord, HeldLock } from './barrier-store.ts';
import { decisionFailure, prepareRule, rollbackAfterCommit } from './branch-rules.ts';
import { itemResult } from './item-results.ts';
import { KeyedMutex } from './keyed-mutex.ts';
import type { NativeOperationHandlers } from './pg-operation.ts';
import { gidOf } from './pg-gid.ts';
import { PgRows, asLockRefusal, hookContext, readBranch } from './pg-rows.ts';
import { pruneFinishedPg } from './pg-schema.ts';
import { ParticipantSteps, reachStep } from './steps.ts';
import type { HookCall, ParticipantStorage, PrepareOutcome, PrepareWrite, PreparedBranch, RuleContext, Written } from './storage-adapter.ts';
import { runAwaiting, type Steps } from './steps-runner.ts';

/** Branches of one batch written at once, each on its own pooled client. */
const LANES = 4;

/** A gid is a string literal in COMMIT/ROLLBACK PREPARED (no parameters there). */
const literal = (gid: string): string => `'${gid.replaceAll("'", "''")}'`;

/** Fails at start, with what to do, when PostgreSQL cannot prepare transactions at all. */
export async function assertPreparedTransactionsOn(pool: Pool): Promise<number> {
  const { rows } = await pool.query<{ max_prepared_transactions: string }>('SHOW max_prepared_transactions');
  const max = Number(rows[0]?.max_prepared_transactions ?? 0);
  if (!(max > 0)) throw new TxmeshError('TXM_PG_NO_PREPARED_TRANSACTIONS', 'max_prepared_transactions is 0 on this PostgreSQL server');
  return max;
}

class NativeRows extends PgRows {
  readonly #gid: string;
  readonly #lockWaitMs: number;

  constructor(client: PoolClient, gid: string, lockWaitMs: number) {
    super(client);
    this.#gid = gid;
    this.#lockWaitMs = lockWaitMs;
  }

  /** The visible row, or a prepared transaction of this branch (its row is inside it). */
  override async branch(txId: string): Promise<BranchRecord | undefined> {
    const row = await readBranch(this.client, txId);
    if (row) return row;
    const preparedAt = await preparedAtOf(this.client, this.#gid);
    if (preparedAt === undefined) return undefined;
    return { txId, state: 'prepared', reason: undefined, message: undefined, operations: [], preparedAt };
  }

  /** No lock rows: inside the prepared transaction nobody could read them; PostgreSQL's row locks stay instead. */
  override recordPrepared(txId: string, operations: OperationSpec[], _locks: readonly { key: string; mode: LockMode }[], now: number): Promise<void> {
    return super.recordPrepared(txId, operations, [], now);
  }

  /** The branch's own transaction, ended by PREPARE TRANSACTION; a throw rolls it back. */
  async isolated<T>(work: () => Steps<T>): Promise<T> {
    await this.client.query('BEGIN');
    try {
      await this.client.query(`SET LOCAL lock_timeout = ${Math.max(1, this.#lockWaitMs)}`);
      const result = await runAwaiting(work());
      await this.client.query(`PREPARE TRANSACTION ${literal(this.#gid)}`);
      return result;
    } catch (err) {
      await this.client.query('ROLLBACK');
      throw asLockRefusal(err, this.#lockWaitMs);
    }
  }

  async runHook(call: HookCall): Promise<void> {
    if (call.phase !== 'prepare') throw new Error(`native two-phase commit runs no ${call.phase} hook`);
    const handlers = call.parsed.handlers as NativeOperationHandlers<unknown>;
    await handlers.execute(hookContext(this.client, call), call.parsed.args);
  }
}

async function preparedAtOf(client: Pick<PoolClient, 'query'>, gid: string): Promise<number | undefined> {
  const { rows } = await client.query<{ at: string }>(
    `SELECT (extract(epoch FROM prepared) * 1000)::bigint AS at FROM pg_prepared_xacts WHERE gid = $1 AND database = current_database()`,
    [gid],
  );
  return rows[0] ? Number(rows[0].at) : undefined;
}

async function markCommitted(client: Pick<PoolClient, 'query'>, txId: string, now: number): Promise<void> {
  await client.query(`UPDATE txm_branches SET state = 'committed', decided_at = $1 WHERE tx_id = $2 AND state = 'prepared'`, [now, txId]);
}

export class PgNativeStorage implements ParticipantStorage {
  readonly backend = 'postgres-native';
  readonly #pool: Pool;
  readonly #service: string;
  readonly #mutex = new KeyedMutex();

  constructor(pool: Pool, service: string) {
    this.#pool = pool;
    this.#service = service;
  }

  /** After a crash between COMMIT PREPARED and marking the row: those branches did commit. Returns how many. */
  async finishCommitted(): Promise<number> {
    const prepared = new Set((await this.preparedBranches()).map((b) => b.txId));
    const { rows } = await this.#pool.query<{ tx_id: string }>(`SELECT tx_id FROM txm_branches WHERE state = 'prepared'`);
    const done = rows.map((r) => r.tx_id).filter((txId) => !prepared.has(txId));
    for (const txId of done) await markCommitted(this.#pool, txId, Date.now());
    return done.length;
  }

  async branch(txId: string): Promise<BranchRecord | undefined> {
    const client = await this.#pool.connect();
    try {
      return await new NativeRows(client, gidOf(this.#service, txId), 0).branch(txId);
    } finally {
      client.release();
    }
  }

  /** Each branch is its own transaction (PREPARE TRANSACTION ends one transaction), so branches go in parallel lanes. */
  async writePrepares(works: readonly PrepareWrite[], ctx: RuleContext): Promise<Written<PrepareOutcome>> {
    const results = await this.#inLanes(works, (w) => w.txId, (client, w) =>
      runAwaiting(prepareRule(new NativeRows(client, gidOf(this.#service, w.txId), ctx.lockWaitMs), w, ctx)),
    );
    return { results, transactions: works.length };
  }

  async writeDecisions(items: readonly BranchItem[], ctx: RuleContext): Promise<Written<BranchItemResult>> {
    const results = await this.#inLanes(items, (item) => item.txId, (client, item) => this.#decide(client, item, ctx));
    return { results, transactions: items.length };
  }

  /**
   * Runs fn for every item, up to LANES at once, each lane on its own pooled client: branches are independent
   * transactions, and PostgreSQL flushes the WAL of PREPAREs and COMMIT PREPAREDs arriving together at once.
   * A lane that fails drops its client (its connection may be broken); the first failure is thrown.
   */
  async #inLanes<I, R>(items: readonly I[], txIdOf: (item: I) => string, fn: (client: PoolClient, item: I) => Promise<R>): Promise<R[]> {
    return this.#mutex.with(items.map(txIdOf), async () => {
      const results = new Array<R>(items.length);
      let next = 0;
      const lane = async (): Promise<void> => {
        const client = await this.#pool.connect();
        let broken: Error | undefined;
        try {
          while (next < items.length) {
            const i = next++;
            results[i] = await fn(client, items[i]!);
          }
        } catch (err) {
          broken = err instanceof Error ? err : new Error(String(err));
          throw err;
        } finally {
          client.release(broken);
        }
      };
      const lanes = await Promise.allSettled(Array.from({ length: Math.min(LANES, items.length) }, lane));
      const failed = lanes.find((l): l is PromiseRejectedResult => l.status === 'rejected');
      if (failed) throw failed.reason;
      return results;
    });
  }

  /** COMMIT PREPARED / ROLLBACK PREPARED, then the visible branch row says so; duplicates and stale asks are no-ops. */
  async #decide(client: PoolClient, item: BranchItem, ctx: RuleContext): Promise<BranchItemResult> {
    const ok = itemResult(item, ItemStatus.OK);
    const gid = gidOf(this.#service, item.txId);
    try {
      reachStep(ParticipantSteps.BEFORE_DECISION);
      const prepared = (await preparedAtOf(client, gid)) !== undefined;
      if (item.action === BranchAction.COMMIT) {
        if (prepared) {
          const sent = client.query(`COMMIT PREPARED ${literal(gid)}`);
          reachStep(ParticipantSteps.DURING_COMMIT_PREPARED);
          await sent;
        }
        const row = await readBranch(client, item.txId);
        if (!row || row.state === 'voted_no' || row.state === 'rolled_back') {
          return itemResult(item, ItemStatus.ERROR, 'TXM_COMMIT_WITHOUT_PREPARE', `branch ${item.txId} did not prepare yes here (${row?.state ?? 'unknown'})`);
        }
        await markCommitted(client, item.txId, Date.now());
        return ok;
      }
      if (prepared) await client.query(`ROLLBACK PREPARED ${literal(gid)}`);
      const row = await readBranch(client, item.txId);
      const now = Date.now();
      if (!row) await client.query(`INSERT INTO txm_branches (tx_id, state, decided_at) VALUES ($1, 'rolled_back', $2) ON CONFLICT (tx_id) DO NOTHING`, [item.txId, now]);
      else if (row.state === 'voted_no') await client.query('UPDATE txm_branches SET decided_at = $1 WHERE tx_id = $2', [now, item.txId]);
      else if (row.state === 'prepared' || row.state === 'committed') {
        // A visible prepared row means COMMIT PREPARED already ran: the commit stands.
        await markCommitted(client, item.txId, now);
        return rollbackAfterCommit(item, ctx);
      }
      return ok;
    } catch (err) {
      return decisionFailure(item, err, ctx);
    }
  }

  /** Native branches hold PostgreSQL row locks, not SDK lock rows: nothing to restore into the lock manager. */
  async heldLocks(): Promise<HeldLock[]> {
    return [];
  }

  /** This service's prepared transactions in this database, from pg_prepared_xacts. */
  async preparedBranches(): Promise<PreparedBranch[]> {
    const prefix = gidOf(this.#service, '');
    const { rows } = await this.#pool.query<{ gid: string; at: string }>(
      `SELECT gid, (extract(epoch FROM prepared) * 1000)::bigint AS at FROM pg_prepared_xacts
        WHERE database = current_database() AND starts_with(gid, $1) ORDER BY prepared`,
      [prefix],
    );
    return rows.map((row) => ({ txId: row.gid.slice(prefix.length), preparedAt: Number(row.at) }));
  }

  pruneFinished(before: number, tombstonesBefore: number): Promise<number> {
    return pruneFinishedPg(this.#pool, before, tombstonesBefore);
  }
}
