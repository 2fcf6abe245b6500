// How many syncs the participant SDK makes for batches of [commit the previous transactions, prepare the next],
// the shape of every batch at concurrency 1 (a probe for docs/benchmarks.md, not part of the product). Run it
// under strace after `npm run build`:
//   strace -f -c -e trace=fsync,fdatasync node scripts/probes/participant-fsyncs.mjs 500
// A second argument puts that many transactions in each batch (as at higher concurrency); the JSON line reports
// the process's CPU per batch.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createParticipant, defineOperation, openParticipantDatabase } from '@txmesh/participant-sdk';
import { PROTOCOL_VERSION, newTxId } from '@txmesh/protocol';

const batches = Number(process.argv[2] ?? 500);
const perBatch = Number(process.argv[3] ?? 1);
const dir = mkdtempSync(join(tmpdir(), 'txmesh-fsyncs-'));
const db = openParticipantDatabase(join(dir, 'participant.db'));
db.exec('CREATE TABLE IF NOT EXISTS notes (key TEXT NOT NULL)');
const insertNote = db.prepare('INSERT INTO notes (key) VALUES (?)');
const note = defineOperation({
  parseArgs: (args) => ({ key: String(args.key) }),
  lockKeys: (args) => [args.key],
  prepare: (_ctx, args) => void insertNote.run(args.key),
  commit() {},
  rollback() {},
});
const participant = createParticipant({ service: 'probe', db, operations: { note }, log: () => {} });
const started = performance.now();
const cpuBefore = process.cpuUsage();
let previous = [];
for (let i = 0; i < batches; i++) {
  const items = previous.map((txId) => ({ action: 'commit', txId, service: 'probe' }));
  const next = Array.from({ length: perBatch }, () => newTxId(0));
  next.forEach((txId, k) => items.push({ action: 'prepare', txId, service: 'probe', operations: [{ op: 'note', args: { key: `k${i}-${k}` } }], deadline: Date.now() + 5000 }));
  const { results } = await participant.handleBatch({ protocolVersion: PROTOCOL_VERSION, items });
  if (results.some((r) => r.status !== 'ok')) throw new Error(`batch ${i}: ${JSON.stringify(results)}`);
  previous = next;
}
const cpu = process.cpuUsage(cpuBefore);
const per = (value) => Number((value / batches).toFixed(3));
console.log(JSON.stringify({ batches, perBatch, msPerBatch: per(performance.now() - started), cpuMsPerBatch: per((cpu.user + cpu.system) / 1000), stats: participant.stats() }));
participant.close();
db.close();
rmSync(dir, { recursive: true, force: true });
