/**
 * Payment on PostgreSQL with native two-phase commit: `charge` is one UPDATE (never below zero) and one row in
 * payment_charges, in the transaction the SDK ends with PREPARE TRANSACTION. No held column, no compensation:
 * until COMMIT PREPARED the change is invisible and PostgreSQL holds the account's row lock.
 */
import type { Pool } from 'pg';
import { BusinessRefusal, defineNativeOperation } from '@txmesh/participant-sdk';
import { argsObject, positiveIntArg, stringArg } from './args.ts';
import { accountName, type CatalogOptions } from './catalog.ts';
import { sortedIds } from './ledger.ts';
import type { ServiceCheck } from './service-definition.ts';

interface ChargeArgs {
  account: string;
  amount: number;
}

export const pgCharge = defineNativeOperation<ChargeArgs>({
  parseArgs(raw) {
    const args = argsObject(raw, 'charge');
    return { account: stringArg(args, 'account', 'charge'), amount: positiveIntArg(args, 'amount', 'charge') };
  },
  writeKeys: (args) => [`account:${args.account}`],
  async execute({ client, txId, opIndex }, args) {
    const taken = await client.query('UPDATE payment_accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1', [args.amount, args.account]);
    if (taken.rowCount !== 1) {
      const { rows } = await client.query<{ balance: string }>('SELECT balance FROM payment_accounts WHERE id = $1', [args.account]);
      if (rows[0] === undefined) throw new BusinessRefusal('UNKNOWN_ACCOUNT', `There is no account ${args.account}.`);
      throw new BusinessRefusal('INSUFFICIENT_FUNDS', `${args.account} has ${rows[0].balance} available, ${args.amount} requested.`);
    }
    await client.query('INSERT INTO payment_charges (tx_id, op_index, account, amount) VALUES ($1, $2, $3, $4)', [txId, opIndex, args.account, args.amount]);
  },
});

/** Creates the tables and seeds the accounts once (a restarted service keeps its rows). */
export async function migratePgPayment(pool: Pool, catalog: CatalogOptions): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(`SELECT pg_advisory_xact_lock(7207002)`);
    await client.query(`
      CREATE TABLE IF NOT EXISTS payment_accounts (id TEXT PRIMARY KEY, initial_balance BIGINT NOT NULL, balance BIGINT NOT NULL CHECK (balance >= 0));
      CREATE TABLE IF NOT EXISTS payment_charges (
        tx_id TEXT NOT NULL, op_index INTEGER NOT NULL, account TEXT NOT NULL REFERENCES payment_accounts (id), amount BIGINT NOT NULL,
        PRIMARY KEY (tx_id, op_index));
      CREATE TABLE IF NOT EXISTS payment_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);`);
    const seeded = await client.query(`INSERT INTO payment_meta (key, value) VALUES ('seeded_at', $1) ON CONFLICT DO NOTHING`, [String(Date.now())]);
    if (seeded.rowCount === 1) {
      const ids = Array.from({ length: catalog.accounts }, (_, i) => accountName(i + 1));
      await client.query('INSERT INTO payment_accounts (id, initial_balance, balance) SELECT id, $2, $2 FROM unnest($1::text[]) AS a(id)', [ids, catalog.balancePerAccount]);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** Money is conserved per account (initial = balance + committed charges), no balance is negative. */
export async function checkPgPayment(pool: Pool): Promise<ServiceCheck> {
  const { rows } = await pool.query<{ id: string; initial_balance: string; balance: string; charged: string }>(
    `SELECT a.id, a.initial_balance, a.balance, COALESCE(SUM(c.amount), 0) AS charged
       FROM payment_accounts a LEFT JOIN payment_charges c ON c.account = a.id GROUP BY a.id`,
  );
  const problems: string[] = [];
  const totals = { initialTotal: 0, balances: 0, committedCharges: 0 };
  let balanceMismatches = 0;
  for (const row of rows) {
    const [initial, balance, charged] = [Number(row.initial_balance), Number(row.balance), Number(row.charged)];
    totals.initialTotal += initial;
    totals.balances += balance;
    totals.committedCharges += charged;
    if (initial !== balance + charged) {
      balanceMismatches += 1;
      problems.push(`${row.id}: initial balance ${initial} != balance ${balance} + committed ${charged}`);
    }
  }
  const committed = (await pool.query<{ tx_id: string }>('SELECT DISTINCT tx_id FROM payment_charges')).rows.map((r) => r.tx_id);
  return { committedTxIds: sortedIds(committed), invariants: { accounts: rows.length, ...totals, balanceMismatches }, problems };
}
