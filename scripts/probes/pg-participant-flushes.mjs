// WAL flushes per batch of a PostgreSQL (tentative) participant when a client runs one transaction after
// another: each batch carries the previous transaction's commit and the next one's prepare, as the coordinator
// sends them at concurrency 1. Starts its own PostgreSQL in a temp dir, runs N such batches through the SDK (no
// HTTP), and reads the server's WAL syncs from pg_stat_wal. Prints one JSON line. A probe for docs/design.md,
// not part of the product. After `npm run build` (the server binaries from scripts/test-tools/postgresql.sh):
//   node scripts/probes/pg-participant-flushes.mjs [batches=500] [binDir=/usr/lib/postgresql/15/bin]
import { loadavg } from 'node:os';
import pg from 'pg';
import { createPgParticipant, definePgOperation, BusinessRefusal } from '@txmesh/participant-sdk';
import { PROTOCOL_VERSION, newTxId } from '@txmesh/protocol';
import { startTempPostgres } from '@txmesh/lab';

const batches = Number(process.argv[2] ?? 500);
const binDir = process.argv[3] ?? '/usr/lib/postgresql/15/bin';
const server = await startTempPostgres({ binDir });
const pool = new pg.Pool({ connectionString: server.connectionString, max: 4 });
try {
  await pool.query(`CREATE TABLE accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL);
                    INSERT INTO accounts VALUES ('a', 1000000);
                    CREATE TABLE pending (tx_id TEXT NOT NULL, op_index INTEGER NOT NULL, amount BIGINT NOT NULL, PRIMARY KEY (tx_id, op_index))`);
  const credit = definePgOperation({
    parseArgs: (args) => args,
    writeKeys: () => ['account:a'],
    async prepare({ client, txId, opIndex }, a) {
      if (!Number.isInteger(a.amount)) throw new BusinessRefusal('BAD_AMOUNT');
      await client.query('INSERT INTO pending VALUES ($1, $2, $3)', [txId, opIndex, a.amount]);
    },
    async commit({ client, txId, opIndex }, a) {
      await client.query("UPDATE accounts SET balance = balance + $1 WHERE id = 'a'", [a.amount]);
      await client.query('DELETE FROM pending WHERE tx_id = $1 AND op_index = $2', [txId, opIndex]);
    },
    async rollback({ client, txId, opIndex }) {
      await client.query('DELETE FROM pending WHERE tx_id = $1 AND op_index = $2', [txId, opIndex]);
    },
  });
  const participant = await createPgParticipant({ service: 'ledger', pool, mode: 'tentative', operations: { credit }, log: () => {} });
  const prepare = (txId) => ({ action: 'prepare', txId, service: 'ledger', operations: [{ op: 'credit', args: { amount: 1 } }], deadline: Date.now() + 10_000 });
  const walSyncs = async () => {
    await new Promise((resolve) => setTimeout(resolve, 1500)); // backends report their WAL counters when idle
    return Number((await pool.query('SELECT wal_sync FROM pg_stat_wal')).rows[0].wal_sync);
  };
  let previous = newTxId(0);
  await participant.handleBatch({ protocolVersion: PROTOCOL_VERSION, items: [prepare(previous)] });
  const before = await walSyncs();
  const started = process.hrtime.bigint();
  for (let i = 0; i < batches; i++) {
    const next = newTxId(0);
    const answer = await participant.handleBatch({ protocolVersion: PROTOCOL_VERSION, items: [{ action: 'commit', txId: previous, service: 'ledger' }, prepare(next)] });
    if (answer.results.some((r) => r.status !== 'ok')) throw new Error(`batch ${i}: ${JSON.stringify(answer.results)}`);
    previous = next;
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const syncs = (await walSyncs()) - before;
  participant.close();
  console.log(JSON.stringify({ loadavg1m: Math.round(loadavg()[0] * 10) / 10, batches, walSyncs: syncs, walSyncsPerBatch: Math.round((syncs / batches) * 100) / 100, msPerBatch: Math.round((ms / batches) * 1000) / 1000 }));
} finally {
  await pool.end();
  await server.stop();
}
