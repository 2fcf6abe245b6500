/**
 * The storage adapter contract on PostgreSQL through `pg`, in both modes: tentative state (async hooks,
 * a pending table) and native two-phase commit (one execute hook, PREPARE TRANSACTION). Also: native mode
 * refuses to start, with its code, on a server whose max_prepared_transactions is 0.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { test, type TestContext } from 'node:test';
import pg from 'pg';
import { BusinessRefusal, createPgParticipant, defineNativeOperation, definePgOperation, type PgParticipant, type PgParticipantOptions } from '@txmesh/participant-sdk';
import { BranchAction, PROTOCOL_VERSION, TxmeshError, newTxId, type BranchItem } from '@txmesh/protocol';
import { startTempPostgres } from '@txmesh/lab';
import { usePgServer } from './pg-server.ts';
import { LEDGER, START_BALANCE, creditKeys, parseCredit, storageContract, type ContractBackend, type CreditArgs } from './storage-contract.ts';
import { ensureTestTool } from './tools.ts';

const pgServer = usePgServer();

const ACCOUNTS = `CREATE TABLE accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL);
                  INSERT INTO accounts (id, balance) VALUES ('a', ${START_BALANCE}), ('b', ${START_BALANCE}), ('c', ${START_BALANCE})`;

/** Tentative state: a prepare parks the amount in pending (a debit counts against the balance at once). */
const tentativeLedger = {
  schema: `${ACCOUNTS}; CREATE TABLE pending (tx_id TEXT NOT NULL, op_index INTEGER NOT NULL, account TEXT NOT NULL, amount BIGINT NOT NULL, PRIMARY KEY (tx_id, op_index))`,
  operations: {
    credit: definePgOperation<CreditArgs>({
      parseArgs: parseCredit,
      writeKeys: creditKeys,
      async prepare({ client, txId, opIndex }, a) {
        const { rows } = await client.query<{ free: string }>(
          `SELECT balance + COALESCE((SELECT SUM(amount) FROM pending WHERE account = id AND amount < 0), 0) AS free FROM accounts WHERE id = $1`,
          [a.account],
        );
        if (!rows[0]) throw new BusinessRefusal('NO_ACCOUNT');
        if (Number(rows[0].free) + a.amount < 0) throw new BusinessRefusal('INSUFFICIENT_FUNDS');
        await client.query('INSERT INTO pending (tx_id, op_index, account, amount) VALUES ($1, $2, $3, $4)', [txId, opIndex, a.account, a.amount]);
      },
      async commit({ client, txId, opIndex }, a) {
        await client.query('UPDATE accounts SET balance = balance + $1 WHERE id = $2', [a.amount, a.account]);
        await client.query('DELETE FROM pending WHERE tx_id = $1 AND op_index = $2', [txId, opIndex]);
      },
      async rollback({ client, txId, opIndex }) {
        await client.query('DELETE FROM pending WHERE tx_id = $1 AND op_index = $2', [txId, opIndex]);
      },
    }),
  },
};

/** Native: the real change, held by PostgreSQL's prepared transaction until the outcome. */
const nativeLedger = {
  schema: ACCOUNTS,
  operations: {
    credit: defineNativeOperation<CreditArgs>({
      parseArgs: parseCredit,
      writeKeys: creditKeys,
      async execute({ client }, a) {
        const changed = await client.query('UPDATE accounts SET balance = balance + $1 WHERE id = $2 AND balance + $1 >= 0', [a.amount, a.account]);
        if (changed.rowCount === 1) return;
        const exists = await client.query('SELECT 1 FROM accounts WHERE id = $1', [a.account]);
        throw new BusinessRefusal(exists.rowCount === 1 ? 'INSUFFICIENT_FUNDS' : 'NO_ACCOUNT');
      },
    }),
  },
};

function backend(mode: 'tentative' | 'native'): ContractBackend {
  const ledger = mode === 'native' ? nativeLedger : tentativeLedger;
  return {
    name: `postgres ${mode}`,
    async create() {
      const connectionString = await pgServer.freshDatabase();
      const setup = new pg.Client({ connectionString });
      await setup.connect();
      await setup.query(ledger.schema);
      await setup.end();
      return async ({ lockWaitMs }) => {
        const pool = new pg.Pool({ connectionString, max: 4 });
        const options = { service: LEDGER, pool, mode, operations: ledger.operations, log: () => {}, ...(lockWaitMs === undefined ? {} : { lockWaitMs }) } as PgParticipantOptions;
        const participant = await createPgParticipant(options);
        let open = true;
        return {
          handleBatch: (req) => participant.handleBatch(req),
          preparedIds: async () => (await participant.preparedList()).prepared.map((b) => b.txId),
          prune: (now) => participant.pruneFinishedBranches(now),
          balance: async (account) => Number((await pool.query<{ balance: string }>('SELECT balance FROM accounts WHERE id = $1', [account])).rows[0]!.balance),
          async close() {
            if (!open) return;
            open = false;
            participant.close();
            await pool.end();
          },
        };
      };
    },
  };
}

/** A ledger participant on a fresh database, closed with the test. */
async function ledgerParticipant(t: TestContext, mode: 'tentative' | 'native'): Promise<{ participant: PgParticipant; pool: pg.Pool }> {
  const ledger = mode === 'native' ? nativeLedger : tentativeLedger;
  const connectionString = await pgServer.freshDatabase();
  const pool = new pg.Pool({ connectionString, max: 4 });
  t.after(() => pool.end());
  await pool.query(ledger.schema);
  const participant = await createPgParticipant({ service: LEDGER, pool, mode, operations: ledger.operations, log: () => {} } as PgParticipantOptions);
  t.after(() => participant.close());
  return { participant, pool };
}

storageContract(backend('tentative'));
storageContract(backend('native'));

test('native mode leaves nothing of its own in pg_prepared_xacts once every branch is decided, and names its gids txm:<service>:<txId>', async (t) => {
  const { participant, pool } = await ledgerParticipant(t, 'native');
  // One account each: branches of one batch on the same key would lose to each other (LOCK_CONFLICT). A
  // prepare carries its deadline, as the coordinator sends it.
  const prepare = (i: number) => ({ operations: [{ op: 'credit', args: { account: 'abc'[i]!, amount: 1 } }], deadline: Date.now() + 5_000 });
  const items = (action: BranchAction, ids: string[]): BranchItem[] =>
    ids.map((txId, i) => ({ action, txId, service: LEDGER, ...(action === BranchAction.PREPARE ? prepare(i) : {}) }));
  const ids = [newTxId(0), newTxId(0), newTxId(0)].sort();
  const prepared = await participant.handleBatch({ protocolVersion: PROTOCOL_VERSION, items: items(BranchAction.PREPARE, ids) });
  assert.deepEqual(prepared.results.map((r) => r.status), ['ok', 'ok', 'ok']);
  const gids = (await pool.query<{ gid: string }>('SELECT gid FROM pg_prepared_xacts ORDER BY gid')).rows.map((r) => r.gid);
  assert.deepEqual(gids, ids.map((id) => `txm:${LEDGER}:${id}`));
  await participant.handleBatch({ protocolVersion: PROTOCOL_VERSION, items: [...items(BranchAction.COMMIT, ids.slice(0, 2)), ...items(BranchAction.ROLLBACK, ids.slice(2))] });
  assert.equal((await pool.query('SELECT 1 FROM pg_prepared_xacts')).rowCount, 0);
  const balances = (await pool.query<{ balance: string }>(`SELECT balance FROM accounts ORDER BY id`)).rows.map((r) => Number(r.balance));
  assert.deepEqual(balances, [START_BALANCE + 1, START_BALANCE + 1, START_BALANCE], 'two committed, one rolled back');
});

test('native mode refuses to start with TXM_PG_NO_PREPARED_TRANSACTIONS when max_prepared_transactions is 0', async (t) => {
  const server = await startTempPostgres({ binDir: ensureTestTool('postgresql'), maxPreparedTransactions: 0 });
  const pool = new pg.Pool({ connectionString: server.connectionString, max: 1 });
  t.after(async () => {
    await pool.end();
    await server.stop();
  });
  await assert.rejects(
    createPgParticipant({ service: LEDGER, pool, mode: 'native', operations: nativeLedger.operations }),
    (err: unknown) => err instanceof TxmeshError && err.code === 'TXM_PG_NO_PREPARED_TRANSACTIONS' && /max_prepared_transactions/.test(err.message),
  );
  const tentative = await createPgParticipant({ service: LEDGER, pool, mode: 'tentative', operations: tentativeLedger.operations, log: () => {} });
  tentative.close();
});

/** What the tentative storage published for each write transaction (see pg-tentative-storage.ts). */
function recordPgWrites(t: TestContext): unknown[] {
  const writes: unknown[] = [];
  const listener = (message: unknown): void => void writes.push(message);
  subscribe('txmesh:participant:pg-write', listener);
  t.after(() => unsubscribe('txmesh:participant:pg-write', listener));
  return writes;
}


const ledgerItem = (action: BranchAction, txId: string, account = 'a', amount = 1): BranchItem =>
  action === BranchAction.PREPARE
    ? { action, txId, service: LEDGER, operations: [{ op: 'credit', args: { account, amount } }], deadline: Date.now() + 5_000 }
    : { action, txId, service: LEDGER };

test('tentative mode: a commit riding with a prepare is committed unforced and flushed by the prepare’s commit', async (t) => {
  const { participant, pool } = await ledgerParticipant(t, 'tentative');
  const first = newTxId(0);
  const second = newTxId(0);
  assert.equal((await participant.handleBatch({ protocolVersion: PROTOCOL_VERSION, items: [ledgerItem(BranchAction.PREPARE, first, 'a', 5)] })).results[0]?.status, 'ok');
  const writes = recordPgWrites(t);

  const response = await participant.handleBatch({ protocolVersion: PROTOCOL_VERSION, items: [ledgerItem(BranchAction.COMMIT, first), ledgerItem(BranchAction.PREPARE, second, 'b', 7)] });

  assert.deepEqual(response.results.map((r) => r.status), ['ok', 'ok']);
  assert.deepEqual(writes, [
    { kind: 'decisions', synchronousCommit: 'off', carriesUnforced: false },
    { kind: 'prepares', synchronousCommit: 'on', carriesUnforced: true },
  ]);
  const balance = async (id: string): Promise<number> => Number((await pool.query<{ balance: string }>('SELECT balance FROM accounts WHERE id = $1', [id])).rows[0]!.balance);
  assert.equal(await balance('a'), START_BALANCE + 5, 'the unforced commit applied');
  assert.equal((await pool.query<{ marks: string }>('SELECT marks FROM txm_force_marks')).rows[0]?.marks, '1', 'the carrying commit wrote the mark');
  // Outcomes alone are forced as before.
  await participant.handleBatch({ protocolVersion: PROTOCOL_VERSION, items: [ledgerItem(BranchAction.ROLLBACK, second)] });
  assert.deepEqual(writes[2], { kind: 'decisions', synchronousCommit: 'on', carriesUnforced: false });
});

test('tentative mode: a commit riding with a prepare that writes nothing is flushed on its own before the answer', async (t) => {
  const { participant } = await ledgerParticipant(t, 'tentative');
  const first = newTxId(0);
  const second = newTxId(0);
  const prepared = await participant.handleBatch({ protocolVersion: PROTOCOL_VERSION, items: [ledgerItem(BranchAction.PREPARE, first, 'a'), ledgerItem(BranchAction.PREPARE, second, 'b')] });
  assert.deepEqual(prepared.results.map((r) => r.status), ['ok', 'ok']);
  const writes = recordPgWrites(t);

  // The duplicate prepare is answered from its stored branch: no prepare transaction runs.
  const response = await participant.handleBatch({ protocolVersion: PROTOCOL_VERSION, items: [ledgerItem(BranchAction.COMMIT, first), ledgerItem(BranchAction.PREPARE, second, 'b')] });

  assert.deepEqual(response.results.map((r) => r.status), ['ok', 'ok']);
  assert.deepEqual(writes, [
    { kind: 'decisions', synchronousCommit: 'off', carriesUnforced: false },
    { kind: 'force', synchronousCommit: 'on', carriesUnforced: true },
  ]);
});
