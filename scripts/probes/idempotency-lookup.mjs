// What one idempotency-key lookup costs in a decision log beside group commits, with SQLite's default locking
// and with `locking_mode = EXCLUSIVE` (what the coordinator's log runs in). The table and statements are the
// decision log's; 400 forced groups of 20 records, each record's key looked up (a miss) before it is written,
// as a begin does. Prints one JSON line per mode. A probe for docs/design.md, not part of the product:
//   node scripts/probes/idempotency-lookup.mjs [rounds=2]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';

const rounds = Number(process.argv[2] ?? 2);
const GROUPS = 400;
const PER_GROUP = 20;

function run(exclusive) {
  const dir = mkdtempSync(join(tmpdir(), 'txmesh-idem-probe-'));
  try {
    const db = new Database(join(dir, 'log.db'));
    if (exclusive) db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec(`CREATE TABLE decisions (tx_id TEXT PRIMARY KEY, state TEXT NOT NULL, idempotency_key TEXT, request_hash TEXT,
               participants TEXT NOT NULL, result TEXT NOT NULL, created_at INTEGER NOT NULL, decided_at INTEGER NOT NULL, done_at INTEGER, trace TEXT);
             CREATE INDEX decisions_by_idempotency_key ON decisions (idempotency_key) WHERE idempotency_key IS NOT NULL;
             CREATE INDEX decisions_unfinished ON decisions (decided_at) WHERE state IN ('COMMITTING', 'ABORTING');
             CREATE INDEX decisions_finished ON decisions (done_at) WHERE done_at IS NOT NULL;`);
    const insert = db.prepare('INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
    const byKey = db.prepare('SELECT * FROM decisions WHERE idempotency_key = ? ORDER BY decided_at LIMIT 1');
    const writeGroup = db.transaction((rows) => {
      for (const row of rows) insert.run(...row);
    });
    const participants = JSON.stringify([{ service: 'inventory', operations: [{ op: 'reserve', args: { sku: 'a' } }], vote: 'yes' }]);
    let lookupNs = 0n;
    let key = 0;
    const started = process.hrtime.bigint();
    for (let g = 0; g < GROUPS; g++) {
      const rows = [];
      for (let i = 0; i < PER_GROUP; i++, key++) {
        const t = process.hrtime.bigint();
        byKey.get(`order-${key}`);
        lookupNs += process.hrtime.bigint() - t;
        rows.push([`tx-${randomUUID()}`, 'COMMITTED', `order-${key}`, 'a'.repeat(64), participants, '{"outcome":"committed"}', Date.now(), Date.now(), null, null]);
      }
      writeGroup(rows);
    }
    const totalMs = Number(process.hrtime.bigint() - started) / 1e6;
    db.close();
    return { locking: exclusive ? 'EXCLUSIVE' : 'NORMAL', usPerLookup: Math.round(Number(lookupNs) / key / 10) / 100, msPerForcedGroup: Math.round((totalMs / GROUPS) * 1000) / 1000 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (let r = 0; r < rounds; r++) for (const exclusive of [false, true]) console.log(JSON.stringify(run(exclusive)));
